"""tls.policy: a TLS level per recipient domain (as Postfix's
smtp_tls_policy_maps), over sessions that one MX host shares between the
domains it serves: one socket per MX host, the session asks for the
strictest level of the jobs queued when it starts, and each job is held
against what the session got before its transaction.

shared-a.test, shared-b.test and in.shared-a.test all have mx4.test as
their MX; the sinks there are the raw Sink (no STARTTLS, or a broken or
refused one) and aiosmtpd with a certificate from a test CA."""

import subprocess

import pytest

from .checks import final_status, one_each, outcomes, qid_of
from .conftest import sender_bin
from .sinks import wait_for
from .test_sender_queue import queue_json
from .test_sender_tls import check_plain_line, check_tls_line, server_ctx

A, B, SUB = "a@shared-a.test", "b@shared-b.test", "c@in.shared-a.test"


def last(s, rcpt):
    """The recipient's last delivery.* line."""
    return outcomes(s)[rcpt][-1]


def wait_final(s, rcpts, timeout=15.0):
    """Waits until every recipient has a delivery line."""
    wait_for(lambda: all(r in outcomes(s) for r in rcpts), timeout,
             lambda: f"delivery lines for {rcpts}; have "
                     f"{sorted(outcomes(s))}:\n{s.tail()}")


def sessions(s):
    return s.find_logs("session.open", mx="mx4.test")


def check_config(s):
    return subprocess.run([sender_bin(), "-c", str(s.config_path),
                           "--check-config"], capture_output=True,
                          text=True, timeout=15)


# -- (a) encrypt for one domain, at a host without STARTTLS -------------------
def test_encrypt_domain_deferred_other_sent_in_one_session(sender, mx):
    """Two domains share mx4.test, which offers no STARTTLS; tls.policy
    wants encrypt for one. It is deferred with 4.7.4 and a reply that
    names the policy and the domain; the other goes out in the same and
    only connection, and the host is not backed off for it."""
    sink = mx.sink("mx4.test")
    s = sender(start=False, tls={"policy": {"shared-a.test": "encrypt"}})
    # The may domain first: its job starts the session (see B below).
    qid = s.drop([B, A])
    s.start()
    wait_final(s, [A, B])
    (m,) = sink.wait_messages(1)
    one_each([m], [qid])
    assert m.rcpts == [B]
    a = last(s, A)
    assert a["event"] == "delivery.deferred" and a["dsn"] == "4.7.4", a
    assert a["reply"] == (
        "TLS is required for shared-a.test by tls.policy (encrypt), but "
        "mx4.test did not offer STARTTLS"), a
    assert a["mx"] == "mx4.test" and a["relay"].startswith("mx4.test["), a
    assert final_status(s) == {A: "deferred", B: "sent"}
    s.wait_log("msg.waiting", queue_id=qid)
    sink.wait_idle()
    assert len(sink.conns) == 1, sink.conns
    assert "STARTTLS" not in sink.conns[0].verbs()
    # Nothing of the refused job went on the wire, not even its RCPT.
    assert all(A not in c.line for c in sink.conns[0].commands)
    check_plain_line(sessions(s)[0])
    assert not s.find_logs("mx.backoff")
    # The journal keeps it: `sender queue` shows why it waits.
    (o,) = queue_json(s)
    assert o["queue_id"] == qid and o["attempts"] == 1
    got = {r["address"]: r for r in o["recipients"]}
    assert got[B]["status"] == "sent"
    assert (got[A]["status"], got[A]["dsn"], got[A]["reply"]) == (
        "deferred", "4.7.4", a["reply"])


