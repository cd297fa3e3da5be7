"""A full disk: the Maildir and the spool on a small tmpfs, filled up
until ENOSPC. Nothing may be lost: a bounce that cannot be written keeps
its message queued, a journal that cannot be written still lets mail go
out and deferred mail wait; once there is room again, all of it finishes.

Mounting needs root (CI runs as root); elsewhere these tests are skipped
with a loud reason."""

import errno
import os
import signal
import subprocess
import warnings

import pytest

from .checks import instance_leftovers, one_each

ENOSPC_TEXT = os.strerror(errno.ENOSPC)   # "No space left on device"
SIZE = "4m"                # the small filesystem
FILL_MAX = 8 << 20         # a filler past this means no limit applies


class SmallFs:
    """A tmpfs of a few MiB mounted at `path`."""

    def __init__(self, path):
        self.path = path
        self.filler = path / "filler"

    def fill(self):
        """Writes the filler until not even one byte more fits."""
        chunk = 1 << 20
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            while chunk:
                assert os.fstat(fd).st_size <= FILL_MAX, \
                    "the tmpfs size limit is not enforced here"
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
        finally:
            os.close(fd)
        probe = self.path / "probe"
        with pytest.raises(OSError) as info:
            with open(probe, "wb") as f:
                f.write(b"x")
        probe.unlink()
        assert info.value.errno == errno.ENOSPC, info.value

    def free(self):
        self.filler.unlink()


def _loud_skip(why):
    msg = f"DISK-FULL TESTS NOT RUN: {why}"
    warnings.warn(msg)
    pytest.skip(msg)


