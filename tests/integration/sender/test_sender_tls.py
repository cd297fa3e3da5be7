"""STARTTLS in the sender (RFC 3207): opportunistic by default (`may`),
required (`encrypt`), required and verified (`verify`), or off (`none`).
The MX hosts are aiosmtpd with a TLS context, smtpd itself with a
certificate, and raw sinks whose STARTTLS is missing, refused or broken.
Certificates come from a test CA made with the openssl command."""

import ssl
import subprocess

import pytest

from .checks import bare, final_status, one_each, outcomes
from .testzone import HOSTS

TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


def server_ctx(pki, name):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return ctx


def session_open(s, mx_host):
    return s.wait_log("session.open", mx=mx_host)


def check_tls_line(line, verified):
    assert line["tls"] is True, line
    assert line["tls_version"] in TLS_VERSIONS, line
    assert line["tls_cipher"] and line["tls_cipher"] != "NONE", line
    assert line["tls_verified"] is verified, line


def check_plain_line(line):
    assert line["tls"] is False, line
    assert "tls_version" not in line and "tls_verified" not in line, line


def deferred(s, rcpt, timeout=15.0):
    """The recipient's delivery.deferred line."""
    s.wait_log("delivery.deferred", timeout=timeout)
    return outcomes(s)[rcpt][-1]


