"""AUTH PLAIN and AUTH LOGIN (RFC 4954) against a users file of crypt(3)
hashes made here with `openssl passwd -6`; the submission listener
(RFC 6409) and relaying for authenticated clients. Certificates come
from test_starttls's test CA."""

import base64
import shutil
import smtplib
import subprocess
import time

import pytest

from conftest import HOSTNAME, free_port, run_cli, sha512_crypt, to_yaml
from mailstore import read_stored
from smtp_wire import Wire, make_message
from test_starttls import client_ctx, ehlo_keywords, pki, starttls_wire  # noqa: F401

EX_CONFIG = 78
PASSWORD = "s3cret pass:word"
OUTSIDE = "carol@elsewhere.example"   # not in relay.domains
# Loopback is not a relay network here: only AUTH allows relaying.
POLICY = {"networks": ["192.0.2.0/24"], "domains": ["ours.test"]}


def b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    p = d / "users"
    p.write_text("# test users\n\n"
                 f"alice:{sha512_crypt(PASSWORD)}\n"
                 f"bob@ours.test:{sha512_crypt('other')}\n")
    return p


def auth_server(smtpd, pki, users_file, auth=None, **over):
    cfg = {"tls": {"cert": str(pki / "server.pem"),
                   "key": str(pki / "server.key")},
           "auth": {"users_file": str(users_file),
                    "failure_delay": "200ms", **(auth or {})},
           "relay": POLICY}
    cfg.update(over)
    return smtpd(**cfg)


def tls_ehlo(srv, pki, port=None):
    """A Wire inside TLS after its second EHLO; returns (wire, EHLO)."""
    w = Wire("127.0.0.1", port or srv.port, timeout=10)
    w.read_reply().expect(220)
    w.cmd("EHLO client.test").expect(250)
    starttls_wire(w, pki)
    return w, w.cmd("EHLO client.test").expect(250)


def plain_ir(user, password, authzid=""):
    return b64(f"{authzid}\0{user}\0{password}".encode())


def check_esmtpsa(srv, user, rcpt):
    acc = srv.wait_log("msg.accepted", auth_user=user)
    st = read_stored(srv.maildir, acc["queue_id"])
    assert st.rcpts == [rcpt]
    assert " with ESMTPSA id " in st.received_unfolded, st.received
    return acc


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_login_relays_with_esmtpsa(smtpd, pki, users_file,
                                                     mech):
    srv = auth_server(smtpd, pki, users_file)
    with smtplib.SMTP("127.0.0.1", srv.port, "client.test",
                      timeout=15) as c:
        c.ehlo()
        assert not c.has_extn("auth")
        c.starttls(context=client_ctx(pki))
        c.ehlo()
        assert c.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        c.user, c.password = "alice", PASSWORD
        method = c.auth_plain if mech == "PLAIN" else c.auth_login
        assert c.auth(mech, method) == (235,
                                        b"2.7.0 Authentication successful")
        assert c.sendmail("alice@client.test", [OUTSIDE],
                          make_message("submitted")) == {}
    check_esmtpsa(srv, "alice", OUTSIDE)
    ok = srv.wait_log("auth.ok", user="alice", mechanism=mech)
    assert ok["client"] == "127.0.0.1"
    out = srv.stdout_path.read_text()
    assert PASSWORD not in out and b64(PASSWORD.encode()) not in out


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth(smtpd, pki, users_file, mech):
    if not shutil.which("swaks"):
        pytest.fail("swaks is needed (Debian package swaks)")
    srv = auth_server(smtpd, pki, users_file)
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{srv.port}", "--tls",
         "--auth", mech, "--auth-user", "bob@ours.test",
         "--auth-password", "other", "--helo", "client.test",
         "--from", "bob@ours.test", "--to", OUTSIDE],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 Authentication successful" in r.stdout, r.stdout
    check_esmtpsa(srv, "bob@ours.test", OUTSIDE)


def test_auth_before_starttls_refused(smtpd, pki, users_file):
    srv = auth_server(smtpd, pki, users_file)
    with srv.connect() as w:
        r = w.cmd("EHLO client.test").expect(250)
        assert "AUTH" not in ehlo_keywords(r), r
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(
            538, "5.7.11",
            "Encryption required for requested authentication mechanism")
        w.cmd("AUTH LOGIN").expect(538, "5.7.11")
        # Still no relaying: nothing was authenticated.
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(554, "5.7.1")
    assert not srv.find_logs("auth.ok")