@pytest.fixture
def small_fs(tmp_path):
    """Request it before `sender` so it is torn down after the sender
    stopped (a busy mount cannot be unmounted)."""
    if os.geteuid() != 0:
        _loud_skip("mounting a tmpfs needs root (run as root, as CI does)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700",
                        "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        _loud_skip(f"mount -t tmpfs failed: {r.stderr.strip()}")
    try:
        yield SmallFs(mnt)
    finally:
        if subprocess.run(["umount", str(mnt)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def _on(fs, **more):
    """Config overrides: Maildir and spool on the small filesystem."""
    return dict(maildir=str(fs.path / "maildir"),
                spool=str(fs.path / "spool"), **more)


def _where(s, qids):
    """{qid: "cur" | "spool"}; fails when one is lost (in neither, or
    back in new/) or in both."""
    cur = {n.split(".test:")[0] for n in s.cur_files()}
    spool = {n[:-len(".test")] for n in s.spool_files()}
    new = {n[:-len(".test")] for n in s.new_files()}
    out = {}
    for q in qids:
        places = [p for p, names in (("cur", cur), ("spool", spool),
                                     ("new", new)) if q in names]
        assert len(places) == 1 and places != ["new"], \
            f"{q} is in {places or 'no folder: lost'}"
        out[q] = places[0]
    return out


# -- the bounce cannot be written ------------------------------------------
def _bounce_blocked(small_fs, sender, mx):
    """A message whose only recipient gets 550, handled while the disk is
    full: its bounce cannot be written, so it stays queued."""
    mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    back = mx.sink("mx2.test")     # the envelope sender's MX
    cfg = _on(small_fs, retry={"min_backoff": "60s"})
    s = sender(start=False, **cfg)
    qid = s.drop(["bad@one.test"], mail_from="alice@two.test")
    small_fs.fill()
    s.start()
    failed = s.wait_log("bounce.failed", timeout=20, queue_id=qid)
    assert failed["level"] == "error" and ENOSPC_TEXT in failed["error"], \
        failed
    bounced = s.wait_log("delivery.bounced", queue_id=qid)
    assert bounced["dsn"] == "5.1.1", bounced
    # Not retired without its bounce, and not lost.
    assert s.spool_files() == [f"{qid}.test"]
    assert s.cur_files() == [] and s.new_files() == []
    assert list((s.maildir / "tmp").iterdir()) == [], "half-written bounce"
    assert not s.find_logs("msg.done", queue_id=qid)
    assert not s.find_logs("bounce.sent")
    assert back.snapshot() == []
    return s, qid, back, cfg


def _bounce_finished(run, qid, back, timeout=20):
    """After room was made: the bounce went out once and the message is
    retired with the failure flag."""
    sent = run.wait_log("bounce.sent", timeout=timeout, queue_id=qid)
    bid = sent["bounce_id"]
    run.wait_log("msg.done", timeout=20, queue_id=qid)
    run.wait_log("msg.done", timeout=20, queue_id=bid)
    msgs = back.wait_messages(1)
    assert len(msgs) == 1, msgs
    assert msgs[0].mail_from == "" and msgs[0].rcpts == ["alice@two.test"]
    assert f"X-Queue-ID: {qid}".encode() in msgs[0].data
    assert sorted(run.cur_files()) == sorted(
        [f"{qid}.test:2,PT", f"{bid}.{run.cfg['hostname']}:2,P"])
    assert run.spool_files() == [] and run.new_files() == []
    assert instance_leftovers(run) == [], "journal left behind"


def test_bounce_unwritable_message_kept_then_bounced(small_fs, sender, mx):
    """Finished after room is made, by SIGUSR1 or else by a restart."""
    s, qid, back, cfg = _bounce_blocked(small_fs, sender, mx)
    small_fs.free()
    s.proc.send_signal(signal.SIGUSR1)
    run = s
    try:
        s.wait_log("bounce.sent", timeout=5, queue_id=qid)
    except AssertionError:
        # Only a new run retries the bounce: the same instance again.
        assert s.stop() == 0
        assert s.spool_files() == [f"{qid}.test"]
        run = sender(instance=s.cfg["instance"], **cfg)
    _bounce_finished(run, qid, back)
    assert run.stop() == 0


def test_bounce_unwritable_retried_without_restart(small_fs, sender, mx):
    """SIGUSR1 after room was made retries the bounce in the same run."""
    s, qid, back, _ = _bounce_blocked(small_fs, sender, mx)
    small_fs.free()
    s.proc.send_signal(signal.SIGUSR1)
    _bounce_finished(s, qid, back, timeout=10)
    assert s.stop() == 0


# -- the journal cannot be written -----------------------------------------
def test_journal_unwritable_nothing_lost(small_fs, sender, mx):
    """Outcomes while the disk is full cannot be journalled: that is
    logged, delivered mail is still retired, deferred mail stays queued
    and goes out once there is room and its MX is back."""
    up = mx.sink("mx2.test")
    # one.test's MX has no sink yet: its connections are refused.
    s = sender(start=False, **_on(small_fs, retry={"min_backoff": "60s"}))
    only_up = [s.drop([f"a{i}@two.test"]) for i in range(3)]
    only_down = [s.drop([f"b{i}@one.test"]) for i in range(3)]
    both = [s.drop([f"c{i}@two.test", f"d{i}@one.test"]) for i in range(3)]
    waiting = only_down + both
    everything = only_up + waiting
    small_fs.fill()
    s.start()
    for q in only_up:
        s.wait_log("msg.done", timeout=20, queue_id=q)
    for q in waiting:
        s.wait_log("msg.waiting", timeout=20, queue_id=q)

    errors = s.find_logs("journal.write_failed") + \
        s.find_logs("journal.sync_failed")
    assert errors, "no journal error logged while the disk is full"
    for e in errors:
        assert ENOSPC_TEXT in e["error"], e
    failed = {e.get("queue_id") for e in s.find_logs("journal.write_failed")}
    assert set(waiting) <= failed, set(waiting) - failed
    assert _where(s, everything) == {
        **{q: "cur" for q in only_up}, **{q: "spool" for q in waiting}}
    one_each(up.snapshot(), only_up + both)
    assert len(up.snapshot()) == 6
    for q in both:
        d = s.find_logs("delivery.deferred", queue_id=q)
        assert [e["to"] for e in d] == [f"d{both.index(q)}@one.test"], d

    # Still full, SIGUSR1 while one.test's MX is still down: deferred
    # again, still queued, nothing sent twice.
    s.proc.send_signal(signal.SIGUSR1)
    for q in waiting:
        s.wait_logs("msg.waiting", 2, timeout=20, queue_id=q)
    assert _where(s, everything) == {
        **{q: "cur" for q in only_up}, **{q: "spool" for q in waiting}}
    assert len(up.snapshot()) == 6

    small_fs.free()
    down = mx.sink("mx1.test")
    s.proc.send_signal(signal.SIGUSR1)
    for q in waiting:
        s.wait_log("msg.done", timeout=20, queue_id=q)
    assert s.stop() == 0
    assert set(_where(s, everything).values()) == {"cur"}
    one_each(up.snapshot(), only_up + both)
    one_each(down.snapshot(), waiting)
    assert len(up.snapshot()) == 6 and len(down.snapshot()) == 6
    assert all(n.endswith(":2,P") for n in s.cur_files())
    assert instance_leftovers(s) == [], "journal left behind"
    assert not s.find_logs("delivery.bounced")
