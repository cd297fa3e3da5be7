"""kill -9 storms: whatever moment the sender dies at, the next run of the
same instance delivers every message, and resends only what was in
flight when it died: at most one transaction per open MX session.

The kill moments are random but seeded; the seed is in every assertion
message, and CRASH_SEED=<seed> replays a run."""

import os
import random
import time

import pytest

from .checks import (delivery_counts, duplicates, instance_leftovers,
                     one_each, qid_of)
from .sinks import wait_for

MESSAGES = 2000
KILLS = 5
# Five MX hosts, one sink each on its own loopback address.
DOMAINS = {"one.test": "mx1.test", "two.test": "mx2.test",
           "three.test": "mx3.test", "shared-a.test": "mx4.test",
           "five.test": "mx5.test"}
# Every message has at most one recipient per domain, and each domain's
# recipients travel in their own transaction.
RCPTS_PER_TXN = 1


def _drop_all(s, rng):
    """Drops MESSAGES queue files with one to three recipients on
    distinct MX hosts; returns {(queue id, recipient)}."""
    want = set()
    for i in range(MESSAGES):
        domains = rng.sample(sorted(DOMAINS), rng.choice((1, 1, 2, 3)))
        rcpts = [f"u{i}@{d}" for d in domains]
        qid = s.drop(rcpts)
        want |= {(qid, r) for r in rcpts}
    return want


def _kill(s, what):
    assert s.running(), (f"sender died on its own before {what}: rc "
                         f"{s.proc.poll()}; stderr: {s.stderr()[-2000:]}")
    s.proc.kill()
    s.proc.wait(10)
    s.expect_rc = None   # SIGKILL: no exit code, no clean stop to judge


def _storm(sender, sinks, rng, report):
    first = sender(start=False)
    want = _drop_all(first, rng)
    txns = len(want)
    # Kill once that many transactions reached the sinks, plus a random
    # few milliseconds: spread over the run, never before it started.
    marks = sorted(rng.sample(range(txns // 50, txns * 4 // 5), KILLS))

    def arrived():
        return sum(len(s.messages) for s in sinks.values())

    run = first.start()
    for k, mark in enumerate(marks):
        # A sender that died on its own ends the wait too: _kill says so.
        wait_for(lambda: arrived() >= mark or not run.running(), 60,
                 lambda: f"kill {k + 1}: {mark} transactions at the sinks "
                         f"(have {arrived()}); stdout tail:\n{run.tail()}")
        time.sleep(rng.uniform(0, 0.05))
        _kill(run, f"kill {k + 1}")
        report.append(f"kill {k + 1} after {arrived()} transactions")
        run = sender(instance=first.cfg["instance"])

    wait_for(lambda: len(run.cur_files()) >= MESSAGES, 60,
             lambda: f"{MESSAGES} files in cur/ (have "
                     f"{len(run.cur_files())}); stdout tail:\n{run.tail()}",
             interval=0.1)
    assert run.stop() == 0, run.stderr()[-3000:]

    counts = delivery_counts(sinks.values())
    missing = sorted(k for k in want if counts[k] == 0)
    assert not missing, f"{len(missing)} never delivered: {missing[:10]}"
    extra = sorted(set(counts) - want)
    assert not extra, f"unexpected deliveries: {extra[:10]}"
    for host, sink in sinks.items():
        for m in sink.snapshot():
            wrong = [r for r in m.rcpts if DOMAINS[r.split("@")[1]] != host]
            assert not wrong, f"{wrong} of {qid_of(m)} delivered to {host}"
    dups = duplicates(counts)
    bound = KILLS * len(DOMAINS) * RCPTS_PER_TXN
    report.append(f"{dups} duplicate deliveries (bound {bound}) of "
                  f"{len(want)} recipient deliveries")
    assert dups <= bound, [k for k, n in counts.items() if n > 1]

    # Everything finished and retired: nothing claimed is left, no
    # journal either, and each message is in cur/ once, all delivered.
    assert run.new_files() == []
    cur = run.cur_files()
    # (A kill between retiring a message and removing its journal leaves
    # that journal behind; the next start removes it, and the last run
    # started after the last kill.)
    left = sorted(instance_leftovers(run))
    assert left == [], f"left in the instance folder: {left[:10]}"
    assert len(cur) == MESSAGES
    assert all(n.endswith(":2,P") for n in cur), \
        [n for n in cur if not n.endswith(":2,P")][:10]
    assert sorted(n.split(".test:")[0] for n in cur) == \
        sorted({q for q, _ in want})
    assert run.spool_files("malformed") == []
    for i, inst in enumerate(sender.instances):
        bad = [e for e in inst.logs() if e.get("event") in (
            "delivery.bounced", "msg.malformed", "journal.write_failed",
            "msg.retire_failed")]
        assert not bad, f"run {i}: {bad[:5]}"


def test_kill9_storm_loses_nothing_duplicates_only_in_flight(sender, mx):
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2 ** 32))
    rng = random.Random(seed)
    sinks = {host: mx.sink(host) for host in sorted(set(DOMAINS.values()))}
    report = []
    try:
        _storm(sender, sinks, rng, report)
    except AssertionError as e:
        raise AssertionError(f"seed {seed} (replay with CRASH_SEED={seed});"
                             f" {'; '.join(report)}: {e}") from None
    print(f"kill -9 storm, seed {seed}: " + "; ".join(report))


def test_journal_of_a_retired_message_is_removed(sender, mx):
    """The state a kill right after retiring leaves: the message is in
    cur/, its journal still in the instance folder. The next run of the
    instance removes the orphan journal and sends nothing for it."""
    sink = mx.sink("mx1.test")
    s = sender(start=False)
    qid = s.drop(["a@one.test"])
    name = f"{qid}.test"
    s.instance_dir.mkdir(parents=True, exist_ok=True)
    (s.maildir / "new" / name).rename(s.maildir / "cur" / f"{name}:2,P")
    (s.instance_dir / f".{name}.journal").write_text("0 S\n")
    later = s.drop(["b@one.test"])
    s.start()
    # Start-up is over once a message claimed after it is done.
    s.wait_log("msg.done", queue_id=later)
    one_each(sink.wait_messages(1), [later])
    assert len(sink.snapshot()) == 1
    assert sorted(s.cur_files()) == sorted([f"{name}:2,P",
                                            f"{later}.test:2,P"])
    assert instance_leftovers(s) == []
