"""RFC 2920 PIPELINING: commands that arrive together are answered in
order, exactly once each, whatever the segmentation; after DATA's 354 the
bytes already received are message data."""

import time

from conftest import HOSTNAME
from mailstore import new_files, read_stored
from smtp_wire import dot_stuff, queue_id_of, stored_form


def expect_sequence(w, expected):
    """expected: list of (code, enhanced or None); returns the replies."""
    replies = w.read_replies(len(expected))
    got = [(r.code, r.enh) for r in replies]
    assert got == expected, [r.raw for r in replies]
    return replies


def test_whole_transaction_in_one_segment(smtpd):
    """MAIL, 3 RCPTs, DATA, the message, the terminator and QUIT in one
    send(): DATA is a sync point, but data that arrives early is data."""
    srv = smtpd()
    lines = [b"Subject: one segment", b"", b"line 1", b".starts with dot",
             b"last"]
    blob = (b"MAIL FROM:<p@client.test>\r\n"
            b"RCPT TO:<r1@ours.test>\r\n"
            b"RCPT TO:<r2@ours.test>\r\n"
            b"RCPT TO:<r3@ours.test>\r\n"
            b"DATA\r\n" + dot_stuff(lines) + b".\r\nQUIT\r\n")
    assert len(blob) < 1400  # fits one segment
    with srv.connect() as w:
        r = w.cmd("EHLO client.test")
        assert "PIPELINING" in r.lines, r
        w.send(blob)
        replies = expect_sequence(w, [(250, "2.1.0"), (250, "2.1.5"),
                                      (250, "2.1.5"), (250, "2.1.5"),
                                      (354, None), (250, "2.0.0"),
                                      (221, "2.0.0")])
        w.expect_closed()
    qid = queue_id_of(replies[5])
    st = read_stored(srv.maildir, qid)
    assert st.rcpts == ["r1@ours.test", "r2@ours.test", "r3@ours.test"]
    assert st.message == stored_form(lines)
    assert len(new_files(srv.maildir)) == 1


def test_greeting_ehlo_and_everything_in_one_segment(smtpd):
    """A client that does not wait at all (not allowed by RFC 2920, but
    seen in the wild) still gets every reply, in order, once."""
    srv = smtpd()
    blob = (b"EHLO client.test\r\nMAIL FROM:<p@client.test>\r\n"
            b"RCPT TO:<r1@ours.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n"
            b".\r\nNOOP\r\nQUIT\r\n")
    with srv.connect(greet=False) as w:
        w.send(blob)
        w.read_reply().expect(220, None, f"{HOSTNAME} ESMTP")
        expect_sequence(w, [(250, None), (250, "2.1.0"), (250, "2.1.5"),
                            (354, None), (250, "2.0.0"), (250, "2.0.0"),
                            (221, "2.0.0")])
        w.expect_closed()


def test_errors_interleaved_in_a_pipeline(smtpd):
    srv = smtpd()
    blob = (b"MAIL FROM:<p@client.test>\r\n"
            b"RCPT TO:<bad rcpt@ours.test>\r\n"
            b"RCPT TO:<ok1@ours.test>\r\n"
            b"BOGUS\r\n"
            b"RCPT TO:<ok2@ours.test> FOO=1\r\n"
            b"RCPT TO:<ok3@ours.test>\r\n"
            b"DATA\r\nSubject: mixed\r\n\r\nbody\r\n.\r\n"
            b"RCPT TO:<late@ours.test>\r\n"
            b"RSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n")
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.send(blob)
        replies = expect_sequence(w, [
            (250, "2.1.0"), (501, "5.1.3"), (250, "2.1.5"), (500, "5.5.2"),
            (555, "5.5.4"), (250, "2.1.5"), (354, None), (250, "2.0.0"),
            (503, "5.5.1"), (250, "2.0.0"), (250, "2.0.0"), (252, "2.5.2"),
            (221, "2.0.0")])
        w.expect_closed()
    st = read_stored(srv.maildir, queue_id_of(replies[7]))
    assert st.rcpts == ["ok1@ours.test", "ok3@ours.test"]
    assert st.message == b"Subject: mixed\n\nbody\n"


def test_two_messages_back_to_back(smtpd):
    srv = smtpd()
    blob = b""
    for i in (1, 2):
        blob += (b"MAIL FROM:<p%d@client.test>\r\nRCPT TO:<r%d@ours.test>"
                 b"\r\nDATA\r\nSubject: m%d\r\n\r\nbody %d\r\n.\r\n"
                 % (i, i, i, i))
    blob += b"QUIT\r\n"
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.send(blob)
        replies = expect_sequence(w, [(250, "2.1.0"), (250, "2.1.5"),
                                      (354, None), (250, "2.0.0")] * 2 +
                                  [(221, "2.0.0")])
        w.expect_closed()
    q1, q2 = queue_id_of(replies[3]), queue_id_of(replies[7])
    assert q1 != q2
    for i, qid in ((1, q1), (2, q2)):
        st = read_stored(srv.maildir, qid)
        assert st.sender == f"p{i}@client.test"
        assert st.rcpts == [f"r{i}@ours.test"]
        assert st.message == b"Subject: m%d\n\nbody %d\n" % (i, i)


def test_one_byte_at_a_time(smtpd):
    """Segmentation must not matter: the same session dribbled one byte
    per send() (end-of-data sequence split across reads included)."""
    srv = smtpd()
    lines = [b"Subject: dribble", b"", b".x", b"..", b"end"]
    blob = (b"MAIL FROM:<d@client.test>\r\nRCPT TO:<r@ours.test>\r\n"
            b"DATA\r\n" + dot_stuff(lines) + b".\r\nNOOP\r\n")
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        for b in blob:
            w.send(bytes([b]))
            time.sleep(0.001)
        replies = expect_sequence(w, [(250, "2.1.0"), (250, "2.1.5"),
                                      (354, None), (250, "2.0.0"),
                                      (250, "2.0.0")])
        w.expect_silence()
    st = read_stored(srv.maildir, queue_id_of(replies[3]))
    assert st.message == stored_form(lines)


def test_many_commands_without_reading(smtpd):
    """3000 NOOPs sent without reading replies: the server must neither
    drop nor duplicate a reply (its output buffer fills up meanwhile)."""
    srv = smtpd()
    n = 3000
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.send(b"NOOP\r\n" * n + b"QUIT\r\n")
        replies = w.read_replies(n + 1, timeout=30)
        assert all(r.raw == b"250 2.0.0 Ok\r\n" for r in replies[:n]), \
            next(r for r in replies[:n] if r.raw != b"250 2.0.0 Ok\r\n")
        replies[n].expect(221, "2.0.0", "Bye")
        w.expect_closed()


def test_commands_after_quit_are_ignored(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        w.send(b"EHLO client.test\r\nQUIT\r\nNOOP\r\nNOOP\r\n")
        expect_sequence(w, [(250, None), (221, "2.0.0")])
        w.expect_closed()
