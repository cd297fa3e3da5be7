"""Deferred recipients are tried again on a doubling schedule, fail once
the message is older than retry.max_age, and SIGUSR1 retries at once.
The wait is journaled: a restart keeps it, and a bounce after a restart
carries the replies recorded before it."""
import calendar
import email
import email.policy
import json
import signal
import subprocess
import time

from .checks import one_each
from .conftest import sender_bin
from .sinks import wait_for

FAST = {"retry": {"min_backoff": "300ms", "max_backoff": "600ms"}}
# Long enough to run `sender queue` between two tries.
SHORT = {"retry": {"min_backoff": "1s", "max_backoff": "2s"}}


def deliveries(s, to):
    return [e for e in s.logs()
            if e["event"].startswith("delivery.") and e["to"] == to]


def queue_json(s):
    r = subprocess.run([sender_bin(), "-c", str(s.config_path), "queue",
                        "--json"], capture_output=True, timeout=30)
    assert r.returncode == 0, r
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def log_time(entry):
    """A log line's ts as Unix seconds."""
    ts = entry["ts"].rstrip("Z")
    whole, _, frac = ts.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + \
        float("0." + (frac or "0"))


def iso_time(t):
    return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))


def test_deferred_three_times_then_delivered(sender, mx):
    """The MX answers 451 three times, then 250: delivered on the fourth
    try, and between the tries `sender queue` shows the attempts so far,
    the last reply and when the next try is due."""
    sink = mx.sink("mx1.test", defer_rcpts=["a@one.test"],
                   defer_reply="451 4.7.1 <{addr}>: greylisted, try later")
    s = sender(start=False, **SHORT)
    qid = s.drop(["a@one.test"])
    s.start()
    seen = []
    for attempt in (1, 2, 3):
        w = s.wait_log("msg.waiting", timeout=15, queue_id=qid,
                       attempts=attempt)
        (o,) = queue_json(s)
        (r,) = o["recipients"]
        last = deliveries(s, "a@one.test")[-1]
        assert last["event"] == "delivery.deferred"
        assert (r["status"], r["mx"], r["dsn"]) == (
            "deferred", "mx1.test", "4.7.1"), r
        assert r["reply"] == last["reply"]
        assert r["reply"].startswith("451 4.7.1 <a@one.test>: greylisted")
        # due when the log said, to the second
        due = log_time(w) + w["next_try_in"]
        assert abs(iso_time(o["next_try"]) - due) <= 1.5, (o, w)
        seen.append(o["attempts"])
        if attempt == 3:
            sink.defer_rcpts = set()
    assert seen == [1, 2, 3]
    s.wait_log("msg.done", timeout=15, queue_id=qid)
    events = [(e["event"], e["dsn"]) for e in deliveries(s, "a@one.test")]
    assert events == [("delivery.deferred", "4.7.1")] * 3 + \
        [("delivery.sent", "2.0.0")], events
    waits = [(e["attempts"], e["next_try_in"]) for e in s.logs()
             if e["event"] == "msg.waiting"]
    # 1 s, then doubling, capped at 2 s
    assert waits == [(1, 1.0), (2, 2.0), (3, 2.0)], waits
    one_each(sink.snapshot(), [qid])
    assert s.cur_files() == [f"{qid}.test:2,P"]
    assert s.spool_files() == []
    assert queue_json(s) == []


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
    # the reason quotes the last try's failure, as Postfix's does
    assert ev[1]["reply"] == ("delivery time expired after 1 attempt "
                              f"(last: {ev[0]['dsn']} {ev[0]['reply']})"), ev
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


def test_restart_keeps_the_wait(sender, mx):
    """Deferred, then the sender stops: started again, it waits for the
    rest of the journaled backoff instead of trying at once; SIGUSR1
    still tries it now."""
    sink = mx.sink("mx1.test", defer_rcpts=["a@one.test"])
    slow = {"retry": {"min_backoff": "60s", "max_backoff": "120s"}}
    s = sender(start=False, **slow)
    qid = s.drop(["a@one.test"])
    s.start()
    s.wait_log("msg.waiting", queue_id=qid, attempts=1)
    assert s.stop() == 0
    sink.defer_rcpts = set()  # a retry now would deliver it
    conns = len(sink.conns)

    s2 = sender(instance=s.cfg["instance"], **slow)
    w = s2.wait_log("msg.waiting", queue_id=qid)
    assert w["attempts"] == 1 and 30 < w["next_try_in"] < 60, w
    assert s2.find_logs("msg.claimed", queue_id=qid)
    time.sleep(2)
    assert len(sink.conns) == conns, sink.conns
    assert not s2.find_logs("msg.retry")
    (o,) = queue_json(s2)
    assert o["attempts"] == 1 and o["next_try"] is not None
    assert o["recipients"][0]["status"] == "deferred"

    s2.proc.send_signal(signal.SIGUSR1)
    s2.wait_log("msg.done", timeout=10, queue_id=qid)
    retry = s2.wait_log("msg.retry", queue_id=qid)
    assert (retry["attempts"], retry["rcpts"]) == (1, 1)
    one_each(sink.snapshot(), [qid])
    assert s2.cur_files() == [f"{qid}.test:2,P"]


