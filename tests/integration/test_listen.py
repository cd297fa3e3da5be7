"""The entries of `listen`: a role (mx, or RFC 6409 submission where MAIL
needs AUTH) and a TLS mode (starttls, RFC 8314 implicit TLS, none) per
address, several of them on one server. Clients are smtplib (SMTP_SSL
for the "465" style) and raw sockets, wrapped in ssl where TLS comes
first. The configuration errors are in test_config_cli.py."""

import shutil
import smtplib
import subprocess
import time

import pytest

from conftest import HOSTNAME, free_port, run_cli
from mailstore import read_stored, wait_until
from smtp_wire import Wire, make_message
from test_auth import (OUTSIDE, PASSWORD, POLICY, check_esmtpsa,  # noqa: F401
                       plain_ir, users_file)
from test_starttls import (check_tls_received, client_ctx,  # noqa: F401
                           ehlo_keywords, pki)


def tls_conf(pki):
    return {"cert": str(pki / "server.pem"), "key": str(pki / "server.key")}


def three_ports(smtpd, pki, users_file):
    """An MX port (first: the fixture's readiness probe speaks plaintext),
    a STARTTLS submission port and an implicit-TLS submission port."""
    mx, sub, smtps = (f"127.0.0.1:{free_port()}" for _ in range(3))
    srv = smtpd(listen=[mx, {"address": sub, "role": "submission"},
                        {"address": smtps, "role": "submission",
                         "tls": "implicit"}],
                tls=tls_conf(pki),
                auth={"users_file": str(users_file),
                      "failure_delay": "200ms"},
                relay=POLICY)
    srv.ports = {"mx": mx, "sub": sub, "smtps": smtps}
    return srv


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def implicit_wire(port, pki):
    """A Wire whose TLS handshake ran before any SMTP byte (RFC 8314 3.3);
    returns it after the greeting."""
    w = Wire("127.0.0.1", port, timeout=10)
    w.sock = client_ctx(pki).wrap_socket(w.sock, server_hostname=HOSTNAME)
    w.read_reply().expect(220, None, f"{HOSTNAME} ESMTP")
    return w


def test_implicit_tls_submission_with_smtplib_ssl(smtpd, pki, users_file):
    srv = three_ports(smtpd, pki, users_file)
    port = port_of(srv.ports["smtps"])
    msg = make_message("over 465", ["implicit TLS, then AUTH"])
    with smtplib.SMTP_SSL("127.0.0.1", port, "client.test", timeout=15,
                          context=client_ctx(pki)) as c:
        c.ehlo()
        assert not c.has_extn("starttls"), c.esmtp_features
        assert c.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        c.login("alice", PASSWORD)
        assert c.sendmail("alice@client.test", [OUTSIDE], msg) == {}
    acc = check_esmtpsa(srv, "alice", OUTSIDE)
    assert (acc["tls_version"], acc["tls_cipher"]) == (version, cipher)
    st = read_stored(srv.maildir, acc["queue_id"])
    m = check_tls_received(st, "ESMTPSA")
    assert (m.group(1), m.group(2)) == (version, cipher)
    assert st.message == msg.replace(b"\r\n", b"\n")
    opened = srv.wait_log("conn.open", conn=acc["conn"])
    assert (opened["listener"], opened["role"], opened["tls"]) == (
        srv.ports["smtps"], "submission", "implicit"), opened


def test_implicit_tls_submission_wants_auth_before_mail(smtpd, pki,
                                                        users_file):
    srv = three_ports(smtpd, pki, users_file)
    with implicit_wire(port_of(srv.ports["smtps"]), pki) as w:
        ehlo = w.cmd("EHLO client.test").expect(250)
        assert "STARTTLS" not in ehlo_keywords(ehlo), ehlo
        assert "AUTH PLAIN LOGIN" in ehlo.lines, ehlo
        w.cmd("MAIL FROM:<alice@client.test>").expect(
            530, "5.7.0", "Authentication required")
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(503, "5.5.1")
        # Already in TLS from the first byte.
        w.cmd("STARTTLS").expect(554, "5.5.1", "Error: TLS already active")
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(
            235, "2.7.0")
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(250)
        w.cmd("QUIT").expect(221)
    assert not srv.find_logs("msg.accepted")


