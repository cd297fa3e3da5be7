"""Bounces: one RFC 3464 report to the envelope sender for the failed
recipients, written into new/ and delivered like any message; never for
a message whose sender is <>."""
import email
import email.policy

from .checks import one_each
from .sinks import wait_for


def test_one_recipient_rejected_one_bounce_to_the_sender(sender, mx):
    rcpt_sink = mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    sender_sink = mx.sink("mx2.test")
    s = sender(start=False)
    qid = s.drop(["good@one.test", "bad@one.test"],
                 mail_from="alice@two.test")
    s.start()
    sent = s.wait_log("bounce.sent", timeout=15, queue_id=qid)
    assert sent["to"] == "alice@two.test"
    s.wait_log("msg.done", timeout=15, queue_id=sent["bounce_id"])
    # The accepted recipient got the message once.
    one_each(rcpt_sink.snapshot(), [qid])
    assert rcpt_sink.snapshot()[0].rcpts == ["good@one.test"]
    assert f"{qid}.test:2,PT" in s.cur_files()

    bounces = sender_sink.wait_messages(1)
    assert len(bounces) == 1
    b = bounces[0]
    assert b.mail_from == "" and b.rcpts == ["alice@two.test"]
    msg = email.message_from_bytes(b.data.replace(b"\r\n", b"\n"),
                                   policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    human = parts[0].get_payload()
    assert "<bad@one.test>: 550 5.1.1 <bad@one.test>: no such user" in human
    report = parts[1].as_string()
    assert "Final-Recipient: rfc822; bad@one.test" in report
    assert "Action: failed" in report
    assert "Status: 5.1.1" in report
    assert "Diagnostic-Code: smtp; 550 5.1.1" in report
    assert f"X-Queue-ID: {qid}" in report
    assert "good@one.test" not in report
    assert "Subject: test" in parts[2].get_payload()


def test_null_sender_failure_makes_no_bounce(sender, mx):
    mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    s = sender(start=False)
    qid = s.drop(["bad@one.test"], mail_from="")
    s.start()
    done = s.wait_log("msg.done", timeout=15, queue_id=qid)
    assert done["bounced"] == 1
    assert not s.find_logs("bounce.sent")
    assert s.new_files() == []
    assert s.cur_files() == [f"{qid}.test:2,PT"]


def test_undeliverable_bounce_is_kept_and_not_bounced(sender, mx):
    """A bounce that cannot be delivered (its sender's domain does not
    exist) is itself failed and kept in cur/, and never bounced again."""
    mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    s = sender(start=False)
    qid = s.drop(["bad@one.test"], mail_from="alice@nx.test")
    s.start()
    sent = s.wait_log("bounce.sent", timeout=15, queue_id=qid)
    done = s.wait_log("msg.done", timeout=15, queue_id=sent["bounce_id"])
    assert done["bounced"] == 1
    wait_for(lambda: len(s.cur_files()) == 2, 10, "both in cur/")
    assert s.new_files() == []
    assert len(s.find_logs("bounce.sent")) == 1


def test_undeliverable_bounce_kept_even_without_keep_delivered(sender, mx):
    """keep_delivered: false deletes what was delivered, but a message
    from <> that failed is all that is left of that mail: kept, logged."""
    mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    s = sender(start=False, keep_delivered=False)
    lost = s.drop(["bad@one.test"], mail_from="")
    fine = s.drop(["good@one.test"])
    s.start()
    s.wait_log("msg.done", queue_id=fine)
    s.wait_log("msg.done", queue_id=lost)
    u = s.wait_log("bounce.undeliverable", queue_id=lost)
    assert (u["failed"], u["action"], u["level"]) == (1, "kept in cur/",
                                                      "warn"), u
    assert s.cur_files() == [f"{lost}.test:2,PT"]
    assert s.spool_files() == [] and s.new_files() == []


def test_undeliverable_bounce_dropped_only_when_configured(sender, mx):
    mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    s = sender(start=False, bounce={"drop_undeliverable": True})
    lost = s.drop(["bad@one.test"], mail_from="")
    s.start()
    s.wait_log("msg.done", queue_id=lost)
    u = s.wait_log("bounce.undeliverable", queue_id=lost)
    assert u["action"] == "dropped", u
    assert s.cur_files() == [] and s.spool_files() == []
    assert not s.find_logs("bounce.sent")


def test_restart_after_the_bounce_sends_no_second_one(sender, mx):
    """Killed after writing the bounce but before retiring the message:
    the journal says so, and the next run retires it without a second
    bounce and without trying the failed recipient again."""
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    qid = s.drop(["bad@one.test"], mail_from="alice@two.test")
    name = f"{qid}.test"
    inst = s.spool / s.cfg["instance"]
    inst.mkdir(parents=True, exist_ok=True)
    (s.maildir / "new" / name).rename(inst / name)
    (inst / f".{name}.journal").write_text("0 B\nbounce\n")
    s.start()
    done = s.wait_log("msg.done", timeout=15, queue_id=qid)
    assert (done["sent"], done["bounced"]) == (0, 1)
    claimed = s.find_logs("msg.claimed", queue_id=qid)[0]
    assert claimed["resumed_final"] == 1
    assert not s.find_logs("bounce.sent")
    assert s.new_files() == [] and sink.snapshot() == []
    assert s.cur_files() == [f"{name}:2,PT"]
    assert not (inst / f".{name}.journal").exists()
