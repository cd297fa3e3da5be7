"""Limits: message size, recipients, line length, timeouts, errors,
connections (total and per IP), hop count."""

import time

from conftest import HOSTNAME
from mailstore import new_files, read_stored, tmp_files, wait_until
from smtp_wire import Wire, queue_id_of


def open_data(w, rcpts=("bob@ours.test",)):
    w.cmd("EHLO client.test").expect(250)
    w.cmd("MAIL FROM:<alice@client.test>").expect(250, "2.1.0")
    for r in rcpts:
        w.cmd(f"RCPT TO:<{r}>").expect(250, "2.1.5")
    w.cmd("DATA").expect(354)


def assert_nothing_stored(srv):
    assert new_files(srv.maildir) == []
    wait_until(lambda: tmp_files(srv.maildir) == [], 3,
               what="no litter in tmp/")


def test_size_declared_on_mail(smtpd):
    srv = smtpd(max_message_size="10k")
    with srv.connect() as w:
        r = w.cmd("EHLO client.test")
        assert "SIZE 10240" in r.lines, r
        w.cmd("MAIL FROM:<a@client.test> SIZE=10241").expect(
            552, "5.3.4", "Message size exceeds fixed limit")
        w.cmd("MAIL FROM:<a@client.test> SIZE=10240").expect(250, "2.1.0")
        w.cmd("RSET").expect(250)
        w.cmd("MAIL FROM:<a@client.test> SIZE=0").expect(250, "2.1.0")