def test_exchange_details(smtpd, pki, users_file):
    """Continuations, cancel, bad base64, unknown mechanism, AUTH twice,
    AUTH in a transaction, RSET keeps the authentication."""
    srv = auth_server(smtpd, pki, users_file)
    w, ehlo = tls_ehlo(srv, pki)
    with w:
        assert "AUTH" in ehlo_keywords(ehlo)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd("AUTH PLAIN").expect(503, "5.5.1")
        w.cmd("RSET").expect(250)
        w.cmd("AUTH CRAM-MD5").expect(504, "5.5.4")
        w.cmd("AUTH PLAIN").expect(334, None, "")
        w.cmd("*").expect(501, "5.7.0", "Authentication cancelled")
        w.cmd("AUTH LOGIN").expect(334, None, "VXNlcm5hbWU6")
        w.cmd(b64(b"alice")).expect(334, None, "UGFzc3dvcmQ6")
        w.cmd("*").expect(501, "5.7.0")
        w.cmd("AUTH PLAIN").expect(334)
        w.cmd("not base64!").expect(501, "5.5.2")
        w.cmd("AUTH PLAIN Zm9v=").expect(501, "5.5.2")
        # The exchange ended: these are commands again.
        w.cmd("NOOP").expect(250)
        w.cmd("AUTH PLAIN").expect(334, None, "")
        w.cmd(plain_ir("alice", PASSWORD)).expect(235, "2.7.0")
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(
            503, "5.5.1")
        w.cmd("RSET").expect(250)
        w.cmd("EHLO again.test").expect(250)
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(250)
        w.cmd("QUIT").expect(221)


def test_login_initial_response_and_authzid(smtpd, pki, users_file):
    srv = auth_server(smtpd, pki, users_file)
    w, _ = tls_ehlo(srv, pki)
    with w:
        # An authzid other than the user is not allowed: a failure.
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD, "bob@ours.test")
              ).expect(535, "5.7.8")
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD, "alice")).expect(
            235, "2.7.0")
    w, _ = tls_ehlo(srv, pki)
    with w:
        w.cmd("AUTH LOGIN " + b64(b"alice")).expect(334, None,
                                                     "UGFzc3dvcmQ6")
        w.cmd(b64(PASSWORD.encode())).expect(235, "2.7.0")


def test_bad_password_slowed_then_disconnected(smtpd, pki, users_file):
    srv = auth_server(smtpd, pki, users_file,
                      auth={"failure_delay": "300ms", "max_failures": 3})
    w, _ = tls_ehlo(srv, pki)
    with w:
        t0 = time.monotonic()
        w.cmd("AUTH PLAIN " + plain_ir("alice", "wrong")).expect(
            535, "5.7.8", "Error: authentication failed")
        t1 = time.monotonic()
        # An unknown user gets the same answer.
        w.cmd("AUTH PLAIN " + plain_ir("nobody", "wrong")).expect(
            535, "5.7.8", "Error: authentication failed")
        t2 = time.monotonic()
        # The delay grows: 300 ms, then 600 ms (lower bounds only).
        assert t1 - t0 >= 0.29 and t2 - t1 >= 0.59, (t1 - t0, t2 - t1)
        w.cmd("AUTH LOGIN").expect(334)
        w.cmd(b64(b"alice")).expect(334)
        w.cmd(b64(b"still wrong")).expect(
            421, "4.7.0",
            f"{HOSTNAME} Error: too many authentication failures")
        w.expect_closed()
    fails = srv.find_logs("auth.failed")
    assert [(f["user"], f["failures"]) for f in fails] == [
        ("alice", 1), ("nobody", 2), ("alice", 3)]
    assert "wrong" not in srv.stdout_path.read_text()