# -- (b) verify for one domain, a certificate for another name ---------------
def test_verify_domain_deferred_may_domain_sent_over_tls(sender, mx, pki):
    """mx4.test offers STARTTLS with a certificate for wrong.test. The
    verify domain is deferred with 4.7.5 saying why; the may domain goes
    over TLS (unverified) in the same session."""
    sink = mx.sink("mx4.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "wrong.test"))
    s = sender(start=False, tls={"ca_file": str(pki / "ca.pem"),
                                 "policy": {"shared-a.test": "verify"}})
    qid = s.drop([B, A])
    s.start()
    wait_final(s, [A, B])
    (m,) = sink.wait_messages(1)
    one_each([m], [qid])
    assert m.rcpts == [B] and m.tls is True
    a = last(s, A)
    assert a["event"] == "delivery.deferred" and a["dsn"] == "4.7.5", a
    assert a["reply"] == (
        "A verified TLS certificate is required for shared-a.test by "
        "tls.policy (verify), but the certificate of mx4.test did not "
        "verify: hostname mismatch"), a
    assert final_status(s) == {A: "deferred", B: "sent"}
    (line,) = sessions(s)
    check_tls_line(line, verified=False)
    assert sink.connections == 1
    assert not s.find_logs("tls.fallback")


# -- (c) verify with the right CA and name ------------------------------------
@pytest.mark.parametrize("with_may", [False, True],
                         ids=["verify_only", "with_may_domain"])
def test_verify_domain_with_good_certificate(sender, mx, pki, with_may):
    """Alone (the session fails the handshake on a bad certificate, as
    tls.mode verify does) or sharing the session with a may domain (the
    certificate is checked and the handshake goes on): delivered,
    tls_verified true."""
    sink = mx.sink("mx4.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "mx4.test"))
    s = sender(start=False, tls={"ca_file": str(pki / "ca.pem"),
                                 "policy": {"shared-a.test": "verify"}})
    rcpts = [B, A] if with_may else [A]
    qid = s.drop(rcpts)
    s.start()
    s.wait_done(1)
    # one transaction per domain, in one connection
    msgs = sink.wait_messages(len(rcpts))
    assert all(m.tls for m in msgs) and {m.conn for m in msgs} == {0}
    assert sorted(r for m in msgs for r in m.rcpts) == sorted(rcpts)
    assert [qid_of(m) for m in msgs] == [qid] * len(rcpts)
    assert final_status(s) == {r: "sent" for r in rcpts}
    (line,) = sessions(s)
    check_tls_line(line, verified=True)


def test_verify_only_domain_bad_certificate_fails_handshake(sender, mx,
                                                             pki):
    """Only verify jobs queued: the handshake itself fails on the
    certificate, as with tls.mode verify; the reply names the policy."""
    sink = mx.sink("mx4.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "wrong.test"))
    s = sender(start=False, tls={"ca_file": str(pki / "ca.pem"),
                                 "policy": {"shared-a.test": "verify"}})
    s.drop([A])
    s.start()
    wait_final(s, [A])
    a = last(s, A)
    assert a["dsn"] == "4.7.5", a
    assert "TLS handshake failed" in a["reply"], a
    assert "hostname mismatch" in a["reply"], a
    assert a["reply"].endswith("(tls.policy for shared-a.test: verify)"), a
    assert sink.snapshot() == []
    assert not sessions(s) and not s.find_logs("tls.fallback")
    assert not s.find_logs("mx.backoff")


# -- (d) a policy that lowers the level --------------------------------------
@pytest.mark.parametrize("starttls", [None, "garbage"])
def test_none_domain_under_global_encrypt_goes_plaintext(sender, mx,
                                                         starttls):
    """tls.mode encrypt, tls.policy none for shared-a.test: delivered in
    plaintext by a host without STARTTLS; a host whose STARTTLS is broken
    never sees the command (none never uses TLS)."""
    sink = mx.sink("mx4.test", starttls=starttls)
    s = sender(start=False, tls={"mode": "encrypt",
                                 "policy": {"shared-a.test": "none"}})
    qid = s.drop([A])
    s.start()
    s.wait_done(1)
    one_each(sink.wait_messages(1), [qid])
    assert final_status(s) == {A: "sent"}
    check_plain_line(sessions(s)[0])
    sink.wait_idle()
    assert len(sink.conns) == 1
    assert "STARTTLS" not in sink.conns[0].verbs()


def test_none_domain_rides_in_tls_with_others(sender, mx, pki):
    """A none domain sharing a session that uses TLS goes over TLS."""
    sink = mx.sink("mx4.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "mx4.test"))
    s = sender(start=False, tls={"policy": {"shared-a.test": "none",
                                            "shared-b.test": "encrypt"}})
    qid = s.drop([B, A])
    s.start()
    s.wait_done(1)
    msgs = sink.wait_messages(2)
    assert all(m.tls for m in msgs) and {m.conn for m in msgs} == {0}
    assert sorted(r for m in msgs for r in m.rcpts) == sorted([A, B])
    assert [qid_of(m) for m in msgs] == [qid, qid]
    check_tls_line(sessions(s)[0], verified=False)


# -- (e) dot entries ------------------------------------------------------------
@pytest.mark.parametrize("policy,want", [
    # a dot entry names the domains under it, not the domain itself
    ({".shared-a.test": "encrypt"},
     {SUB: "deferred", A: "sent", B: "sent"}),
    # exact beats dot, a longer dot entry beats a shorter one, any case
    ({".TEST": "encrypt", ".Shared-A.test": "may", "shared-b.test": "none"},
     {SUB: "sent", A: "deferred", B: "sent"}),
], ids=["subdomain", "longest_wins"])
def test_dot_entries(sender, mx, policy, want):
    sink = mx.sink("mx4.test")
    s = sender(start=False, tls={"policy": policy})
    qid = s.drop([B, SUB, A])
    s.start()
    wait_final(s, list(want))
    assert final_status(s) == want
    sent = sorted(r for r, st in want.items() if st == "sent")
    msgs = sink.wait_messages(len(sent))
    assert sorted(r for m in msgs for r in m.rcpts) == sent
    assert [qid_of(m) for m in msgs] == [qid] * len(sent)
    for r, st in want.items():
        if st == "deferred":
            line = last(s, r)
            assert line["dsn"] == "4.7.4", line
            domain = r.split("@")[1]
            assert line["reply"].startswith(
                f"TLS is required for {domain} by tls.policy "), line
            if policy.get(domain) is None:  # a dot entry set it
                assert "by tls.policy entry '." in line["reply"], line
    sink.wait_idle()
    assert len(sink.conns) == 1


# -- a failed or refused STARTTLS in a mixed session ------------------------
@pytest.mark.parametrize("starttls", ["garbage", "refuse"])
def test_mixed_session_tls_failure(sender, mx, starttls):
    """The session wants TLS for the encrypt domain. A broken handshake:
    the may domain gets today's plaintext retry on a new connection and
    the encrypt one is deferred (4.7.5), never sent in plaintext. A 454:
    the same session goes on in plaintext for the may domain only
    (4.7.4 for the other)."""
    sink = mx.sink("mx4.test", starttls=starttls)
    s = sender(start=False, tls={"policy": {"shared-a.test": "encrypt"}})
    qid = s.drop([B, A])
    s.start()
    wait_final(s, [A, B])
    one_each(sink.wait_messages(1), [qid])
    assert final_status(s) == {A: "deferred", B: "sent"}
    a = last(s, A)
    sink.wait_idle()
    if starttls == "garbage":
        assert a["dsn"] == "4.7.5", a
        assert a["reply"].startswith(
            "TLS is required for shared-a.test by tls.policy (encrypt), "
            "but the TLS handshake with mx4.test failed: "), a
        assert s.find_logs("tls.fallback", mx="mx4.test")
        assert [c.verbs()[:2] for c in sink.conns] == [
            ["EHLO", "STARTTLS"], ["EHLO", "MAIL"]]
    else:
        assert a["dsn"] == "4.7.4", a
        assert a["reply"] == (
            "TLS is required for shared-a.test by tls.policy (encrypt), "
            "but mx4.test refused STARTTLS: 454 4.7.0 TLS not "
            "available"), a
        assert len(sink.conns) == 1
        assert sink.conns[0].verbs()[:3] == ["EHLO", "STARTTLS", "MAIL"]
    assert all(A not in c.line for conn in sink.conns
               for c in conn.commands)


# -- a job that needs TLS reaching a plaintext session ------------------------
def test_tls_job_after_plaintext_session_gets_a_new_session(sender, mx,
                                                            pki):
    """The open session carries a none domain in plaintext; the host
    offers STARTTLS. A message for an encrypt domain that comes while it
    lingers is not deferred: that session ends and the next one, still
    one at a time, uses TLS."""
    sink = mx.sink("mx4.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "mx4.test"))
    s = sender(start=False, idle_linger="20s",
               tls={"policy": {"shared-a.test": "none",
                               "shared-b.test": "encrypt"}})
    first = s.drop([A])
    s.start()
    s.wait_done(1)
    second = s.drop([B])
    s.wait_done(2)
    m1, m2 = sink.wait_messages(2)
    one_each([m1], [first])
    one_each([m2], [second])
    assert (m1.tls, m2.tls) == (False, True)
    assert (m1.conn, m2.conn) == (0, 1)
    plain, tls = sessions(s)
    check_plain_line(plain)
    check_tls_line(tls, verified=False)
    assert final_status(s) == {A: "sent", B: "sent"}


# -- with a smarthost the policy is keyed by the smarthost ---------------------
def test_smarthost_name_is_the_key(sender, mx):
    sink = mx.sink("mx4.test")
    s = sender(start=False, smarthost=f"mx4.test:{mx.port}",
               tls={"policy": {"mx4.test": "encrypt"}})
    s.drop(["x@one.test"])
    s.start()
    wait_final(s, ["x@one.test"])
    line = last(s, "x@one.test")
    assert line["dsn"] == "4.7.4", line
    assert line["reply"].endswith(
        "TLS is required, but was not offered by the host "
        "(tls.policy for mx4.test: encrypt)"), line
    assert sink.snapshot() == []
    assert not s.find_logs("mx.backoff")


# -- (f) configuration errors ----------------------------------------------------
POLICY_HEAD = "tls:\n  mode: may\n  policy:\n    shared-a.test: encrypt\n"


@pytest.mark.parametrize("entry,col,msg", [
    ("    shared-b.test: sometimes\n", 20,
     "tls.policy: level: expected one of none|may|encrypt|verify, got "
     "'sometimes'"),
    ('    "bad domain.test": may\n', 5,
     "tls.policy: 'bad domain.test' is not a domain name: it holds a "
     "character other than letters, digits, '-' and '.'"),
    ('    "": may\n', 5,
     "tls.policy: '' is not a domain name: it is empty"),
    ("    example..test: may\n", 5,
     "tls.policy: 'example..test' is not a domain name: it has an empty "
     "label"),
    ("    example.test.: may\n", 5,
     "tls.policy: 'example.test.' is not a domain name: it ends with a "
     "dot"),
    ("    -x.test: may\n", 5,
     "tls.policy: '-x.test' is not a domain name: it has a label "
     "starting with '-'"),
    ("    Shared-A.test: none\n", 5,
     "tls.policy: duplicate name 'shared-a.test'"),
    ("    shared-b.test: [may]\n", 20,
     "tls.policy: level: expected a string, got a list"),
], ids=["level", "space", "empty", "empty_label", "trailing_dot",
        "hyphen", "duplicate", "list"])
def test_bad_policy_is_a_positioned_config_error(sender, entry, col, msg):
    s = sender(start=False)
    s.config_path.write_text(POLICY_HEAD + entry)
    r = check_config(s)
    assert r.returncode == 78, r
    assert r.stderr.startswith(f"{s.config_path}:5:{col}: {msg}"), r.stderr
    assert "configuration ok" not in r.stdout
    # start-up refuses it the same way
    r = subprocess.run([sender_bin(), "-c", str(s.config_path)],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 78, r
    assert f"{s.config_path}:5:{col}: " in r.stderr, r.stderr


def test_policy_must_be_a_mapping(sender):
    s = sender(start=False)
    s.config_path.write_text("tls:\n  policy: [shared-a.test]\n")
    r = check_config(s)
    assert r.returncode == 78, r
    assert r.stderr.startswith(
        f"{s.config_path}:2:11: tls.policy: expected a mapping, got a "
        "list"), r.stderr


def test_verify_in_policy_loads_the_ca_file(sender, pki, tmp_path):
    """A verify entry needs tls.ca_file as tls.mode verify does: an
    unreadable one is exit 78; encrypt entries never read it."""
    missing = tmp_path / "no-such-ca.pem"
    s = sender(start=False, tls={"ca_file": str(missing),
                                 "policy": {"shared-a.test": "verify"}})
    r = check_config(s)
    assert r.returncode == 78, r
    assert "tls.ca_file" in r.stderr and str(missing) in r.stderr, r.stderr
    s2 = sender(start=False, tls={"ca_file": str(missing),
                                  "policy": {"shared-a.test": "encrypt"}})
    r = check_config(s2)
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
    s3 = sender(start=False, tls={"ca_file": str(pki / "ca.pem"),
                                  "policy": {".shared-a.test": "verify",
                                             "shared-b.test": "none"}})
    r = check_config(s3)
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
