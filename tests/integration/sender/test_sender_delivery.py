"""What arrives at the MX and what happens to the queue file: exact
content and envelope, implicit and backup MX, partly rejected
recipients, malformed files, cur/ naming, the log lines."""

import json
import random
import re
import time
from datetime import datetime

import pytest

from .checks import DSN_RE, bare, final_status, one_each, outcomes, relay
from .sinks import wire_form


def _big_body(seed, size):
    """Printable lines of random length (up to 998 octets), many
    starting with dots, so the body spans many writes."""
    rnd = random.Random(seed)
    out, total = [], 0
    while total < size:
        n = rnd.choice([0, 1, 2, 50, 500, 997, 998])
        line = "".join(rnd.choice("ab .\t~xyz") for _ in range(n))
        if rnd.random() < 0.2:
            line = "." + line[1:] if line else "."
        line = line.rstrip("\t ") if rnd.random() < 0.5 else line
        if line.startswith("."):
            # 997 + the stuffed dot + CRLF = 1000 (RFC 5321 4.5.3.1.6)
            line = line[:997]
        out.append(line + "\n")
        total += len(line) + 1
    return "".join(out).encode()


CASES = {
    "dots": (b"Subject: dots\n\n.\n..\n...\n.leading\n. space\nmid . dot\n"
             b"\n\n.\n"),
    "eightbit": "Subject: =?utf-8?q?caf=C3=A9?=\n\ncaf\u00e9 \u00fcber "
                "na\u00efve\n\u00ff\n".encode("utf-8"),
    "no_final_newline": b"Subject: no eol\n\nlast line without LF",
    "whitespace": b"Subject: ws\n\ntrailing spaces   \n\ttab first\n \n",
    "smuggled_envelope": b"X-Original-To: <evil@two.test>\n"
                         b"Subject: fake envelope in the message\n\nhi\n",
    "big": _big_body(1, 300_000),
}


@pytest.mark.parametrize("kind", ["raw", "aiosmtpd"])
def test_messages_arrive_byte_exact_with_their_envelope(sender, mx, kind):
    sink = mx.sink("mx1.test", aiosmtpd=(kind == "aiosmtpd"),
                   **({"size": 50_000_000} if kind == "raw" else {}))
    s = sender(start=False)
    want = {}
    for name, msg in CASES.items():
        params = ["BODY=8BITMIME"] if name == "eightbit" else []
        rcpts = ["b@one.test", "a@one.test", "c@one.test"] \
            if name == "dots" else ["b@one.test"]
        qid = s.drop(rcpts, msg, params=params)
        want[qid] = (name, rcpts, params)
    qid = s.drop(["bounce-target@one.test"], b"Subject: dsn\n\nnull sender\n",
                 mail_from="")
    want[qid] = ("null_sender", ["bounce-target@one.test"], [])
    s.start()
    s.wait_done(len(want))
    got = one_each(sink.wait_messages(len(want)), want)
    files = {p.name.split(":")[0]: p for p in
             (s.maildir / "cur").iterdir()}
    for qid, (name, rcpts, params) in want.items():
        m = got[qid]
        (path,) = [p for n, p in files.items() if n.startswith(qid + ".")]
        stored = s.body_of(path.read_bytes())
        assert m.data == wire_form(stored), f"{name}: content differs"
        assert m.mail_from == ("" if name == "null_sender"
                               else "alice@example.org"), name
        assert m.rcpts == rcpts, f"{name}: RCPTs (order kept)"
        if "BODY=8BITMIME" in params:
            assert "BODY=8BITMIME" in m.params, m.params
        elif kind == "raw":
            assert not [p for p in m.params if p.startswith("BODY")]
        sizes = [int(p[5:]) for p in m.params if p.upper().startswith(
            "SIZE=")]
        assert len(sizes) == 1, f"{name}: SIZE= offered, {m.params}"
        assert sizes[0] >= len(stored), f"{name}: SIZE={sizes[0]} below " \
                                        f"the message's {len(stored)} bytes"
    if kind == "raw":
        conn = sink.conns[0]
        assert conn.helo == ("EHLO", "sender.test")


def test_body_8bitmime_only_when_offered(sender, mx):
    """The envelope says BODY=8BITMIME (the body happens to be 7-bit):
    the parameter goes only to a server that offers 8BITMIME (the sink
    flags a parameter that was not offered)."""
    plain = mx.sink("mx1.test", eightbitmime=False)
    eight = mx.sink("mx2.test", eightbitmime=True)
    s = sender(start=False)
    qid = s.drop(["a@one.test", "b@two.test"], params=["BODY=8BITMIME"])
    s.start()
    s.wait_log("msg.done", queue_id=qid)
    (p,) = plain.wait_messages(1)
    (e,) = eight.wait_messages(1)
    assert not [x for x in p.params if x.upper().startswith("BODY")]
    assert "BODY=8BITMIME" in e.params


