"""Stopping and restarting, several instances on one Maildir, the
smarthost: nothing lost, nothing delivered twice."""

import signal
import time

from .checks import one_each
from .minidns import free_udp_tcp_port
from .sinks import wait_for


def test_sigterm_mid_transaction_nothing_lost(sender, mx):
    sink = mx.sink("mx1.test", reply_delay=0.5)
    s = sender(start=False)
    qid = s.drop(["a@one.test", "b@one.test"])
    s.start()
    wait_for(lambda: sink.conns and "MAIL" in sink.conns[0].verbs(), 10,
             "MAIL at the sink")
    t0 = time.monotonic()
    assert s.stop(timeout=30) == 0
    assert time.monotonic() - t0 < 15
    assert s.find_logs("sender.stop")
    name = f"{qid}.test"
    delivered = len(sink.snapshot())
    if delivered:
        # Finished before exiting: then it is done and retired.
        assert s.cur_files() == [f"{name}:2,P"]
    else:
        assert s.spool_files() == [name], (s.new_files(), s.cur_files())
    # A new run of the same instance delivers what the first one left,
    # and nothing twice.
    sink.reply_delay = 0
    s2 = sender(instance=s.cfg["instance"])
    if not delivered:
        s2.wait_log("msg.done", queue_id=qid)
    assert s2.stop() == 0
    one_each(sink.snapshot(), [qid])
    assert s2.cur_files() == [f"{name}:2,P"]
    assert s2.spool_files() == []


def test_killed_mid_transaction_restart_delivers_once(sender, mx):
    sink = mx.sink("mx1.test", reply_delay=0.3)
    s = sender(start=False)
    qid = s.drop(["a@one.test"])
    s.start()
    wait_for(lambda: sink.conns and "MAIL" in sink.conns[0].verbs(), 10,
             "MAIL at the sink")
    s.proc.kill()
    s.proc.wait(10)
    s.expect_rc = None
    name = f"{qid}.test"
    assert sink.snapshot() == []
    # Claimed and not finished: it waits in the instance's folder.
    assert s.spool_files() == [name]
    sink.reply_delay = 0
    s2 = sender(instance=s.cfg["instance"])
    s2.wait_log("msg.done", queue_id=qid)
    one_each(sink.wait_messages(1), [qid])
    assert s2.cur_files() == [f"{name}:2,P"]
    assert s2.spool_files() == []


def test_two_instances_share_the_maildir(sender, mx):
    mx.max_simultaneous = 2
    one, two = mx.sink("mx1.test"), mx.sink("mx2.test")
    a, b = sender(), sender()
    assert a.cfg["instance"] != b.cfg["instance"]
    qids = []
    for i in range(40):
        qids.append(a.drop([f"u{i}@one.test", f"v{i}@two.test"]))
    wait_for(lambda: len(a.find_logs("msg.done")) +
             len(b.find_logs("msg.done")) >= 40, 20, "40 msg.done")
    one_each(one.wait_messages(40), qids)
    one_each(two.wait_messages(40), qids)
    ca = {e["queue_id"] for e in a.find_logs("msg.claimed")}
    cb = {e["queue_id"] for e in b.find_logs("msg.claimed")}
    assert ca.isdisjoint(cb) and ca | cb == set(qids)
    assert sorted(n.split(".test:")[0] for n in a.cur_files()) == \
        sorted(qids)


def test_smarthost_takes_everything_without_dns(sender, mx):
    relay_sink = mx.sink("mx3.test")
    dead_dns = f"127.0.0.1:{free_udp_tcp_port()}"
    s = sender(start=False, smarthost=f"127.0.0.4:{mx.port}",
               dns={"servers": [dead_dns]})
    qid = s.drop(["a@one.test", "b@two.test", "c@nx.test"])
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    assert (done["sent"], done["bounced"]) == (3, 0)
    msgs = relay_sink.wait_messages(1)
    assert sorted(r for m in msgs for r in m.rcpts) == [
        "a@one.test", "b@two.test", "c@nx.test"]
    relay_sink.wait_idle()
    assert len(relay_sink.conns) == 1
    for e in s.find_logs("delivery.sent"):
        assert f"[127.0.0.4]:{mx.port}" in e["relay"], e


def test_new_mail_picked_up_without_waiting_for_the_scan(sender, mx):
    """inotify on new/: with a scan only every minute a message dropped
    while the sender runs still goes out at once."""
    sink = mx.sink("mx1.test")
    s = sender(start=False, scan_interval="60s")
    first = s.drop(["a@one.test"])
    s.start()
    # Once the first is done the start-up scan is over; the next file
    # can only be found by watching the folder.
    s.wait_log("msg.done", queue_id=first)
    t0 = time.monotonic()
    qid = s.drop(["b@one.test"])
    s.wait_log("msg.done", timeout=5, queue_id=qid)
    assert time.monotonic() - t0 < 3.0
    one_each(sink.wait_messages(2), [first, qid])


def test_restart_never_resends_to_a_delivered_recipient(sender, mx):
    """One recipient delivered, one deferred (its only MX refuses
    connections): the journal remembers the delivery, so a restart of
    the same instance tries only the deferred one."""
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    qid = s.drop(["a@one.test", "v@dead.test"])
    s.start()
    s.wait_log("msg.deferred", queue_id=qid)
    assert s.stop() == 0
    one_each(sink.snapshot(), [qid])
    name = f"{qid}.test"
    assert s.spool_files() == [name]
    journal = s.spool / s.cfg["instance"] / f".{name}.journal"
    assert sorted(" ".join(line.split(" ")[:2]) for line in
                  journal.read_text().splitlines()) == ["0 S", "1 D",
                                                        "retry 1"]

    s2 = sender(instance=s.cfg["instance"])
    claimed = s2.wait_log("msg.claimed", queue_id=qid)
    assert claimed["resumed_final"] == 1
    s2.wait_log("msg.waiting", queue_id=qid)    # the journaled wait holds
    s2.proc.send_signal(signal.SIGUSR1)
    s2.wait_log("msg.deferred", queue_id=qid)
    assert s2.stop() == 0
    # Still exactly one copy at the sink, and the only new outcome is
    # for the deferred recipient.
    one_each(sink.snapshot(), [qid])
    tos = [e["to"] for e in s2.logs() if e["event"].startswith("delivery.")]
    assert tos == ["v@dead.test"]
