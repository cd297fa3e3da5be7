"""DATA: the end of data is only <CR><LF>.<CR><LF> (RFC 5321 4.1.1.4).
SMTP smuggling sequences inside a message are content: exactly one
message is stored and exactly one 250 is sent. Plus dot-unstuffing, bare
LF handling and bytes kept verbatim."""

import time

import pytest

from mailstore import all_stored, new_files, read_stored, tmp_files, \
    wait_until
from smtp_wire import queue_id_of

SEQUENCES = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "CR.LF": b"\r.\n",
    "CRLF.CR": b"\r\n.\r",
}
HAS_BARE_LF = {"LF.LF", "LF.CRLF", "CRLF.LF", "CR.LF"}

HEAD = b"Subject: smuggle\r\n\r\nbefore the sequence"
SMUGGLED = (b"MAIL FROM:<evil@smuggler.test>\r\n"
            b"RCPT TO:<victim@ours.test>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled body\r\n")
END = b".\r\n"  # after SMUGGLED's CRLF: the one real <CR><LF>.<CR><LF>


def open_data(srv):
    w = srv.connect()
    w.cmd("EHLO client.test").expect(250)
    w.cmd("MAIL FROM:<alice@client.test>").expect(250, "2.1.0")
    w.cmd("RCPT TO:<bob@ours.test>").expect(250, "2.1.5")
    w.cmd("DATA").expect(354)
    return w


def check_one_smuggled_message(srv):
    stored = all_stored(srv.maildir)
    assert len(stored) == 1, stored
    st = stored[0]
    assert st.sender == "alice@client.test"
    assert st.rcpts == ["bob@ours.test"]
    m = st.message
    assert m.startswith(b"Subject: smuggle\n\nbefore the sequence"), m
    assert b"MAIL FROM:<evil@smuggler.test>" in m, m
    assert b"RCPT TO:<victim@ours.test>" in m, m
    assert m.endswith(b"Subject: smuggled\n\nsmuggled body\n"), m
    return st


@pytest.mark.parametrize("split", [False, True], ids=["one-send", "split"])
@pytest.mark.parametrize("name", list(SEQUENCES))
def test_smuggling_sequence_is_content(smtpd, name, split):
    srv = smtpd()
    seq = SEQUENCES[name]
    with open_data(srv) as w:
        if split:  # sequence cut across two reads
            w.send(HEAD + seq[:2])
            time.sleep(0.05)
            w.send(seq[2:] + SMUGGLED + END + b"QUIT\r\n")
        else:
            w.send(HEAD + seq + SMUGGLED + END + b"QUIT\r\n")
        queue_id_of(w.read_reply())
        w.read_reply().expect(221, "2.0.0", "Bye")
        w.expect_closed()
    check_one_smuggled_message(srv)


@pytest.mark.parametrize("start", [b".\n", b".\r", b".\rX\n"],
                         ids=["dot-LF", "dot-CR", "dot-CR-X-LF"])
def test_sequence_at_start_of_data_is_content(smtpd, start):
    """The data's first line counts as following a CRLF; a "." there
    followed by anything but CRLF does not end the data."""
    srv = smtpd()
    with open_data(srv) as w:
        w.send(start + SMUGGLED + END)
        queue_id_of(w.read_reply())
        w.cmd("QUIT").expect(221)
    stored = all_stored(srv.maildir)
    assert len(stored) == 1 and stored[0].rcpts == ["bob@ours.test"]
    assert stored[0].message.endswith(b"smuggled body\n")
    assert b"MAIL FROM:<evil@smuggler.test>" in stored[0].message


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_smuggling_with_bare_lf_reject(smtpd, name):
    """bare_lf: reject refuses a message holding a bare LF after its end,
    with one reply; without bare LF the message is stored as content."""
    srv = smtpd(bare_lf="reject")
    with open_data(srv) as w:
        w.send(HEAD + SEQUENCES[name] + SMUGGLED + END)
        r = w.read_reply()
        if name in HAS_BARE_LF:
            r.expect(550, "5.5.2", "Error: bare <LF> received")
        else:
            queue_id_of(r)
        w.cmd("QUIT").expect(221, "2.0.0", "Bye")
        w.expect_closed()
    if name in HAS_BARE_LF:
        assert new_files(srv.maildir) == []
        wait_until(lambda: tmp_files(srv.maildir) == [], 2, what="tmp/ empty")
    else:
        check_one_smuggled_message(srv)


def test_bare_lf_normalized_and_bare_cr_kept(smtpd):
    srv = smtpd()  # bare_lf: normalize is the default
    with open_data(srv) as w:
        w.send(b"Subject: lf\r\n\r\nbare\nlf\r\nbare\rcr\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    assert read_stored(srv.maildir, qid).message == \
        b"Subject: lf\n\nbare\nlf\nbare\rcr\n"


def test_bare_lf_reject_keeps_session(smtpd):
    srv = smtpd(bare_lf="reject")
    with open_data(srv) as w:
        w.send(b"Subject: lf\r\n\r\nbare\nlf\r\n.\r\n")
        w.read_reply().expect(550, "5.5.2", "Error: bare <LF> received")
        w.cmd("NOOP").expect(250, "2.0.0", "Ok")
        # The transaction is over: a clean message needs a new MAIL.
        w.cmd("MAIL FROM:<alice@client.test>").expect(250, "2.1.0")
        w.cmd("RCPT TO:<bob@ours.test>").expect(250, "2.1.5")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: clean\r\n\r\nok\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    stored = all_stored(srv.maildir)
    assert [s.path.name.startswith(qid + ".") for s in stored] == [True]
    assert srv.wait_log("msg.rejected", code=550)


def test_dot_unstuffing_edge_cases(smtpd):
    srv = smtpd()
    wire = (b"Subject: dots\r\n\r\n"
            b"..\r\n...\r\n.x\r\nx.\r\n .\r\n..\r\n.. \r\n"
            b".\r\n")
    with open_data(srv) as w:
        w.send(wire)
        qid = queue_id_of(w.read_reply())
    assert read_stored(srv.maildir, qid).message == \
        b"Subject: dots\n\n.\n..\nx\nx.\n .\n.\n. \n"


def test_empty_message_and_verbatim_bytes(smtpd):
    srv = smtpd()
    with open_data(srv) as w:
        w.send(b".\r\n")  # empty message
        q1 = queue_id_of(w.read_reply())
        w.cmd("MAIL FROM:<alice@client.test>").expect(250)
        w.cmd("RCPT TO:<bob@ours.test>").expect(250)
        w.cmd("DATA").expect(354)
        raw = b"Subject: bytes\r\n\r\nNUL:\x00 high:\xff\xfe\x80 ctl:\x1b\x7f\r\n"
        w.send(raw + b".\r\n")
        q2 = queue_id_of(w.read_reply())
    assert read_stored(srv.maildir, q1).message == b""
    assert read_stored(srv.maildir, q2).message == \
        raw.replace(b"\r\n", b"\n")