def test_swaks_tls_on_connect(smtpd, pki, users_file):
    """The README's command for port 465."""
    if not shutil.which("swaks"):
        pytest.fail("swaks is needed (Debian package swaks)")
    srv = three_ports(smtpd, pki, users_file)
    r = subprocess.run(
        ["swaks", "--server", srv.ports["smtps"], "--tls-on-connect",
         "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
         PASSWORD, "--helo", "client.test", "--from", "alice@client.test",
         "--to", OUTSIDE, "--timeout", "15"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<~  235 2.7.0 Authentication successful" in r.stdout, r.stdout
    assert "STARTTLS" not in r.stdout, r.stdout
    check_esmtpsa(srv, "alice", OUTSIDE)


def test_each_listener_keeps_its_role(smtpd, pki, users_file):
    """On the same server the MX port takes mail for relay.domains without
    AUTH, the STARTTLS submission port does not; the start line lists all
    three, and every conn.open says which one it came in on."""
    srv = three_ports(smtpd, pki, users_file)
    mx, sub, smtps = srv.ports["mx"], srv.ports["sub"], srv.ports["smtps"]
    with Wire("127.0.0.1", port_of(mx), timeout=10) as w:
        w.read_reply().expect(220)
        ehlo = w.cmd("EHLO client.test").expect(250)
        assert "STARTTLS" in ehlo_keywords(ehlo), ehlo
        w.cmd("MAIL FROM:<x@client.test>").expect(250)
        w.cmd("RCPT TO:<bob@ours.test>").expect(250)
    with Wire("127.0.0.1", port_of(sub), timeout=10) as w:
        w.read_reply().expect(220)
        ehlo = w.cmd("EHLO client.test").expect(250)
        assert "STARTTLS" in ehlo_keywords(ehlo), ehlo
        w.cmd("MAIL FROM:<x@client.test>").expect(530, "5.7.0")
    srv.wait_log("conn.open", listener=sub)  # lines come in order
    start = srv.wait_log("smtpd.start")
    assert start["listen"] == (f"{mx} mx/starttls, {sub} submission/"
                               f"starttls, {smtps} submission/implicit"), \
        start
    assert start["starttls"] is True
    seen = {(e["listener"], e["role"], e["tls"])
            for e in srv.find_logs("conn.open")}
    assert seen == {(mx, "mx", "starttls"),
                    (sub, "submission", "starttls")}, seen


def test_mx_listener_with_tls_none(smtpd, pki):
    """A certificate is set, but the tls: none port neither offers nor
    runs STARTTLS: 502 5.5.1, as Postfix answers an unoffered STARTTLS.
    The session goes on in plaintext."""
    plain = f"127.0.0.1:{free_port()}"
    srv = smtpd(listen=[f"127.0.0.1:{free_port()}",
                        {"address": plain, "tls": "none"}],
                tls=tls_conf(pki))
    with Wire("127.0.0.1", port_of(plain), timeout=10) as w:
        w.read_reply().expect(220, None, f"{HOSTNAME} ESMTP")
        ehlo = w.cmd("EHLO client.test").expect(250)
        assert "STARTTLS" not in ehlo_keywords(ehlo), ehlo
        assert "STARTTLS" not in w.cmd("HELP").expect(214).raw.decode()
        w.cmd("STARTTLS").expect(502, "5.5.1",
                                 "Error: command not implemented")
        assert w.buf == b"", w.buf
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd("RCPT TO:<b@ours.test>").expect(250)
        w.cmd("DATA").expect(354)
        w.send(make_message("no tls here") + b".\r\n")
        w.read_reply().expect(250, "2.0.0")
        w.cmd("QUIT").expect(221)
    acc = srv.wait_log("msg.accepted")
    assert "tls_version" not in acc, acc
    st = read_stored(srv.maildir, acc["queue_id"])
    assert " with ESMTP id " in st.received_unfolded, st.received
    assert "(using " not in st.received_unfolded, st.received
    opened = srv.wait_log("conn.open", conn=acc["conn"])
    assert (opened["role"], opened["tls"]) == ("mx", "none"), opened
    assert not srv.find_logs("tls.established")
    # The default port of the same server still offers it.
    with srv.connect() as w:
        ehlo = w.cmd("EHLO client.test").expect(250)
        assert "STARTTLS" in ehlo_keywords(ehlo), ehlo


def test_plaintext_submission_when_allowed(smtpd, users_file):
    """role submission with tls: none, accepted only with
    auth.allow_plaintext: AUTH on the plaintext session, mail says
    ESMTPA."""
    sub = f"127.0.0.1:{free_port()}"
    srv = smtpd(listen=[f"127.0.0.1:{free_port()}",
                        {"address": sub, "role": "submission",
                         "tls": "none"}],
                auth={"users_file": str(users_file),
                      "allow_plaintext": True}, relay=POLICY)
    with Wire("127.0.0.1", port_of(sub), timeout=10) as w:
        w.read_reply().expect(220)
        ehlo = w.cmd("EHLO client.test").expect(250)
        assert "AUTH PLAIN LOGIN" in ehlo.lines, ehlo
        w.cmd("MAIL FROM:<alice@client.test>").expect(530, "5.7.0")
        w.cmd("AUTH PLAIN " + plain_ir("alice", PASSWORD)).expect(235)
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{OUTSIDE}>").expect(250)
        w.cmd("DATA").expect(354)
        w.send(make_message("plaintext submission") + b".\r\n")
        w.read_reply().expect(250)
    acc = srv.wait_log("msg.accepted", auth_user="alice")
    st = read_stored(srv.maildir, acc["queue_id"])
    assert " with ESMTPA id " in st.received_unfolded, st.received


def wait_tls_ready(srv, port, pki, timeout):
    """Readiness through the implicit-TLS port (the fixture's probe
    speaks plaintext to the first listener)."""
    deadline = time.monotonic() + timeout
    while True:
        assert srv.running(), srv.stderr()
        try:
            with implicit_wire(port, pki) as w:
                w.cmd("QUIT").expect(221)
            return
        except OSError:
            assert time.monotonic() < deadline, srv.stderr()
            time.sleep(0.02)


def test_health_through_implicit_tls(smtpd, pki):
    """Only implicit-TLS listeners: `smtpd health` runs the handshake
    before it expects the 220."""
    port = free_port()
    srv = smtpd(start=False, tls=tls_conf(pki),
                listen=[{"address": f"127.0.0.1:{port}", "tls": "implicit"}])
    srv.wait_ready = lambda timeout: wait_tls_ready(srv, port, pki, timeout)
    srv.start()
    wait_until(lambda: len(srv.find_logs("conn.close")) == 1,
               what="the readiness probe's conn.close")
    r = run_cli(["-c", str(srv.config_path), "health"], timeout=20)
    assert (r.returncode, r.stderr) == (0, ""), r
    # The check's own session: in TLS, and ended by its QUIT.
    wait_until(lambda: len(srv.find_logs("conn.close")) == 2,
               what="the health check's conn.close")
    assert len(srv.find_logs("tls.established")) == 2
    assert not srv.find_logs("tls.handshake_failed")
    assert srv.stop() == 0
    r = run_cli(["-c", str(srv.config_path), "health"], timeout=20)
    assert r.returncode == 1 and "connect" in r.stderr, r


def test_health_prefers_a_plaintext_listener(smtpd, pki):
    first, plain = free_port(), f"127.0.0.1:{free_port()}"
    srv = smtpd(start=False, tls=tls_conf(pki),
                listen=[{"address": f"127.0.0.1:{first}", "tls": "implicit"},
                        plain])
    srv.wait_ready = lambda timeout: wait_tls_ready(srv, first, pki,
                                                    timeout)
    srv.start()
    r = run_cli(["-c", str(srv.config_path), "health"], timeout=20)
    assert (r.returncode, r.stderr) == (0, ""), r
    opened = srv.wait_log("conn.open", listener=plain)
    assert opened["tls"] == "starttls", opened
    srv.wait_log("conn.close", conn=opened["conn"])
    assert not srv.find_logs("tls.handshake_failed")