def test_submission_listener_requires_auth(smtpd, pki, users_file):
    port = free_port()
    # Loopback is a relay network here: on submission it still counts
    # for nothing without AUTH.
    srv = auth_server(smtpd, pki, users_file,
                      listen=[f"127.0.0.1:{free_port()}",
                              {"address": f"127.0.0.1:{port}",
                               "role": "submission"}],
                      relay={"networks": ["127.0.0.0/8"],
                             "domains": ["ours.test"]})
    w, _ = tls_ehlo(srv, pki, port)
    with w:
        w.cmd("MAIL FROM:<alice@client.test>").expect(
            530, "5.7.0", "Authentication required")
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(503, "5.5.1")
        w.cmd("RCPT TO:<bob@ours.test>").expect(503, "5.5.1")
        w.cmd("DATA").expect(503)
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(235)
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(250)
        w.cmd("DATA").expect(354)
        w.send(make_message("via submission") + b".\r\n")
        w.read_reply().expect(250, "2.0.0")
    check_esmtpsa(srv, "alice", OUTSIDE)
    opened = srv.find_logs("conn.open", role="submission")
    assert len(opened) == 1, opened
    assert opened[0]["listener"] == f"127.0.0.1:{port}", opened
    assert opened[0]["tls"] == "starttls", opened
    # Plaintext on the submission port: no AUTH offered, no mail.
    with Wire("127.0.0.1", port, timeout=10) as p:
        p.read_reply().expect(220)
        r = p.cmd("EHLO client.test").expect(250)
        assert "AUTH" not in ehlo_keywords(r)
        p.cmd("MAIL FROM:<alice@client.test>").expect(530, "5.7.0")


def test_mx_listener_relays_only_when_authenticated(smtpd, pki, users_file):
    srv = auth_server(smtpd, pki, users_file)
    w, _ = tls_ehlo(srv, pki)
    with w:
        w.cmd("MAIL FROM:<x@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(554, "5.7.1")
        w.cmd("RCPT TO:<bob@ours.test>").expect(250)  # MX for ours.test
        w.cmd("RSET").expect(250)
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(235)
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(250)


def test_plaintext_auth_when_allowed_says_esmtpa(smtpd, pki, users_file):
    srv = auth_server(smtpd, pki, users_file,
                      auth={"allow_plaintext": True})
    with srv.connect() as w:
        r = w.cmd("EHLO client.test").expect(250)
        assert "AUTH PLAIN LOGIN" in r.lines, r
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(235)
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(250)
        w.cmd("DATA").expect(354)
        w.send(make_message("plain") + b".\r\n")
        w.read_reply().expect(250)
    acc = srv.wait_log("msg.accepted", auth_user="alice")
    st = read_stored(srv.maildir, acc["queue_id"])
    assert " with ESMTPA id " in st.received_unfolded, st.received


def test_without_users_file_auth_not_implemented(smtpd, pki):
    srv = smtpd(tls={"cert": str(pki / "server.pem"),
                     "key": str(pki / "server.key")})
    w, ehlo = tls_ehlo(srv, pki)
    with w:
        assert "AUTH" not in ehlo_keywords(ehlo)
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(
            502, "5.5.1")


def write_config(tmp_path, **over):
    cfg = {"listen": [f"127.0.0.1:{free_port()}"], "hostname": HOSTNAME,
           "maildir": str(tmp_path / "md")}
    cfg.update(over)
    p = tmp_path / "smtpd.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    return p


@pytest.mark.parametrize("content,line,want", [
    ("alice:$6$abc$def\nbob\n", 2, "expected user:hash"),
    ("# c\n\ncarol:plaintext\n", 3, "hash must be SHA-512-crypt"),
    ("alice:$6$a$b\nalice:$6$c$d\n", 2, "user 'alice' listed twice"),
])
def test_bad_users_file_exits_78(tmp_path, content, line, want):
    users = tmp_path / "users"
    users.write_text(content)
    path = write_config(tmp_path, auth={"users_file": str(users)})
    for extra in ([], ["--check-config"]):
        r = run_cli(["-c", str(path)] + extra)
        assert r.returncode == EX_CONFIG, (r.returncode, r.stderr)
        assert f"{users}:{line}: {want}" in r.stderr, r.stderr


def test_missing_users_file_and_lonely_submission_exit_78(tmp_path):
    path = write_config(tmp_path,
                        auth={"users_file": str(tmp_path / "none")})
    r = run_cli(["-c", str(path), "--check-config"])
    assert r.returncode == EX_CONFIG and "none" in r.stderr, r.stderr
    sub = f"127.0.0.1:{free_port()}"
    path = write_config(tmp_path, listen=[
        f"127.0.0.1:{free_port()}", {"address": sub, "role": "submission"}])
    r = run_cli(["-c", str(path), "--check-config"])
    assert r.returncode == EX_CONFIG, r.stderr
    assert r.stderr == (f"{path}: listen: {sub} (entry 2): role submission"
                        " needs auth.users_file\n"), r.stderr