def test_may_uses_starttls_of_aiosmtpd(sender, mx, pki):
    sink = mx.sink("mx1.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "mx1.test"))
    s = sender(start=False)
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_done(1)
    (m,) = sink.wait_messages(1)
    one_each([m], [qid])
    assert m.tls is True
    check_tls_line(session_open(s, "mx1.test"), verified=False)
    assert final_status(s) == {"a@one.test": "sent"}
    assert not s.find_logs("tls.fallback")


@pytest.mark.parametrize("mode", ["may", "verify"])
def test_smtpd_as_mx_receives_over_tls(sender, mx, pki, smtpd, tmp_path,
                                       mode):
    """The project's own smtpd is the MX of two.test (host mx2.test);
    what it stores says ESMTPS. In verify mode the test CA vouches for
    mx2.test."""
    mx_dir = tmp_path / "mx-maildir"
    d = smtpd(maildir=mx_dir, listen=[f"{HOSTS['mx2.test']}:{mx.port}"],
              tls={"cert": str(pki / "mx2.test.pem"),
                   "key": str(pki / "mx2.test.key")},
              relay={"domains": ["two.test"]})
    s = sender(start=False,
               tls={"mode": mode, "ca_file": str(pki / "ca.pem")})
    qid = s.drop(["b@two.test"])
    s.start()
    s.wait_done(1)
    assert final_status(s) == {"b@two.test": "sent"}
    line = session_open(s, "mx2.test")
    check_tls_line(line, verified=(mode == "verify"))
    acc = d.wait_log("msg.accepted")
    assert acc["tls_version"] == line["tls_version"]
    assert acc["tls_cipher"] == line["tls_cipher"]
    (path,) = list((mx_dir / "new").iterdir())
    data = path.read_bytes()
    assert f" id {qid};".encode() in data
    received = data[data.index(b"Received: from sender.test"):]
    received = received[:received.index(b"\nReceived: ")].replace(
        b"\n\t", b" ")
    assert b" with ESMTPS id " in received, received
    assert f"(using {line['tls_version']} with cipher " \
           f"{line['tls_cipher']} ".encode() in received, received


def test_may_without_starttls_sends_plaintext(sender, mx):
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_done(1)
    one_each(sink.wait_messages(1), [qid])
    check_plain_line(session_open(s, "mx1.test"))
    # The sink also records a STARTTLS it did not offer as a violation.
    assert "STARTTLS" not in sink.conns[0].verbs()


@pytest.mark.parametrize("mode", ["encrypt", "verify"])
def test_required_tls_without_starttls_defers(sender, mx, pki, mode):
    sink = mx.sink("mx1.test")
    s = sender(start=False,
               tls={"mode": mode, "ca_file": str(pki / "ca.pem")})
    s.drop(["a@one.test"])
    s.start()
    line = deferred(s, "a@one.test")
    assert line["dsn"] == "4.7.4", line
    assert "TLS is required, but was not offered" in line["reply"], line
    assert sink.snapshot() == []
    sink.wait_idle()
    assert all("MAIL" not in c.verbs() for c in sink.conns), sink.conns
    assert not s.find_logs("session.open")


def test_may_broken_handshake_retries_in_plaintext(sender, mx):
    """220 to STARTTLS, then bytes that are not TLS: the sender gives
    up on TLS and delivers over a new plaintext connection (one at a
    time: the mx fixture checks that)."""
    sink = mx.sink("mx1.test", starttls="garbage")
    s = sender(start=False)
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_done(1)
    one_each(sink.wait_messages(1), [qid])
    fb = s.wait_log("tls.fallback", mx="mx1.test")
    assert fb["reason"].startswith("TLS handshake failed: "), fb
    check_plain_line(session_open(s, "mx1.test"))
    assert final_status(s) == {"a@one.test": "sent"}
    sink.wait_idle()
    assert len(sink.conns) == 2, sink.conns
    assert sink.conns[0].verbs() == ["EHLO", "STARTTLS"]
    assert "STARTTLS" not in sink.conns[1].verbs()
    assert sink.messages_per_conn() == {1: 1}


def test_encrypt_broken_handshake_defers(sender, mx):
    sink = mx.sink("mx1.test", starttls="garbage")
    s = sender(start=False, tls={"mode": "encrypt"})
    s.drop(["a@one.test"])
    s.start()
    line = deferred(s, "a@one.test")
    assert line["dsn"] == "4.7.5", line
    assert "TLS handshake failed" in line["reply"], line
    sink.wait_idle()
    assert len(sink.conns) == 1, sink.conns
    assert not s.find_logs("tls.fallback")
    assert sink.snapshot() == []


@pytest.mark.parametrize("mode", ["may", "encrypt"])
def test_starttls_refused(sender, mx, mode):
    """454 to STARTTLS: may goes on in plaintext in the same session,
    encrypt defers."""
    sink = mx.sink("mx1.test", starttls="refuse")
    s = sender(start=False, tls={"mode": mode})
    qid = s.drop(["a@one.test"])
    s.start()
    if mode == "may":
        s.wait_done(1)
        one_each(sink.wait_messages(1), [qid])
        check_plain_line(session_open(s, "mx1.test"))
        sink.wait_idle()
        assert len(sink.conns) == 1, sink.conns
        assert sink.conns[0].verbs()[:3] == ["EHLO", "STARTTLS", "MAIL"]
    else:
        line = deferred(s, "a@one.test")
        assert line["dsn"] == "4.7.4", line
        assert "STARTTLS refused: 454 4.7.0" in line["reply"], line
        assert sink.snapshot() == []


def test_none_never_sends_starttls(sender, mx):
    sink = mx.sink("mx1.test", starttls="garbage")
    s = sender(start=False, tls={"mode": "none"})
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_done(1)
    one_each(sink.wait_messages(1), [qid])
    check_plain_line(session_open(s, "mx1.test"))
    assert "STARTTLS" not in sink.conns[0].verbs()


@pytest.mark.parametrize("cert,ca,why", [
    ("wrong.test", "test-ca", "hostname mismatch"),
    ("mx1.test", "system", "unable to get local issuer certificate"),
], ids=["wrong_name", "unknown_ca"])
def test_verify_failure_defers(sender, mx, pki, cert, ca, why):
    sink = mx.sink("mx1.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, cert))
    tls = {"mode": "verify"}
    if ca == "test-ca":
        tls["ca_file"] = str(pki / "ca.pem")
    s = sender(start=False, tls=tls)
    s.drop(["a@one.test"])
    s.start()
    line = deferred(s, "a@one.test")
    assert line["dsn"] == "4.7.5", line
    assert "TLS handshake failed" in line["reply"], line
    assert why in line["reply"], line
    assert sink.snapshot() == []
    assert not s.find_logs("tls.fallback")
    assert bare(line["to"]) == "a@one.test"


def test_verify_with_test_ca_delivers_verified(sender, mx, pki):
    sink = mx.sink("mx1.test", aiosmtpd=True,
                   tls_context=server_ctx(pki, "mx1.test"))
    s = sender(start=False,
               tls={"mode": "verify", "ca_file": str(pki / "ca.pem")})
    qid = s.drop(["a@one.test", "b@one.test"])
    s.start()
    s.wait_done(1)
    (m,) = sink.wait_messages(1)
    one_each([m], [qid])
    assert m.tls is True and m.rcpts == ["a@one.test", "b@one.test"]
    check_tls_line(session_open(s, "mx1.test"), verified=True)
    assert final_status(s) == {"a@one.test": "sent", "b@one.test": "sent"}


def test_bad_tls_mode_is_a_config_error(sender):
    s = sender(start=False, tls={"mode": "sometimes"})
    from .conftest import sender_bin
    r = subprocess.run([sender_bin(), "-c", str(s.config_path),
                        "--check-config"], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
    assert "tls.mode" in r.stderr + r.stdout


def run_sender(s, *args):
    from .conftest import sender_bin
    return subprocess.run([sender_bin(), "-c", str(s.config_path), *args],
                          capture_output=True, text=True, timeout=15)


@pytest.mark.parametrize("bad", ["missing", "not_pem"])
def test_verify_with_unloadable_ca_file_is_a_config_error(sender, pki,
                                                          tmp_path, bad):
    """The CA bundle is loaded once at start-up: an unusable one stops
    the sender with 78 instead of deferring every message with 4.7.5."""
    ca = tmp_path / "ca-bundle.pem"
    if bad == "not_pem":
        ca.write_text("this is not a certificate\n")
    s = sender(start=False, tls={"mode": "verify", "ca_file": str(ca)})
    s.drop(["a@one.test"])
    for args in (["--check-config"], []):
        r = run_sender(s, *args)
        assert r.returncode == 78, (args, r.returncode, r.stdout, r.stderr)
        assert "tls.ca_file" in r.stderr and str(ca) in r.stderr, \
            (args, r.stderr)
        assert str(s.config_path) in r.stderr, (args, r.stderr)
        assert "configuration ok" not in r.stdout
    # it never started: nothing claimed, no log line
    assert "sender.start" not in r.stdout
    assert len(s.new_files()) == 1 and s.spool_files() == []

    # the same file loads once it holds the CA; other modes never read it
    ca.write_bytes((pki / "ca.pem").read_bytes())
    r = run_sender(s, "--check-config")
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
    ca.unlink()
    s2 = sender(start=False, tls={"mode": "encrypt", "ca_file": str(ca)})
    r = run_sender(s2, "--check-config")
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
