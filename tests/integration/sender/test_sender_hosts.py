"""A host that keeps failing is backed off as a whole (its queue does not
hammer it), and a session never starts its next transaction before the
outcomes of the last one are on disk."""
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .checks import bare, outcomes
from .sinks import wait_for


def fails_at(s, host):
    return s.find_logs("session.fail", mx=host)


def test_dead_primary_is_skipped_while_backed_off(sender, mx):
    backup = mx.sink("mx5.test")
    s = sender(start=False, retry={"min_backoff": "60s"})
    first = s.drop(["u@backup.test"])
    s.start()
    s.wait_log("msg.done", queue_id=first)
    b = s.wait_log("mx.backoff", mx="deadmx.test")
    assert b["failures"] == 1 and b["backoff"] == 60.0, b
    tries = len(fails_at(s, "deadmx.test"))
    assert tries >= 1

    second = s.drop(["v@backup.test"])
    s.wait_log("msg.done", queue_id=second)
    # Straight to the backup: the dead primary was not tried again.
    assert len(fails_at(s, "deadmx.test")) == tries
    assert sorted(r for m in backup.snapshot() for r in m.rcpts) == [
        "u@backup.test", "v@backup.test"]


def test_backed_off_host_defers_without_connecting_until_sigusr1(
        sender, mx):
    s = sender(start=False, retry={"min_backoff": "60s"})
    first = s.drop(["u@one.test"])      # nothing listens on mx1.test yet
    s.start()
    d1 = s.wait_log("delivery.deferred", queue_id=first)
    assert d1["dsn"].startswith("4.4."), d1
    s.wait_log("mx.backoff", mx="mx1.test")
    tries = len(fails_at(s, "mx1.test"))

    second = s.drop(["v@one.test"])
    d2 = s.wait_log("delivery.deferred", queue_id=second)
    assert (d2["dsn"], d2["relay"]) == ("4.4.1", "none"), d2
    assert re.match(r"mx1\.test not tried for \d+s after 1 failed "
                    r"sessions \(last: ", d2["reply"]), d2
    assert len(fails_at(s, "mx1.test")) == tries

    sink = mx.sink("mx1.test")
    s.proc.send_signal(signal.SIGUSR1)
    s.wait_logs("msg.done", 2, timeout=15)
    up = s.wait_log("mx.up", mx="mx1.test")
    assert up["failures"] == 1
    assert sorted(r for m in sink.snapshot() for r in m.rcpts) == [
        "u@one.test", "v@one.test"]
    assert {to: [e["status"] for e in lines]
            for to, lines in outcomes(s).items()} == {
        "u@one.test": ["deferred", "sent"],
        "v@one.test": ["deferred", "sent"]}


def test_host_answering_4xx_to_rcpt_is_not_backed_off(sender, mx):
    """Per-recipient temporary failures are the message's business: the
    host works, so it is not backed off."""
    mx.sink("mx1.test", defer_rcpts=["slow@one.test"])
    s = sender(start=False, retry={"min_backoff": "60s"})
    qid = s.drop(["slow@one.test"])
    s.start()
    d = s.wait_log("delivery.deferred", queue_id=qid)
    assert bare(d["to"]) == "slow@one.test"
    later = s.drop(["fine@one.test"])
    s.wait_log("msg.done", queue_id=later)
    assert not s.find_logs("mx.backoff")


# -- journal before the next transaction ------------------------------------
SYSCALL = re.compile(r"^(\d+)\s+(\w+)\((\d+)?(.*)$")


def trace_events(path):
    """(tid, kind, fd) from an strace -f log: 'mail' for a write that
    starts a transaction, 'dot' for one that ends a message's data,
    'read' for a read of a socket reply, 'sync' for an fsync family
    call."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = SYSCALL.match(line)
        if not m:
            continue
        tid, call, fd, rest = m.group(1), m.group(2), m.group(3), m.group(4)
        if call in ("fsync", "fdatasync", "syncfs"):
            out.append((tid, "sync", fd))
        elif call in ("write", "sendto", "writev") and "MAIL FROM:" in rest:
            out.append((tid, "mail", fd))
        elif call in ("write", "sendto", "writev") and \
                "\\r\\n.\\r\\n" in rest:
            out.append((tid, "dot", fd))
        elif call in ("read", "recvfrom") and re.match(r', "\d{3}', rest):
            out.append((tid, "read", fd))
    return out


@pytest.mark.skipif(not shutil.which("strace"), reason="strace missing")
def test_outcomes_are_flushed_before_the_next_transaction(sender, mx,
                                                           monkeypatch):
    # LeakSanitizer cannot run under ptrace; the rest of ASan can.
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":detect_leaks=0")
    sink = mx.sink("mx1.test")
    s = sender(start=False, keep_delivered=False)
    s.start()
    trace = s.workdir / "strace.log"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-s", "256", "-o", str(trace), "-e",
         "trace=read,recvfrom,write,sendto,writev,fsync,fdatasync,syncfs",
         "-p", str(s.proc.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tasks = Path(f"/proc/{s.proc.pid}/task")
    wait_for(lambda: all(
        re.search(r"^TracerPid:\s*[1-9]", (t / "status").read_text(), re.M)
        for t in tasks.iterdir()), 10, "strace attached to every thread")
    qids = [s.drop([f"u{i}@one.test"]) for i in range(6)]
    s.wait_logs("msg.done", len(qids), timeout=30)
    s.stop()
    tracer.wait(10)
    sink.wait_messages(len(qids))
    assert len(sink.conns) == 1

    events = trace_events(trace)
    mails = [i for i, e in enumerate(events) if e[1] == "mail"]
    assert len(mails) == len(qids), events
    checked = 0
    for prev, nxt in zip(mails, mails[1:]):
        tid, _, fd = events[prev]
        dot = next(i for i in range(prev, nxt) if events[i][1] == "dot")
        reply = next(i for i in range(dot, nxt)
                     if events[i][1] == "read" and events[i][2] == fd)
        between = [e for e in events[reply:nxt] if e[1] == "sync"]
        assert between, ("MAIL written before the last transaction's "
                         f"outcome was flushed: {events[prev:nxt + 1]}")
        checked += 1
    assert checked == len(qids) - 1
    wait_for(lambda: s.spool_files() == [], 5, "spool empty")