def test_implicit_mx_from_a_record(sender, mx):
    sink = mx.sink("implicit.test")
    s = sender(start=False)
    qid = s.drop(["u@implicit.test"])
    s.start()
    s.wait_done(1)
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["u@implicit.test"]
    (e,) = outcomes(s)["u@implicit.test"]
    assert (e["status"], e["queue_id"]) == ("sent", qid)
    assert e["relay"] == relay("implicit.test", mx.port)


def test_primary_mx_down_secondary_used(sender, mx):
    sink = mx.sink("mx5.test")
    s = sender(start=False)
    qid = s.drop(["u@backup.test"])
    s.start()
    s.wait_done(1)
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["u@backup.test"]
    (e,) = outcomes(s)["u@backup.test"]
    assert (e["status"], e["queue_id"]) == ("sent", qid)
    assert e["relay"] == relay("mx5.test", mx.port)
    # The session to mx5.test is mx5.test's (one socket per MX host).
    assert e["mx"] == "mx5.test"
    (opened,) = s.find_logs("session.open")
    assert (opened["mx"], opened["relay"]) == ("mx5.test", e["relay"])


def test_backup_and_primary_of_one_host_share_its_socket(sender, mx):
    """mx5.test is the backup of backup.test and the primary of
    five.test: whatever the route, one socket to it at a time (checked
    by the mx fixture) and every message once."""
    sink = mx.sink("mx5.test")
    s = sender(start=False)
    qids = []
    for i in range(10):
        qids.append(s.drop([f"b{i}@backup.test"]))
        qids.append(s.drop([f"f{i}@five.test"]))
    s.start()
    s.wait_done(20)
    one_each(sink.wait_messages(20), qids)
    assert sink.max_active == 1


def test_one_recipient_rejected_others_delivered(sender, mx):
    sink = mx.sink("mx1.test", reject_rcpts=["nobody@one.test"])
    s = sender(start=False)
    qid = s.drop(["a@one.test", "nobody@one.test", "c@one.test"])
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["a@one.test", "c@one.test"]
    st = final_status(s, qid)
    assert st == {"a@one.test": "sent", "nobody@one.test": "bounced",
                  "c@one.test": "sent"}
    (b,) = outcomes(s)["nobody@one.test"]
    assert (b["event"], b["dsn"]) == ("delivery.bounced", "5.1.1")
    assert "no such user" in b["reply"]
    assert (done["sent"], done["bounced"]) == (2, 1)
    assert [n for n in s.cur_files() if n.startswith(qid + ".")] == \
        [f"{qid}.test:2,PT"]
    sink.wait_idle()
    assert len(sink.conns) == 1


def test_failed_transactions_then_next_message_same_session(sender, mx):
    """Transactions that fail: every RCPT refused; MAIL refused (its
    pipelined RCPTs then get 503); bigger than the server's SIZE. The
    session goes on (RSET after a failed transaction: the sink flags a
    MAIL inside an open transaction) and the next message is delivered."""
    sink = mx.sink("mx1.test", size=2000,
                   reject_rcpts=["x@one.test", "y@one.test"],
                   reject_senders=["spammer@example.org"])
    # A long linger keeps the session open for the message dropped last.
    s = sender(start=False, idle_linger="5s")
    q_rcpts = s.drop(["x@one.test", "y@one.test"])
    q_from = s.drop(["f@one.test"], mail_from="spammer@example.org")
    q_big = s.drop(["big@one.test"], b"Subject: big\n\n" + b"z" * 900 +
                   b"\n" + b"z" * 900 + b"\n" + b"z" * 900 + b"\n")
    s.start()
    s.wait_done(3)
    q_ok = s.drop(["ok@one.test"])
    s.wait_done(4)
    one_each(sink.wait_messages(1), [q_ok])
    assert len(sink.conns) == 1, sink.conns
    verbs = [v for v in sink.conns[0].verbs() if v != "QUIT"]
    assert verbs.count("MAIL") >= 3 and verbs[-3:] == ["MAIL", "RCPT",
                                                       "DATA"], verbs
    st = outcomes(s)
    (f,) = st["f@one.test"]
    assert (f["event"], f["dsn"]) == ("delivery.bounced", "5.7.1"), f
    assert "sender rejected" in f["reply"], f
    for r in ("x@one.test", "y@one.test"):
        assert [(e["event"], e["dsn"]) for e in st[r]] == [
            ("delivery.bounced", "5.1.1")], st[r]
    (b,) = st["big@one.test"]
    assert (b["event"], b["dsn"]) == ("delivery.bounced", "5.3.4"), b
    assert "size" in b["reply"].lower(), b
    assert [e["status"] for e in st["ok@one.test"]] == ["sent"]
    assert s.cur_files() == sorted([f"{q_rcpts}.test:2,PT",
                                    f"{q_from}.test:2,PT",
                                    f"{q_big}.test:2,PT",
                                    f"{q_ok}.test:2,P"])


