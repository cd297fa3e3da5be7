"""Sessions: one socket per MX host, everything queued for it in one
session, PIPELINING when offered and only then, HELO fallback, a slow MX
that does not hold up others, 421 mid-session and the per-session cap."""

import time

import pytest

from .checks import final_status, one_each


def test_hundred_messages_one_connection(sender, mx):
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    qids = [s.drop([f"u{i % 7}@one.test"]) for i in range(100)]
    s.start()
    s.wait_done(100, timeout=60)
    one_each(sink.wait_messages(100), qids)
    sink.wait_idle()
    assert len(sink.conns) == 1, sink.conns
    assert sink.messages_per_conn() == {0: 100}
    verbs = sink.conns[0].verbs()
    assert verbs[-1] == "QUIT" and verbs.count("EHLO") == 1


def test_domains_with_one_mx_host_share_the_session(sender, mx):
    sink = mx.sink("mx4.test")
    s = sender(start=False)
    qa = s.drop(["x@shared-a.test"])
    qb = s.drop(["y@shared-b.test"])
    qab = s.drop(["x2@shared-a.test", "y2@shared-b.test"])
    s.start()
    s.wait_done(3)
    msgs = sink.wait_messages(2)
    sink.wait_idle()
    assert len(sink.conns) == 1, sink.conns
    # Each recipient got the message exactly once.
    got = sorted((r, q) for m in msgs for r in m.rcpts
                 for q in (qa, qb, qab) if f" id {q};".encode() in m.data)
    assert got == sorted([("x@shared-a.test", qa), ("y@shared-b.test", qb),
                          ("x2@shared-a.test", qab),
                          ("y2@shared-b.test", qab)])
    assert set(final_status(s).values()) == {"sent"}
    assert {e["mx"] for e in s.find_logs("delivery.sent")} == {"mx4.test"}


@pytest.mark.parametrize("offered", [True, False],
                         ids=["offered", "not_offered"])
def test_pipelining_only_when_offered(sender, mx, offered):
    sink = mx.sink("mx1.test", pipelining=offered)
    s = sender(start=False)
    qids = [s.drop(["a@one.test", "b@one.test", "c@one.test"]),
            s.drop(["d@one.test"])]
    s.start()
    s.wait_done(2)
    one_each(sink.wait_messages(2), qids)
    sink.wait_idle()
    (conn,) = sink.conns
    cmds = conn.commands
    mails = [i for i, c in enumerate(cmds) if c.verb == "MAIL"]
    assert len(mails) == 2, cmds
    for i in mails:
        group = cmds[i:i + 1 + [c.verb for c in cmds[i + 1:]].index("DATA")
                     + 1]
        assert [c.verb for c in group][-1] == "DATA"
        if offered:
            # RFC 2920: MAIL, every RCPT and DATA in one write, so the
            # server read them in one recv().
            assert len({c.chunk for c in group}) == 1, group
            assert all(c.pipelined for c in group[1:]), group
        else:
            assert len({c.chunk for c in group}) == len(group), group
            assert not any(c.pipelined for c in cmds), cmds
    # Without PIPELINING the sink also records any command sent early as
    # a violation, which fails the test at teardown.


def test_helo_fallback_when_ehlo_refused(sender, mx):
    sink = mx.sink("mx1.test", ehlo=False)
    s = sender(start=False)
    qid = s.drop(["a@one.test"], params=[])
    s.start()
    s.wait_done(1)
    one_each(sink.wait_messages(1), [qid])
    (conn,) = sink.conns
    assert conn.verbs()[:3] == ["EHLO", "HELO", "MAIL"], conn.commands
    assert conn.helo == ("HELO", "sender.test")
    assert final_status(s) == {"a@one.test": "sent"}


def test_slow_mx_does_not_slow_the_others(sender, mx):
    slow = mx.sink("mx1.test", reply_delay=2.0)
    fast = [mx.sink("mx2.test"), mx.sink("mx3.test")]
    s = sender(start=False)
    slow_q = s.drop(["slow@one.test"])
    fast_q = [s.drop([f"f{i}@two.test"]) for i in range(5)] + \
             [s.drop([f"f{i}@three.test"]) for i in range(5)]
    s.start()
    f_msgs = fast[0].wait_messages(5) + fast[1].wait_messages(5)
    one_each(f_msgs, fast_q)
    # Greeting, EHLO, MAIL/RCPT/DATA and the final dot: 6 replies, 12 s.
    (m,) = slow.wait_messages(1, timeout=30)
    one_each([m], [slow_q])
    last_fast = max(x.t for x in f_msgs)
    first_slow_reply = slow.conns[0].replies[0][0]
    assert last_fast < first_slow_reply + 2.0, (
        "fast MX hosts finished only "
        f"{last_fast - first_slow_reply:.1f}s after the slow one's greeting")
    assert m.t - last_fast > 6.0, "slow MX was not slow?"
    s.wait_done(11)


