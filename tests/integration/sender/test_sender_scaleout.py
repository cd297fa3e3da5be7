"""Several senders on one spool (`docker compose up --scale sender=3`):
each instance holds a lock on its folder and beats a heartbeat; the
folder of a dead instance is adopted by a survivor, a frozen one is left
alone, and a second process with a taken instance name is refused."""

import re
import signal
import subprocess
import time
from collections import Counter

import pytest

from .conftest import sender_bin
from .sinks import wait_for

DOMAINS = ("one.test", "two.test", "three.test")   # mx1, mx2, mx3
QID_RE = re.compile(rb" id ([^;\s]+);")


def arrivals(sinks):
    """Counter {queue id: copies accepted by any sink}."""
    c = Counter()
    for s in sinks:
        for m in s.snapshot():
            found = QID_RE.search(m.data)
            assert found, f"no queue id in {m!r}"
            c[found.group(1).decode()] += 1
    return c


def wait_all_arrived(sinks, qids, timeout):
    want = set(qids)
    return wait_for(lambda: (lambda c: c if want <= set(c) else None)(
        arrivals(sinks)), timeout,
        lambda: f"all {len(want)} messages at the sinks, have "
                f"{len(want & set(arrivals(sinks)))}")


def drop_many(s, n):
    """n messages, one recipient each, spread over the three MX hosts."""
    return [s.drop([f"u{i}@{DOMAINS[i % len(DOMAINS)]}"],
                   message=f"Subject: {i}\n\nbody {i}\n".encode())
            for i in range(n)]


def test_killed_sender_folder_adopted_nothing_lost(sender, mx):
    mx.max_simultaneous = 3
    sinks = [mx.sink(h) for h in ("mx1.test", "mx2.test", "mx3.test")]
    senders = {name: sender(instance=name, orphan_after="2s", start=False)
               for name in ("a", "b", "c")}
    # All queued first: a sender that keeps up with the drops never
    # holds the backlog this test needs to kill one mid-run.
    qids = drop_many(senders["a"], 3000)
    for s in senders.values():
        s.start()

    # Kill one that has delivered some and still holds claimed mail.
    def victim():
        for name, s in senders.items():
            if s.find_logs("delivery.sent") and len(s.spool_files()) >= 20:
                return name
        return None
    name = wait_for(victim, 20, "a sender mid-run holding claimed mail",
                    interval=0.005)
    dead = senders.pop(name)
    dead.proc.kill()
    dead.proc.wait(10)
    dead.expect_rc = None   # SIGKILL: no clean stop to judge
    held = [f.split(".test")[0] for f in dead.spool_files()]
    assert held, "the killed sender held no claimed mail"
    # The hosts it had sessions with: one transaction in flight at most
    # on each, of one recipient.
    hosts = {e["mx"] for e in dead.find_logs("session.open")}
    in_flight = len(hosts) * 1

    adopted = wait_for(lambda: [e for s in senders.values()
                                for e in s.find_logs("spool.adopted",
                                                     orphan=name)],
                       15, f"spool.adopted of {name}")
    assert len(adopted) == 1, adopted
    assert adopted[0]["messages"] >= 1
    assert not (dead.spool / name).exists()

    counts = wait_all_arrived(sinks, qids, 30)
    dups = {q: n for q, n in counts.items() if n > 1}
    print(f"\nkilled {name} holding {len(held)} messages; {len(hosts)} "
          f"open sessions; {len(dups)} delivered twice: {sorted(dups)}")
    assert set(counts) == set(qids)
    assert all(n <= 2 for n in counts.values()), dups
    assert len(dups) <= in_flight, (dups, hosts)
    # Whatever was sent twice was in the killed sender's hands.
    assert set(dups) <= set(held) | {
        e["queue_id"] for e in dead.find_logs("msg.claimed")}

    # The survivors finish everything, the adopted messages included.
    def finished():
        return all(not s.spool_files() for s in senders.values()) and \
            not dead.new_files()
    wait_for(finished, 20, "spool and new/ empty")
    done = {e["queue_id"] for s in senders.values()
            for e in s.find_logs("msg.done")}
    assert set(held) <= done
    for s in senders.values():
        assert s.stop() == 0
    # One finished file per message in the shared cur/.
    assert sorted(f.split(".test:")[0] for f in dead.cur_files()) == \
        sorted(qids)


def test_frozen_sender_is_not_adopted(sender, mx):
    mx.max_simultaneous = 2
    sink = mx.sink("mx1.test", reply_delay=0.01)
    senders = {name: sender(instance=name, orphan_after="2s")
               for name in ("a", "b")}
    qids = [senders["a"].drop([f"u{i}@one.test"]) for i in range(150)]

    def delivering_and_holding():
        for name, s in senders.items():
            if s.find_logs("delivery.sent") and len(s.spool_files()) >= 10:
                return name
        return None
    name = wait_for(delivering_and_holding, 20,
                    "a sender delivering and holding claimed mail",
                    interval=0.005)
    frozen = senders[name]
    (other,) = [s for n, s in senders.items() if n != name]
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        held = frozen.spool_files()
        # Its heartbeat goes stale, but it holds its lock: the other one
        # sees a live sender and leaves the folder alone.
        line = other.wait_log("spool.orphan_locked", 15, orphan=name)
        assert line["heartbeat_age"] > 2.0
        other.wait_logs("msg.done", len(qids) - len(held) -
                        len(frozen.find_logs("msg.done")), 20)
        time.sleep(0.6)   # more beats of the other after the warning
        assert frozen.spool_files() == held
        assert not other.find_logs("spool.adopted")
        assert len(other.find_logs("spool.orphan_locked")) == 1
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    wait_all_arrived([sink], qids, 30)
    wait_for(lambda: not other.spool_files() and not frozen.spool_files(),
             20, "both folders empty")
    counts = arrivals([sink])
    assert set(counts) == set(qids)
    assert max(counts.values()) == 1, [q for q, n in counts.items()
                                       if n > 1]
    assert {q.split(".test")[0] for q in held} <= {
        e["queue_id"] for e in frozen.find_logs("msg.done")}
    assert frozen.instance_dir.is_dir()
    assert other.stop() == 0 and frozen.stop() == 0


def test_same_instance_twice_is_refused(sender, mx):
    sink = mx.sink("mx1.test")
    first = sender(instance="a")
    # health and queue neither take the lock nor disturb the sender
    for cmd in (["health"], ["queue"]):
        r = subprocess.run([sender_bin(), "-c", str(first.config_path),
                            *cmd], capture_output=True, timeout=30)
        assert r.returncode == 0, r
    second = sender(start=False, instance="a")
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="exited with 78"):
        second.start(timeout=20)
    # it waited a moment for the lock (an adopter may hold it briefly)
    assert time.monotonic() - t0 >= 2.5
    second.expect_rc = 78
    assert "instance a is in use by another sender" in second.stderr()
    assert not second.find_logs("sender.start")
    # the first one carries on
    assert first.running()
    qid = first.drop(["x@one.test"])
    first.wait_log("msg.done", queue_id=qid)
    assert arrivals([sink]) == Counter({qid: 1})
