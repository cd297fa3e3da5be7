"""DNS outage: while the resolver is down, recipients are deferred
(a temporary failure, 4.x.x), never bounced; once it answers again on the
same address, they are delivered once. The failure is not remembered:
the route cache asks again."""

import signal

from .checks import bare, final_status, one_each


def test_dns_down_defers_then_back_delivers_once(sender, mx, own_dns):
    sinks = [mx.sink(h) for h in ("mx1.test", "mx2.test", "mx3.test")]
    one, two, three = sinks
    d = own_dns()
    s = sender(start=False, dns={"servers": [d.server]},
               retry={"min_backoff": "60s"})
    s.start()

    # The resolver works: mail goes out.
    before = s.drop(["a@three.test"])
    s.wait_log("msg.done", queue_id=before)

    d.stop()
    qids = [s.drop([f"b{i}@one.test", f"c{i}@two.test"]) for i in range(3)]
    for q in qids:
        s.wait_log("msg.waiting", timeout=20, queue_id=q)
    for dom in ("one.test", "two.test"):
        assert s.find_logs("dns.fail", domain=dom, status="tempfail")
    for q in qids:
        lines = s.find_logs("delivery.deferred", queue_id=q)
        assert sorted(bare(e["to"])[0] for e in lines) == ["b", "c"], lines
        for e in lines:
            assert e["status"] == "deferred", e
            assert e["dsn"].startswith("4."), e
            assert e["relay"] == "none", e
    # Deferred, not failed: no bounce, the files wait in the instance
    # folder, nothing reached the MX hosts.
    assert not s.find_logs("delivery.bounced")
    assert not s.find_logs("bounce.sent") and not s.find_logs("bounce.failed")
    assert s.new_files() == []
    assert s.spool_files() == sorted(f"{q}.test" for q in qids)
    assert one.snapshot() == [] and two.snapshot() == []

    # Back on the same address. A new message for a domain that just
    # failed is looked up again and goes out at once: the temporary
    # failure was not cached (the waiting ones wait for their minute).
    asked = d.queries("one.test")
    d.restart()
    fresh = s.drop(["d@one.test"])
    s.wait_log("msg.done", timeout=20, queue_id=fresh)
    assert d.queries("one.test") > asked
    for q in qids:
        assert not s.find_logs("msg.done", queue_id=q)

    # SIGUSR1: the waiting ones now, each recipient exactly once.
    s.proc.send_signal(signal.SIGUSR1)
    for q in qids:
        done = s.wait_log("msg.done", timeout=20, queue_id=q)
        assert (done["sent"], done["bounced"]) == (2, 0), done
        assert final_status(s, q) == {f"b{qids.index(q)}@one.test": "sent",
                                      f"c{qids.index(q)}@two.test": "sent"}
    assert s.stop() == 0
    one_each(one.snapshot(), qids + [fresh])
    one_each(two.snapshot(), qids)
    one_each(three.snapshot(), [before])
    assert len(one.snapshot()) == 4 and len(two.snapshot()) == 3
    assert not s.find_logs("delivery.bounced")
    assert s.spool_files() == [] and s.new_files() == []
    assert sorted(s.cur_files()) == sorted(
        f"{q}.test:2,P" for q in qids + [fresh, before])


def test_dns_down_at_start_then_back_by_backoff(sender, mx, own_dns):
    """The resolver is down from the start; the next timed retry (a short
    retry.min_backoff, no signal) after it is back delivers."""
    sink = mx.sink("mx1.test")
    d = own_dns()
    d.stop()
    s = sender(start=False, dns={"servers": [d.server]},
               retry={"min_backoff": "1s"})
    qid = s.drop(["a@one.test"])
    s.start()
    first = s.wait_log("delivery.deferred", timeout=20, queue_id=qid)
    assert first["dsn"].startswith("4.") and first["relay"] == "none", first
    d.restart()
    done = s.wait_log("msg.done", timeout=20, queue_id=qid)
    assert (done["sent"], done["bounced"]) == (1, 0), done
    assert s.stop() == 0
    one_each(sink.snapshot(), [qid])
    assert not s.find_logs("bounce.sent")
    assert s.cur_files() == [f"{qid}.test:2,P"]
