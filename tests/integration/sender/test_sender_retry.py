"""Deferred recipients are tried again on a doubling schedule, fail once
the message is older than retry.max_age, and SIGUSR1 retries at once."""
import signal
import time

from .checks import one_each
from .sinks import wait_for

FAST = {"retry": {"min_backoff": "300ms", "max_backoff": "600ms"}}


def deliveries(s, to):
    return [e for e in s.logs()
            if e["event"].startswith("delivery.") and e["to"] == to]


def test_deferred_three_times_then_delivered(sender, mx):
    sink = mx.sink("mx1.test", defer_rcpts=["a@one.test"])
    s = sender(start=False, **FAST)
    qid = s.drop(["a@one.test"])
    s.start()
    wait_for(lambda: len(deliveries(s, "a@one.test")) >= 3, 15,
             "three deferrals")
    sink.defer_rcpts = set()
    s.wait_log("msg.done", timeout=15, queue_id=qid)
    events = [(e["event"], e["dsn"]) for e in deliveries(s, "a@one.test")]
    assert events == [("delivery.deferred", "4.2.1")] * 3 + \
        [("delivery.sent", "2.0.0")], events
    waits = [(e["attempts"], e["next_try_in"]) for e in s.logs()
             if e["event"] == "msg.waiting"]
    # 300 ms, then doubling, capped at 600 ms
    assert waits == [(1, 0.3), (2, 0.6), (3, 0.6)], waits
    one_each(sink.snapshot(), [qid])
    assert s.cur_files() == [f"{qid}.test:2,P"]
    assert s.spool_files() == []


def test_old_message_fails_when_deferred(sender, mx):
    s = sender(start=False, retry={"max_age": "5s"})
    qid = s.drop(["v@dead.test"], mtime=time.time() - 10)
    s.start()
    done = s.wait_log("msg.done", timeout=15, queue_id=qid)
    assert done["bounced"] == 1
    ev = deliveries(s, "v@dead.test")
    assert [e["event"] for e in ev] == ["delivery.deferred",
                                        "delivery.bounced"], ev
    assert ev[1]["dsn"] == "5.4.7"
    assert s.cur_files() == [f"{qid}.test:2,PT"]


def test_sigusr1_retries_now(sender, mx):
    sink = mx.sink("mx1.test", defer_rcpts=["a@one.test"])
    s = sender(start=False, retry={"min_backoff": "1h", "max_backoff": "2h"})
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_log("msg.waiting", queue_id=qid)
    sink.defer_rcpts = set()
    time.sleep(0.5)
    assert not s.find_logs("msg.done", queue_id=qid)  # waiting for 1 h
    s.proc.send_signal(signal.SIGUSR1)
    s.wait_log("msg.done", timeout=10, queue_id=qid)
    one_each(sink.snapshot(), [qid])


def test_stop_while_waiting_keeps_the_message(sender, mx):
    mx.sink("mx1.test", defer_rcpts=["a@one.test"])
    s = sender(start=False, retry={"min_backoff": "1h", "max_backoff": "2h"})
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_log("msg.waiting", queue_id=qid)
    t0 = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - t0 < 5  # no wait for the retry timer
    assert s.spool_files() == [f"{qid}.test"]