def test_malformed_files_set_aside_rest_flows(sender, mx):
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    bad = {
        "garbage": b"this is not a queue file\n",
        "no_rcpt": b"X-Original-From: <a@example.org>\nReceived: x\n\nhi\n",
        "bad_addr": b"X-Original-From: <a@example.org>\n"
                    b"X-Original-To: <no at sign>\nReceived: x\n\nhi\n",
    }
    before = s.drop(["a@one.test"])
    names = {k: s.drop(None, raw=raw) + ".test" for k, raw in bad.items()}
    after = s.drop(["b@one.test"])
    s.start()
    s.wait_done(2)
    one_each(sink.wait_messages(2), [before, after])
    for k, name in names.items():
        e = s.wait_log("msg.malformed", name=name)
        assert e.get("reason"), e
        moved = s.spool / "malformed" / name
        assert moved.read_bytes() == bad[k], k
    assert s.new_files() == []
    assert not [n for n in s.cur_files() if n.split(":")[0] in
                names.values()]
    assert s.find_logs("msg.done", queue_id=before)


@pytest.mark.parametrize("keep", [True, False])
def test_finished_messages_to_cur_or_deleted(sender, mx, keep):
    mx.sink("mx1.test")
    s = sender(start=False, keep_delivered=keep)
    qids = [s.drop([f"u{i}@one.test"]) for i in range(3)]
    s.start()
    s.wait_done(3)
    if keep:
        assert s.cur_files() == sorted(f"{q}.test:2,P" for q in qids)
    else:
        assert s.cur_files() == []
    assert s.new_files() == []
    assert s.spool_files() == []


RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_log_lines(sender, mx):
    mx.sink("mx1.test")
    s = sender(start=False)
    ten_s_ago = time.time() - 10
    qid = s.drop(["a@one.test", "b@one.test"], mtime=ten_s_ago)
    s.start()
    s.wait_done(1)
    rc = s.stop()
    assert rc == 0
    lines = s.stdout_path.read_bytes().splitlines()
    logs = [json.loads(x) for x in lines]
    for e in logs:
        assert RFC3339_MS.match(e["ts"]), e
        datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert e["svc"] == "sender", e
        assert e["level"] in ("debug", "info", "warn", "error"), e
    events = [e["event"] for e in logs]
    assert events[0] == "sender.start"
    assert events[-1] == "sender.stop"
    sent = [e for e in logs if e["event"] == "delivery.sent"]
    assert sorted(bare(e["to"]) for e in sent) == ["a@one.test",
                                                   "b@one.test"]
    for e in sent:
        for k in ("queue_id", "to", "relay", "delay", "dsn", "status",
                  "reply", "mx"):
            assert k in e, f"{k} missing in {e}"
        assert e["queue_id"] == qid
        assert e["relay"] == relay("mx1.test", s.cfg["remote_port"])
        assert e["mx"] == "mx1.test"
        assert e["status"] == "sent"
        assert DSN_RE.match(e["dsn"]) and e["dsn"].startswith("2."), e
        assert "queued as" in e["reply"], e
        delay = e["delay"]
        text = delay if isinstance(delay, str) else json.dumps(delay)
        assert re.match(r"^\d+(\.\d{1,3})?$", text), f"delay {delay!r}"
        assert 10.0 <= float(delay) < 40.0, f"delay {delay} since mtime"
    (claimed,) = [e for e in logs if e["event"] == "msg.claimed"]
    assert (claimed["queue_id"], claimed["nrcpt"]) == (qid, 2)
    (done,) = [e for e in logs if e["event"] == "msg.done"]
    assert (done["queue_id"], done["sent"], done["bounced"]) == (qid, 2, 0)
    (opened,) = [e for e in logs if e["event"] == "session.open"]
    assert opened["mx"] == "mx1.test"
    assert opened["relay"] == relay("mx1.test", s.cfg["remote_port"])
    (closed,) = [e for e in logs if e["event"] == "session.close"]
    assert (closed["mx"], closed["msgs"]) == ("mx1.test", 1)
    assert events.index("session.open") < events.index("delivery.sent") \
        < events.index("session.close")