@pytest.mark.parametrize("how", ["421", "close"])
def test_421_mid_session_rest_goes_in_new_sessions(sender, mx, how):
    """After 3 messages the server says 421 (or just closes, as if it
    crashed) at the next MAIL."""
    sink = mx.sink("mx1.test", max_msgs_per_conn=3, over_max=how)
    s = sender(start=False)
    qids = [s.drop([f"u{i}@one.test"]) for i in range(10)]
    s.start()
    s.wait_done(10, timeout=30)
    one_each(sink.wait_messages(10), qids)
    sink.wait_idle()
    per_conn = sink.messages_per_conn()
    assert len(sink.conns) >= 4, sink.conns
    assert max(per_conn.values()) <= 3, per_conn
    # Never two sockets at once (the mx fixture checks it, and here it
    # matters most).
    assert sink.max_active == 1
    assert set(final_status(s).values()) == {"sent"}
    for q in qids:
        assert len(s.find_logs("delivery.sent", queue_id=q)) == 1, q


def test_max_messages_per_session(sender, mx):
    sink = mx.sink("mx1.test")
    s = sender(start=False, max_messages_per_session=2)
    qids = [s.drop([f"u{i}@one.test"]) for i in range(5)]
    s.start()
    s.wait_done(5)
    one_each(sink.wait_messages(5), qids)
    sink.wait_idle()
    per_conn = sink.messages_per_conn()
    assert max(per_conn.values()) <= 2, per_conn
    assert len(sink.conns) >= 3
    assert all(c.verbs()[-1] == "QUIT" for c in sink.conns), sink.conns
    closes = s.wait_logs("session.close", len(sink.conns), mx="mx1.test")
    assert sorted(e["msgs"] for e in closes) == sorted(per_conn.values())


def test_more_than_100_recipients_split_into_transactions(sender, mx):
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    rcpts = [f"r{i:03d}@one.test" for i in range(150)]
    qid = s.drop(rcpts)
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    assert (done["sent"], done["bounced"]) == (150, 0)
    msgs = sink.snapshot()
    # RFC 5321 4.5.3.1.8: 100 is the most a server must take; the sink
    # also flags a 101st RCPT in one transaction.
    assert all(len(m.rcpts) <= 100 for m in msgs), [len(m.rcpts)
                                                     for m in msgs]
    got = sorted(r for m in msgs for r in m.rcpts)
    assert got == rcpts
    assert len({m.conn for m in msgs}) == 1


def test_busy_greeting_next_mx_used(sender, mx):
    busy = mx.sink("mx6.test", greeting="421 4.3.2 too busy, try later")
    ok = mx.sink("mx7.test")
    s = sender(start=False)
    qid = s.drop(["u@busy.test"])
    s.start()
    s.wait_log("msg.done", queue_id=qid)
    (m,) = ok.wait_messages(1)
    assert m.rcpts == ["u@busy.test"]
    assert busy.snapshot() == [] and len(busy.conns) >= 1
    assert not [c for conn in busy.conns for c in conn.commands
                if c.verb in ("MAIL", "RCPT", "DATA")]
    (e,) = s.find_logs("delivery.sent", queue_id=qid)
    assert e["relay"].startswith("mx7.test[127.0.0.8]:"), e


def test_greeting_timeout_defers(sender, mx):
    sink = mx.sink("mx1.test", reply_delay=3.0)
    s = sender(start=False, timeouts={"greeting": "1s"})
    qid = s.drop(["u@one.test"])
    s.start()
    t0 = time.monotonic()
    d = s.wait_log("delivery.deferred", timeout=10, queue_id=qid)
    assert time.monotonic() - t0 < 3.0, "greeting timeout not applied"
    assert d["dsn"].startswith("4."), d
    assert sink.snapshot() == []
    assert s.spool_files() == [f"{qid}.test"]
