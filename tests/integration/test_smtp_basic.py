"""The happy path: greeting, EHLO, messages stored with the contract's
envelope block, Received header and exact bytes; RSET; logs."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import HOSTNAME
from mailstore import check_received, new_files, read_stored, tmp_files
from smtp_wire import (dot_stuff, make_message, queue_id_of, send_mail,
                       session_message, stored_form)

EHLO_KEYWORDS = ["PIPELINING", "SIZE 36700160", "8BITMIME",
                 "ENHANCEDSTATUSCODES", "SMTPUTF8", "HELP"]


def test_greeting_ehlo_and_helo(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        assert w.received == f"220 {HOSTNAME} ESMTP\r\n".encode()
        r = w.cmd("EHLO client.test")
        # Default max_message_size is 35M = 36700160 bytes.
        assert r.code == 250 and r.lines == [HOSTNAME] + EHLO_KEYWORDS, r
        assert r.raw.endswith(b"250 HELP\r\n"), r
        r = w.cmd("HELO client.test")
        assert r.raw == f"250 {HOSTNAME}\r\n".encode(), r
        r = w.cmd("EHLO [127.0.0.1]")  # address literal (RFC 5321 4.1.3)
        assert r.code == 250 and r.lines[0] == HOSTNAME, r
        w.cmd("QUIT").expect(221, "2.0.0", "Bye")
        w.expect_closed()


def test_single_recipient_stored_exactly(smtpd):
    srv = smtpd()
    body = ["Hello Bob,", "", ".a line that starts with a dot",
            "..two dots", ".", "tab\tand trailing space ", "8bit: \u00e9",
            "last line"]
    msg = make_message("single", body, ["X-Test: 1"])
    qid = send_mail(srv.host, srv.port, "alice@client.test",
                    ["bob@ours.test"], msg)
    st = read_stored(srv.maildir, qid)
    assert st.sender == "alice@client.test" and st.params == []
    assert st.rcpts == ["bob@ours.test"]
    check_received(st, "client.test", "127.0.0.1", HOSTNAME, qid, "ESMTP",
                   rcpt="bob@ours.test")
    # smtplib dot-stuffs on the wire; the store holds the original, LF ends.
    assert st.message == msg.replace(b"\r\n", b"\n")
    assert b"\r" not in st.message
    assert len(new_files(srv.maildir)) == 1
    assert tmp_files(srv.maildir) == []


def test_multi_recipient_order_and_received(smtpd):
    srv = smtpd()
    rcpts = ["carol@ours.test", "bob@ours.test", "zed@elsewhere.test",
             "Alice@Ours.Test"]
    msg = make_message("multi", ["body"])
    qid = send_mail(srv.host, srv.port, "alice@client.test", rcpts, msg)
    st = read_stored(srv.maildir, qid)
    assert st.rcpts == rcpts  # RCPT order, case kept
    # More than one recipient: no "for <...>" clause.
    check_received(st, "client.test", "127.0.0.1", HOSTNAME, qid, "ESMTP")
    assert " for <" not in st.received_unfolded
    assert st.message == msg.replace(b"\r\n", b"\n")


def test_helo_session_says_smtp_in_received(smtpd):
    srv = smtpd()
    msg = make_message("helo", ["x"])
    qid = send_mail(srv.host, srv.port, "a@client.test", ["b@ours.test"],
                    msg, helo="old.client.test", esmtp=False)
    st = read_stored(srv.maildir, qid)
    check_received(st, "old.client.test", "127.0.0.1", HOSTNAME, qid,
                   "SMTP", rcpt="b@ours.test")


def test_envelope_params_and_null_sender(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<j\u00f6rg@client.test> BODY=8BITMIME SMTPUTF8") \
            .expect(250, "2.1.0", "Ok")
        w.cmd("RCPT TO:<b\u00fccher@ours.test>").expect(250, "2.1.5", "Ok")
        w.cmd("DATA").expect(354)
        w.send("Subject: caf\u00e9\r\n\r\n\u00fcml\u00e4ut\r\n.\r\n")
        qid1 = queue_id_of(w.read_reply())
        w.cmd("MAIL FROM:<> BODY=7BIT").expect(250, "2.1.0", "Ok")
        w.cmd("RCPT TO:<bob@ours.test>").expect(250, "2.1.5", "Ok")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: bounce\r\n\r\nx\r\n.\r\n")
        qid2 = queue_id_of(w.read_reply())
    st = read_stored(srv.maildir, qid1)
    assert st.sender == "j\u00f6rg@client.test"
    assert st.params == ["BODY=8BITMIME", "SMTPUTF8"]
    assert st.rcpts == ["b\u00fccher@ours.test"]
    check_received(st, "client.test", "127.0.0.1", HOSTNAME, qid1,
                   "UTF8SMTP", rcpt="b\u00fccher@ours.test")
    assert st.message == "Subject: caf\u00e9\n\n\u00fcml\u00e4ut\n".encode()
    st2 = read_stored(srv.maildir, qid2)
    assert st2.sender == "" and st2.rcpts == ["bob@ours.test"]
    first = st2.path.read_bytes().split(b"\n", 1)[0]
    assert first in (b"X-Original-From: <>", b"X-Original-From: <> BODY=7BIT")


def test_several_messages_in_one_session(smtpd):
    srv = smtpd()
    sent = {}
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        for i in range(5):
            lines = [b"Subject: m%d" % i, b"", b"message number %d" % i,
                     b".dot %d" % i]
            qid = session_message(w, f"s{i}@client.test",
                                  [f"r{i}@ours.test"], dot_stuff(lines),
                                  ehlo=None)
            sent[qid] = (i, stored_form(lines))
        w.cmd("QUIT").expect(221, "2.0.0", "Bye")
        w.expect_closed()
    assert len(sent) == 5, "queue ids must be distinct"
    assert len(new_files(srv.maildir)) == 5
    for qid, (i, want) in sent.items():
        st = read_stored(srv.maildir, qid)
        assert st.sender == f"s{i}@client.test"
        assert st.rcpts == [f"r{i}@ours.test"]
        assert st.message == want


def test_rset_discards_the_transaction(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        w.cmd("RSET").expect(250, "2.0.0", "Ok")  # before HELO is fine
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<old@client.test>").expect(250, "2.1.0")
        w.cmd("RCPT TO:<old1@ours.test>").expect(250, "2.1.5")
        w.cmd("RSET").expect(250, "2.0.0", "Ok")
        # The transaction is gone: RCPT needs a new MAIL.
        w.cmd("RCPT TO:<x@ours.test>").expect(503, "5.5.1",
                                              "Error: need MAIL command")
        w.cmd("DATA").expect(503, "5.5.1")
        w.cmd("MAIL FROM:<new@client.test>").expect(250, "2.1.0")
        w.cmd("RCPT TO:<new1@ours.test>").expect(250, "2.1.5")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: after rset\r\n\r\nok\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
        w.cmd("RSET").expect(250, "2.0.0", "Ok")
    st = read_stored(srv.maildir, qid)
    assert st.sender == "new@client.test" and st.rcpts == ["new1@ours.test"]
    assert len(new_files(srv.maildir)) == 1


def test_noop_vrfy_help_quit(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("NOOP").expect(250, "2.0.0", "Ok")
        w.cmd("NOOP with some argument").expect(250, "2.0.0", "Ok")
        w.cmd("VRFY bob@ours.test").expect(
            252, "2.5.2",
            "Cannot VRFY user, but will accept message and attempt delivery")
        for line in ("HELP", "HELP MAIL"):
            r = w.cmd(line)
            assert r.code == 214, r
            # RFC 2034: the enhanced code on every line.
            assert all(ln.startswith("2.0.0 ") for ln in r.lines), r
        w.cmd("quit").expect(221, "2.0.0", "Bye")  # verbs are caseless
        w.expect_closed()


def test_client_x_original_to_does_not_add_recipient(smtpd):
    srv = smtpd()
    msg = (b"X-Original-To: <evil@elsewhere.test>\r\n"
           b"X-Original-From: <spoof@elsewhere.test>\r\n"
           b"Subject: sneaky\r\n\r\nX-Original-To: <evil2@elsewhere.test>\r\n")
    qid = send_mail(srv.host, srv.port, "alice@client.test",
                    ["bob@ours.test"], msg)
    st = read_stored(srv.maildir, qid)
    assert st.sender == "alice@client.test"
    assert st.rcpts == ["bob@ours.test"]
    # Our Received header separates the envelope from the client's text.
    assert st.message == msg.replace(b"\r\n", b"\n")
    raw = st.path.read_bytes()
    assert raw.index(b"Received: ") < raw.index(b"evil@elsewhere.test")


def test_source_route_and_postmaster(smtpd):
    srv = smtpd()
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<@hop.client.test:alice@client.test>") \
            .expect(250, "2.1.0")
        w.cmd("RCPT TO:<@a.test,@b.test:carol@ours.test>") \
            .expect(250, "2.1.5")
        w.cmd("RCPT TO:<postmaster>").expect(250, "2.1.5")
        w.cmd("RCPT TO:<Postmaster>").expect(250, "2.1.5")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: routes\r\n\r\nx\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    st = read_stored(srv.maildir, qid)
    assert st.sender == "alice@client.test"
    assert st.rcpts[0] == "carol@ours.test"
    assert [r.lower() for r in st.rcpts[1:]] == ["postmaster", "postmaster"]


def test_logs_are_json_and_tie_together(smtpd):
    srv = smtpd()
    msg = make_message("logs", ["x"])
    qid = send_mail(srv.host, srv.port, "alice@client.test",
                    ["bob@ours.test", "carol@ours.test"], msg)
    acc = srv.wait_log("msg.accepted", queue_id=qid)
    assert isinstance(acc["conn"], int)
    assert acc["from"] == "alice@client.test" and acc["nrcpt"] == 2
    assert isinstance(acc["size"], int) and acc["size"] > 0
    opened = srv.wait_log("conn.open", conn=acc["conn"])
    assert opened["client"] == "127.0.0.1"
    closed = srv.wait_log("conn.close", conn=acc["conn"])
    assert closed["client"] == "127.0.0.1" and closed["msgs"] == 1
    start = srv.find_logs("smtpd.start")
    assert start and f"127.0.0.1:{srv.port}" in json.dumps(start[0]), start
    assert srv.stop() == 0
    events = srv.logs()
    ts_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for e in events:
        for key in ("ts", "level", "svc", "event"):
            assert isinstance(e.get(key), str), f"{key} missing in {e}"
        assert ts_re.match(e["ts"]), e
        assert e["svc"] == "smtpd", e
        assert e["level"] in ("debug", "info", "warn", "error"), e
    assert events[-1]["event"] == "smtpd.stop", events[-1]
    # Each conn.open has a matching conn.close (the probe one included).
    opens = {e["conn"] for e in events if e["event"] == "conn.open"}
    closes = {e["conn"] for e in events if e["event"] == "conn.close"}
    assert opens == closes and len(opens) >= 2


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks missing")
def test_swaks_pipelined_message(smtpd):
    srv = smtpd()
    out = subprocess.run(
        ["swaks", "--server", f"{srv.host}:{srv.port}", "--pipeline",
         "--from", "swaks@client.test", "--to", "bob@ours.test,c@ours.test",
         "--helo", "swaks.client.test", "--header", "Subject: swaks",
         "--body", "hello from swaks"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as (\S+)", out.stdout)
    assert m, out.stdout
    st = read_stored(srv.maildir, m.group(1))
    assert st.rcpts == ["bob@ours.test", "c@ours.test"]
    assert b"hello from swaks\n" in st.message
