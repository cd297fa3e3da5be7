"""The whole path with both real binaries: smtplib -> smtpd -> Maildir ->
sender -> MX sinks (the smtpd fixture comes from the smtpd suite's
conftest, env SMTPD_BIN)."""

import smtplib

from .checks import bare, outcomes, relay

MESSAGE = (b"From: Alice <alice@example.org>\r\n"
           b"To: bob@one.test, carol@two.test\r\n"
           b"Subject: end to end\r\n"
           b"\r\n"
           b".a line that starts with a dot\r\n"
           b"\r\n"
           b"bye\r\n")


def test_smtpd_to_sender_to_mx(sender, mx, smtpd):
    one = mx.sink("mx1.test")
    two = mx.sink("mx2.test", aiosmtpd=True)
    s = sender()
    d = smtpd(maildir=s.maildir)
    with smtplib.SMTP(d.host, d.port, timeout=10) as c:
        refused = c.sendmail("alice@example.org",
                             ["bob@one.test", "carol@two.test",
                              "dave@one.test"], MESSAGE)
    assert refused == {}
    acc = d.wait_log("msg.accepted")
    qid = acc["queue_id"]
    done = s.wait_log("msg.done", queue_id=qid)
    assert (done["sent"], done["bounced"]) == (3, 0)
    (m1,) = one.wait_messages(1)
    (m2,) = two.wait_messages(1)
    assert m1.rcpts == ["bob@one.test", "dave@one.test"]
    assert m2.rcpts == ["carol@two.test"]
    # smtplib dot-stuffed the "." line; smtpd unstuffed and stored it;
    # the sender stuffed it again; the sinks unstuffed it: the message
    # after smtpd's Received header is what the client sent.
    for m in (m1, m2):
        assert m.mail_from == "alice@example.org"
        assert m.data.startswith(b"Received: from ")
        head = m.data.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ")
        assert f" id {qid}".encode() in head, head
        assert m.data.endswith(MESSAGE), m.data
        assert m.data.count(b"Received: ") == 1
    st = outcomes(s)
    assert {bare(k): [e["event"] for e in v] for k, v in st.items()} == {
        "bob@one.test": ["delivery.sent"],
        "dave@one.test": ["delivery.sent"],
        "carol@two.test": ["delivery.sent"]}
    assert st["carol@two.test"][0]["relay"] == relay("mx2.test", mx.port)
    assert all(e["queue_id"] == qid for v in st.values() for e in v)
    (cur,) = s.cur_files()
    assert cur.startswith(qid + ".") and cur.endswith(":2,P")