def test_message_over_size_after_data(smtpd):
    srv = smtpd(max_message_size="10k")
    with srv.connect() as w:
        open_data(w)
        line = b"x" * 98 + b"\r\n"
        for total in (20_000, 2_000_000):  # just over, far over
            if total != 20_000:
                w.cmd("MAIL FROM:<alice@client.test>").expect(250)
                w.cmd("RCPT TO:<bob@ours.test>").expect(250)
                w.cmd("DATA").expect(354)
            w.send(b"Subject: big\r\n\r\n" + line * (total // 100) +
                   b".\r\n")
            w.read_reply(timeout=30).expect(552, "5.3.4",
                                            "Error: message file too big")
            assert_nothing_stored(srv)
        # The session goes on and a message under the limit is taken.
        w.cmd("NOOP").expect(250, "2.0.0", "Ok")
        w.cmd("MAIL FROM:<alice@client.test> SIZE=5000").expect(250)
        w.cmd("RCPT TO:<bob@ours.test>").expect(250)
        w.cmd("DATA").expect(354)
        small = b"Subject: small\r\n\r\n" + line * 50
        w.send(small + b".\r\n")
        qid = queue_id_of(w.read_reply())
    assert read_stored(srv.maildir, qid).message == \
        small.replace(b"\r\n", b"\n")
    rej = srv.wait_log("msg.rejected", code=552)
    assert isinstance(rej["conn"], int) and rej["reason"], rej


def test_recipient_limit(smtpd):
    srv = smtpd(max_recipients=5)
    rcpts = [f"r{i}@ours.test" for i in range(1, 6)]
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        for r in rcpts:
            w.cmd(f"RCPT TO:<{r}>").expect(250, "2.1.5")
        for extra in ("r6@ours.test", "r7@ours.test"):
            w.cmd(f"RCPT TO:<{extra}>").expect(
                452, "4.5.3", "Error: too many recipients")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: five\r\n\r\nbody\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    st = read_stored(srv.maildir, qid)
    assert st.rcpts == rcpts


def test_command_line_length(smtpd):
    """512 octets including CRLF is the limit (RFC 5321 4.5.3.1.4): a
    510-character line + CRLF is taken, one character more is refused
    with exactly one reply, and the session goes on."""
    srv = smtpd()
    ok_line = "NOOP " + "x" * 505
    long_line = ok_line + "x"
    assert len(ok_line) + 2 == 512 and len(long_line) + 2 == 513
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd(ok_line).expect(250, "2.0.0", "Ok")
        # Split across reads: still one line of 512.
        w.send(ok_line[:300].encode())
        time.sleep(0.05)
        w.send(ok_line[300:].encode() + b"\r\n")
        w.read_reply().expect(250, "2.0.0", "Ok")
        w.cmd(long_line).expect(500, "5.5.2", "Error: line too long")
        w.expect_silence()
        w.cmd("NOOP").expect(250, "2.0.0", "Ok")
        # A much longer line, in a transaction: one reply, state intact.
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd("RCPT TO:<" + "y" * 20000 + "@ours.test>").expect(
            500, "5.5.2", "Error: line too long")
        w.expect_silence()
        w.cmd("RCPT TO:<bob@ours.test>").expect(250, "2.1.5")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: after long\r\n\r\nok\r\n.\r\n")
        queue_id_of(w.read_reply())


def test_pipelined_lines_at_the_limit(smtpd):
    """Many 512-octet lines in one send() cross the server's read buffer
    at every offset; only the one 513-octet line is refused."""
    srv = smtpd(max_errors=5)
    ok = b"NOOP " + b"x" * 505 + b"\r\n"
    bad = b"NOOP " + b"x" * 506 + b"\r\n"
    lines = [ok] * 150 + [bad] + [ok] * 150
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.send(b"".join(lines))
        for i, line in enumerate(lines):
            r = w.read_reply()
            if line is bad:
                r.expect(500, "5.5.2", "Error: line too long")
            else:
                assert r.raw == b"250 2.0.0 Ok\r\n", (i, r)
        w.expect_silence()


def test_command_timeout(smtpd):
    srv = smtpd(timeouts={"command": "1s"})
    with srv.connect() as w:
        t0 = time.monotonic()
        w.read_reply(timeout=10).expect(
            421, "4.4.2", f"{HOSTNAME} Error: timeout exceeded")
        elapsed = time.monotonic() - t0
        w.expect_closed()
    assert 0.8 <= elapsed < 5, elapsed
    assert isinstance(srv.wait_log("session.timeout")["conn"], int)


def test_command_timeout_restarts_on_each_command(smtpd):
    srv = smtpd(timeouts={"command": "1s"})
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        for _ in range(6):  # 2.4s in all, never 1s idle
            time.sleep(0.4)
            w.cmd("NOOP").expect(250, "2.0.0", "Ok")
        w.read_reply(timeout=10).expect(421, "4.4.2")
        w.expect_closed()


def test_data_timeout(smtpd):
    """timeouts.data (1s) applies while in DATA, not timeouts.command."""
    srv = smtpd(timeouts={"command": "6s", "data": "1s"})
    with srv.connect() as w:
        open_data(w)
        for _ in range(4):  # data keeps coming: no timeout
            w.send(b"Subject: slow\r\n")
            time.sleep(0.4)
        t0 = time.monotonic()
        w.read_reply(timeout=10).expect(
            421, "4.4.2", f"{HOSTNAME} Error: timeout exceeded")
        elapsed = time.monotonic() - t0
        w.expect_closed()
    assert elapsed < 4, elapsed
    assert_nothing_stored(srv)


def test_max_errors(smtpd):
    srv = smtpd(max_errors=3)
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("FOO").expect(500, "5.5.2")
        w.cmd("NOOP").expect(250)  # good commands do not reset the count
        w.cmd("RCPT TO:<a@ours.test>").expect(503, "5.5.1")
        w.send(b"BAR\r\n")
        w.read_reply().expect(500, "5.5.2", "Error: command not recognized")
        w.read_reply().expect(421, "4.7.0",
                              f"{HOSTNAME} Error: too many errors")
        w.expect_closed()
    # Pipelined: the fourth and later commands are never answered.
    with srv.connect() as w:
        w.send(b"A\r\nB\r\nC\r\nD\r\nNOOP\r\nQUIT\r\n")
        for _ in range(3):
            w.read_reply().expect(500, "5.5.2")
        w.read_reply().expect(421, "4.7.0")
        w.expect_closed()


def test_default_max_errors_is_ten(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        for _ in range(9):
            w.cmd("FOO").expect(500)
        w.cmd("NOOP").expect(250)
        w.send(b"FOO\r\n")
        w.read_reply().expect(500)
        w.read_reply().expect(421, "4.7.0")
        w.expect_closed()


def test_max_connections(smtpd):
    srv = smtpd(max_connections=3)
    held = [srv.connect() for _ in range(3)]
    try:
        w = srv.connect(greet=False)
        w.read_reply().expect(421, "4.3.2",
                              f"{HOSTNAME} Too many connections")
        w.expect_closed()
        ref = srv.wait_log("conn.refused")
        assert ref["client"] == "127.0.0.1" and ref["reason"], ref
        for h in held:  # the three held sessions still work
            h.cmd("NOOP").expect(250)
        held.pop().close()

        def greeted():
            with srv.connect(greet=False) as c:
                return c.read_reply().code == 220
        wait_until(greeted, 5, what="a free slot after one closed")
    finally:
        for h in held:
            h.close()


def test_max_connections_per_ip(smtpd):
    srv = smtpd(max_connections_per_ip=2)
    held = [srv.connect() for _ in range(2)]
    try:
        w = srv.connect(greet=False)
        w.read_reply().expect(
            421, "4.7.0", f"{HOSTNAME} Too many connections from your address")
        w.expect_closed()
        ref = srv.wait_log("conn.refused")
        assert ref["client"] == "127.0.0.1" and ref["reason"], ref
        # Another address is not affected (all of 127/8 is loopback).
        other = Wire(srv.host, srv.port, source="127.0.0.2")
        other.read_reply().expect(220)
        other.cmd("QUIT").expect(221)
        other.close()
    finally:
        for h in held:
            h.close()


def received_headers(n, name="Received"):
    return b"".join(b"%s: from h%d.test by h%d.test; "
                    b"Thu, 1 Jan 2026 00:00:00 +0000\r\n"
                    % (name.encode(), i, i + 1) for i in range(n))


def test_mail_loop_hop_count(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        open_data(w)
        w.send(received_headers(100) + b"Subject: 100 hops\r\n\r\nok\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
        for hdrs in (received_headers(101),
                     received_headers(100) + received_headers(1, "RECEIVED")):
            w.cmd("MAIL FROM:<alice@client.test>").expect(250)
            w.cmd("RCPT TO:<bob@ours.test>").expect(250)
            w.cmd("DATA").expect(354)
            w.send(hdrs + b"Subject: loop\r\n\r\nx\r\n.\r\n")
            w.read_reply().expect(554, "5.4.6", "Too many hops: mail loop")
        # Received: lines in the body are not header fields.
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd("RCPT TO:<bob@ours.test>").expect(250)
        w.cmd("DATA").expect(354)
        w.send(b"Subject: quoted\r\n\r\n" + received_headers(150) +
               b".\r\n")
        qid2 = queue_id_of(w.read_reply())
    assert len(new_files(srv.maildir)) == 2
    read_stored(srv.maildir, qid2)
    assert read_stored(srv.maildir, qid).message.count(b"Received: ") == 100
    srv.wait_log("msg.rejected", code=554)
