"""STARTTLS (RFC 3207) and implicit TLS (RFC 8314): a test CA and server
certificate made with the openssl command; clients are smtplib, raw
sockets wrapped in ssl, `openssl s_client` and swaks. Whatever a client
pipelines behind STARTTLS is never executed (CVE-2011-0411)."""

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import HOSTNAME, free_port, run_cli, to_yaml
from mailstore import read_stored, wait_until, new_files, all_stored
from smtp_wire import make_message, queue_id_of

EX_CONFIG = 78
USING_RE = re.compile(r"\(using (TLSv1\.[23]) with cipher (\S+) "
                      r"\((\d+)/(\d+) bits\)\)")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for mx.test.example and 127.0.0.1
    signed by it, and an unrelated key (EC P-256: fast to make)."""
    if not shutil.which("openssl"):
        pytest.fail("the openssl command is needed (Debian package "
                    "openssl)")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=mta test CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", f"/CN={HOSTNAME}", cwd=d)
    (d / "san.ext").write_text(
        f"subjectAltName=DNS:{HOSTNAME},IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", "other.key", cwd=d)
    # One file holding key and chain, the way many deployments keep it.
    (d / "combined.pem").write_bytes((d / "server.key").read_bytes() +
                                     (d / "server.pem").read_bytes() +
                                     (d / "ca.pem").read_bytes())
    return d


def client_ctx(pki):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = True
    return ctx


def tls_server(smtpd, pki, **overrides):
    tls = {"cert": str(pki / "server.pem"), "key": str(pki / "server.key")}
    tls.update(overrides.pop("tls", {}))
    return smtpd(tls=tls, **overrides)


def starttls_wire(w, pki):
    """After EHLO: STARTTLS, 220, then the handshake on the same socket."""
    w.cmd("STARTTLS").expect(220, "2.0.0", "Ready to start TLS")
    assert w.buf == b"", w.buf
    w.sock = client_ctx(pki).wrap_socket(w.sock, server_hostname=HOSTNAME)
    return w.sock


def ehlo_keywords(reply):
    return [ln.split(" ")[0].upper() for ln in reply.lines[1:]]


def check_tls_received(stored, proto="ESMTPS"):
    line = stored.received_unfolded
    m = USING_RE.search(line)
    assert m, line
    assert f" with {proto} id " in line, line
    assert "(No client certificate requested)" in line, line
    head = "Received: from client.test (unknown [127.0.0.1]) (using "
    assert line.startswith(head), line
    assert int(m.group(3)) >= 128 and int(m.group(4)) >= 128, line
    return m


def test_smtplib_starttls_message_lands_with_esmtps(smtpd, pki):
    srv = tls_server(smtpd, pki)
    with smtplib.SMTP("127.0.0.1", srv.port, "client.test",
                      timeout=15) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        code, msg = c.starttls(context=client_ctx(pki))
        assert (code, msg) == (220, b"2.0.0 Ready to start TLS")
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        c.ehlo()
        # RFC 3207 4.2: not offered again inside TLS.
        assert not c.has_extn("starttls")
        refused = c.sendmail("alice@client.test", ["bob@ours.test"],
                             make_message("over tls", ["secret"]))
        assert refused == {}
    acc = srv.wait_log("msg.accepted")
    assert acc["tls_version"] == version
    assert acc["tls_cipher"] == cipher
    st = read_stored(srv.maildir, acc["queue_id"])
    m = check_tls_received(st)
    assert (m.group(1), m.group(2)) == (version, cipher)
    assert st.message == make_message("over tls", ["secret"]).replace(
        b"\r\n", b"\n")
    est = srv.wait_log("tls.established")
    assert (est["version"], est["cipher"]) == (version, cipher)


def test_not_advertised_without_certificate(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        assert "STARTTLS" not in ehlo_keywords(w.cmd("EHLO client.test"))
        w.cmd("STARTTLS").expect(502, "5.5.1")
        w.cmd("NOOP").expect(250)


def test_commands_pipelined_behind_starttls_are_not_executed(smtpd, pki):
    """CVE-2011-0411: "STARTTLS\\r\\nRSET\\r\\nMAIL FROM..." in one
    write. The plaintext behind STARTTLS is dropped: inside TLS the
    first reply is the one to our own command, and the session has
    forgotten the EHLO (MAIL gets 503)."""
    srv = tls_server(smtpd, pki)
    injected = b"RSET\r\nMAIL FROM:<evil@client.test>\r\nNOOP\r\n"
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.send(b"STARTTLS\r\n" + injected)
        w.read_reply().expect(220, "2.0.0", "Ready to start TLS")
        assert w.buf == b"", f"plaintext after the 220: {w.buf!r}"
        w.sock = client_ctx(pki).wrap_socket(w.sock,
                                             server_hostname=HOSTNAME)
        w.cmd("MAIL FROM:<good@client.test>").expect(
            503, "5.5.1", "Error: send HELO/EHLO first")
        w.cmd("HELP").expect(214)
        w.expect_silence()
    hit = srv.wait_log("tls.pipelined_discarded")
    assert hit["bytes"] == len(injected)
    assert not srv.find_logs("session.state", to="SESSION_MAIL_SET")


def test_session_state_reset_after_starttls(smtpd, pki):
    srv = tls_server(smtpd, pki)
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd("STARTTLS").expect(503, "5.5.1",
                                 "Error: MAIL transaction in progress")
        w.cmd("STARTTLS now").expect(501, "5.5.4", "Syntax: STARTTLS")
        w.cmd("RSET").expect(250)
        starttls_wire(w, pki)
        # Nothing from before the handshake counts: no HELO, no MAIL.
        w.cmd("MAIL FROM:<a@client.test>").expect(503, "5.5.1")
        w.cmd("RCPT TO:<b@ours.test>").expect(503, "5.5.1")
        r = w.cmd("EHLO client.test").expect(250)
        assert "STARTTLS" not in ehlo_keywords(r), r
        w.cmd("STARTTLS").expect(554, "5.5.1", "Error: TLS already active")
        w.cmd("QUIT").expect(221)
        w.expect_closed()


def test_pipelined_transaction_inside_tls(smtpd, pki):
    """A whole transaction larger than the session's input buffer in one
    TLS record: input OpenSSL has decrypted but the fd does not announce
    must still be run."""
    srv = tls_server(smtpd, pki)
    body = [b"x" * 70 + b"%04d" % i for i in range(100)]  # ~7.5 KB
    msg = make_message("pipelined", body)
    blob = (b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
            b"RCPT TO:<b@ours.test>\r\nDATA\r\n" + msg + b".\r\n"
            b"NOOP\r\nQUIT\r\n")
    assert 4096 < len(blob) < 16000
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        starttls_wire(w, pki)
        w.sock.sendall(blob)
        r = w.read_replies(7)
        assert [x.code for x in r] == [250, 250, 250, 354, 250, 250, 221]
        qid = queue_id_of(r[4])
        w.expect_closed()
    st = read_stored(srv.maildir, qid)
    assert st.message == msg.replace(b"\r\n", b"\n")
    check_tls_received(st)


def test_large_message_over_tls(smtpd, pki):
    srv = tls_server(smtpd, pki)
    body = [(b"%06d " % i) + b"y" * 90 for i in range(4000)]  # ~390 KB
    msg = make_message("large", body)
    with smtplib.SMTP("127.0.0.1", srv.port, "client.test",
                      timeout=20) as c:
        c.starttls(context=client_ctx(pki))
        c.sendmail("a@client.test", ["b@ours.test"], msg)
    acc = srv.wait_log("msg.accepted")
    st = read_stored(srv.maildir, acc["queue_id"])
    assert st.message == msg.replace(b"\r\n", b"\n")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_half_a_record_does_not_spin(smtpd, pki):
    """A TLS record that arrives in two parts: while smtpd holds the
    first part (read ahead), it waits on the socket instead of polling
    OpenSSL in a loop, then answers once the rest arrives."""
    srv = tls_server(smtpd, pki)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.recv(1024)  # 220
    sock.sendall(b"EHLO client.test\r\n")
    sock.recv(4096)
    sock.sendall(b"STARTTLS\r\n")
    assert sock.recv(1024).startswith(b"220")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ctx(pki).wrap_bio(incoming, outgoing,
                                   server_hostname=HOSTNAME)
    while True:  # the handshake over the plain socket, by hand
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    sock.sendall(outgoing.read())
    tls.write(b"NOOP " + b"x" * 8000 + b"\r\nNOOP\r\n")  # one record
    record = outgoing.read()
    assert len(record) > 8000
    sock.sendall(record[:len(record) // 2])
    time.sleep(0.3)
    before = cpu_seconds(srv.proc.pid)
    time.sleep(1.0)
    spent = cpu_seconds(srv.proc.pid) - before
    assert spent < 0.3, f"smtpd used {spent:.2f} s of CPU while waiting"
    sock.sendall(record[len(record) // 2:])
    replies = b""
    deadline = time.monotonic() + 10
    while replies.count(b"\r\n") < 2 and time.monotonic() < deadline:
        try:
            replies += tls.read(4096)
        except ssl.SSLWantReadError:
            incoming.write(sock.recv(65536))
    # the long NOOP line is refused, the short one answered: both seen
    assert replies.count(b"\r\n") >= 2, replies
    assert b"250" in replies, replies
    sock.close()


def test_openssl_s_client(smtpd, pki):
    srv = tls_server(smtpd, pki)
    script = ("EHLO client.test\nMAIL FROM:<a@client.test>\n"
              "RCPT TO:<b@ours.test>\nDATA\nSubject: s_client\n\nhi\n.\n"
              "QUIT\n")
    r = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-crlf", "-quiet",
         "-connect", f"127.0.0.1:{srv.port}", "-CAfile",
         str(pki / "ca.pem"), "-verify_return_error", "-verify_hostname",
         HOSTNAME],
        input=script, capture_output=True, text=True, timeout=25)
    assert "250 2.0.0 Ok: queued as" in r.stdout, (r.stdout, r.stderr)
    assert "221 2.0.0 Bye" in r.stdout, r.stdout
    acc = srv.wait_log("msg.accepted")
    check_tls_received(read_stored(srv.maildir, acc["queue_id"]))


def test_swaks_tls(smtpd, pki):
    srv = tls_server(smtpd, pki)
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{srv.port}", "--helo",
         "client.test", "--from", "a@client.test", "--to", "b@ours.test",
         "--tls", "--timeout", "15"],
        capture_output=True, text=True, timeout=25)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<~  250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    acc = srv.wait_log("msg.accepted")
    assert acc["tls_version"] in ("TLSv1.2", "TLSv1.3")
    check_tls_received(read_stored(srv.maildir, acc["queue_id"]))


def test_combined_pem_file(smtpd, pki):
    """Key and chain in one file; tls.key left out."""
    srv = smtpd(tls={"cert": str(pki / "combined.pem")})
    with srv.connect() as w:
        assert "STARTTLS" in ehlo_keywords(w.cmd("EHLO client.test"))
        starttls_wire(w, pki)
        w.cmd("EHLO client.test").expect(250)


def test_handshake_failure_is_logged_and_closed(smtpd, pki):
    srv = tls_server(smtpd, pki)
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("STARTTLS").expect(220, "2.0.0")
        w.send(b"EHLO plaintext.test\r\n")
        w.expect_closed()
    hit = srv.wait_log("tls.handshake_failed")
    assert hit["error"], hit
    srv.wait_log("conn.close", reason="tls handshake failed")
    assert new_files(srv.maildir) == []


def test_handshake_timeout_closes_without_plaintext(smtpd, pki):
    """The handshake is bounded by timeouts.command; no 421 is written
    into what should have been a TLS stream."""
    srv = tls_server(smtpd, pki, timeouts={"command": "1s"})
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("STARTTLS").expect(220, "2.0.0")
        w.expect_closed(timeout=10)
    srv.wait_log("session.timeout", state="SESSION_STARTTLS")


def test_implicit_tls_listener(smtpd, pki):
    port = free_port()
    srv = tls_server(smtpd, pki,
                     listen=[f"127.0.0.1:{free_port()}",
                             {"address": f"127.0.0.1:{port}",
                              "tls": "implicit"}])
    with smtplib.SMTP_SSL("127.0.0.1", port, "client.test", timeout=15,
                          context=client_ctx(pki)) as c:
        code, _ = c.ehlo()
        assert code == 250
        assert not c.has_extn("starttls")
        c.sendmail("a@client.test", ["b@ours.test"],
                   make_message("implicit"))
    acc = srv.wait_log("msg.accepted")
    check_tls_received(read_stored(srv.maildir, acc["queue_id"]))
    opened = srv.wait_log("conn.open", conn=acc["conn"])
    assert (opened["role"], opened["tls"]) == ("mx", "implicit"), opened
    # A plaintext client on that port learns nothing and is closed.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"EHLO plain.test\r\n")
        try:
            data = s.recv(4096)  # at most a TLS alert
        except ConnectionResetError:
            data = b""
        assert b"250" not in data and b"220" not in data, data
    srv.wait_log("tls.handshake_failed")


# -- configuration -------------------------------------------------------------
def config_run(tmp_path, tls):
    cfg = {"listen": [f"127.0.0.1:{free_port()}"], "hostname": HOSTNAME,
           "maildir": str(tmp_path / "md"), "tls": tls}
    p = tmp_path / "smtpd.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    return run_cli(["-c", str(p)]), p


@pytest.mark.parametrize("case,want", [
    ("missing_cert", "tls.cert: cannot read"),
    ("missing_key", "tls.key: cannot read"),
    ("key_mismatch", "tls.key"),
    ("not_a_cert", "tls.cert: no PEM certificate chain"),
    ("key_without_cert", "tls.key needs tls.cert"),
])
def test_bad_tls_config_exits_78(tmp_path, pki, case, want):
    tls = {
        "missing_cert": {"cert": str(tmp_path / "none.pem"),
                         "key": str(pki / "server.key")},
        "missing_key": {"cert": str(pki / "server.pem"),
                        "key": str(tmp_path / "none.key")},
        "key_mismatch": {"cert": str(pki / "server.pem"),
                         "key": str(pki / "other.key")},
        "not_a_cert": {"cert": str(pki / "server.key"),
                       "key": str(pki / "server.key")},
        "key_without_cert": {"key": str(pki / "server.key")},
    }[case]
    r, path = config_run(tmp_path, tls)
    assert r.returncode == EX_CONFIG, (r.returncode, r.stderr)
    assert want in r.stderr, r.stderr
    assert r.stderr.startswith(f"{path}: "), r.stderr
    if case == "key_mismatch":
        assert "does not match" in r.stderr or "mismatch" in r.stderr, \
            r.stderr
    r = run_cli(["-c", str(path), "--check-config"])
    assert r.returncode == EX_CONFIG and want in r.stderr, r.stderr


def test_good_tls_config_checks_ok(tmp_path, pki):
    p = tmp_path / "smtpd.yaml"
    p.write_text(to_yaml({
        "listen": [f"127.0.0.1:{free_port()}"], "hostname": HOSTNAME,
        "maildir": str(tmp_path / "md"),
        "tls": {"cert": str(pki / "server.pem"),
                "key": str(pki / "server.key")}}) + "\n")
    r = run_cli(["-c", str(p), "--check-config"])
    assert r.returncode == 0, r.stderr