def test_restart_after_the_wait_tries_at_once(sender, mx):
    """A wait that ran out while the sender was stopped: the deferred
    recipient is tried as soon as the message is picked up again."""
    sink = mx.sink("mx1.test", defer_rcpts=["a@one.test"])
    s = sender(start=False, retry={"min_backoff": "500ms"})
    qid = s.drop(["a@one.test", "b@one.test"])
    s.start()
    w = s.wait_log("msg.waiting", queue_id=qid)
    assert s.stop() == 0
    sink.defer_rcpts = set()
    (o,) = queue_json(s)
    wait_for(lambda: time.time() > iso_time(o["next_try"]) + 1, 5,
             "the wait to run out")
    s2 = sender(instance=s.cfg["instance"])
    s2.wait_log("msg.done", queue_id=qid)
    assert not s2.find_logs("msg.waiting")
    assert [e["to"] for e in s2.logs()
            if e["event"] == "delivery.sent"] == ["a@one.test"]
    assert w["attempts"] == 1
    assert s2.cur_files() == [f"{qid}.test:2,P"]


def rcpt_commands(sink, address):
    return [c for conn in sink.conns for c in conn.commands
            if c.verb == "RCPT" and f"<{address}>" in c.line]


def test_bounce_after_restart_carries_the_recorded_reply(sender, mx):
    """One recipient refused with 550 before a restart, the other
    deferred until it expires after it: the one bounce names both, the
    first with the remote server's real reply."""
    sink = mx.sink("mx1.test", reject_rcpts=["bad@one.test"],
                   defer_rcpts=["late@one.test"])
    bounce_sink = mx.sink("mx2.test")
    cfg = {"retry": {"min_backoff": "2s", "max_backoff": "2s",
                     "max_age": "4s"}}
    s = sender(start=False, **cfg)
    qid = s.drop(["bad@one.test", "late@one.test"],
                 mail_from="alice@two.test")
    s.start()
    s.wait_log("msg.waiting", queue_id=qid)
    assert s.stop() == 0
    assert not s.find_logs("bounce.sent")
    refused = s.find_logs("delivery.bounced", queue_id=qid)[0]
    assert refused["reply"].startswith("550 5.1.1")

    s2 = sender(instance=s.cfg["instance"], **cfg)
    assert s2.wait_log("msg.claimed", queue_id=qid)["resumed_final"] == 1
    sent = s2.wait_log("bounce.sent", timeout=20, queue_id=qid)
    done = s2.wait_log("msg.done", timeout=10, queue_id=qid)
    assert (done["sent"], done["bounced"]) == (0, 2)
    s2.wait_log("msg.done", timeout=15, queue_id=sent["bounce_id"])
    assert len(s.find_logs("bounce.sent") + s2.find_logs("bounce.sent")) == 1
    # the refused recipient was never tried again
    assert len(rcpt_commands(sink, "bad@one.test")) == 1
    assert [e["to"] for e in s2.logs() if e["event"] ==
            "delivery.bounced" and e["queue_id"] == qid] == ["late@one.test"]

    (b,) = bounce_sink.wait_messages(1)
    msg = email.message_from_bytes(b.data.replace(b"\r\n", b"\n"),
                                   policy=email.policy.compat32)
    human, report, _ = msg.get_payload()
    assert f"<bad@one.test>: {refused['reply']}" in human.get_payload()
    report = report.as_string()
    assert "Final-Recipient: rfc822; bad@one.test\nAction: failed\n" \
        "Status: 5.1.1\n" f"Diagnostic-Code: smtp; {refused['reply']}\n" \
        in report, report
    assert "Final-Recipient: rfc822; late@one.test\nAction: failed\n" \
        "Status: 5.4.7\n" in report, report
    assert "5.0.0" not in report and "before a restart" not in report
