"""Durability: a 250 means the message is whole in new/, even if the
server is SIGKILLed a moment later; leftovers in tmp/ are cleaned at the
next start; SIGTERM drains; a 50 MB message is stored intact."""

import hashlib
import random
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import HOSTNAME
from mailstore import (all_stored, new_files, path_for, read_stored,
                       tmp_files, wait_until)
from smtp_wire import (ConnectionClosed, dot_stuff, make_message,
                       queue_id_of, send_mail, stored_form)

SUBJECT_RE = re.compile(rb"^Subject: (\S+)$", re.M)


def open_data(srv, rcpt="bob@ours.test"):
    w = srv.connect()
    w.cmd("EHLO client.test").expect(250)
    w.cmd("MAIL FROM:<alice@client.test>").expect(250)
    w.cmd(f"RCPT TO:<{rcpt}>").expect(250)
    w.cmd("DATA").expect(354)
    return w


def load_message(token, n):
    lines = [f"message {token}", f".dot line of {token}", ".", ""]
    lines += [f"{token} filler line {k} " + "z" * (k * 13 % 200)
              for k in range(n % 40)]
    return make_message(token, lines)


def test_kill9_under_load_keeps_every_acknowledged_message(smtpd):
    srv = smtpd(max_connections_per_ip=0)
    md = srv.maildir
    lock = threading.Lock()
    expected = {}   # token -> stored form of the message
    acked = {}      # queue id -> token (a 250 was read)
    stop = threading.Event()

    def worker(n):
        i = 0
        while not stop.is_set():
            token = f"w{n}m{i}"
            msg = load_message(token, n * 7 + i)
            with lock:
                expected[token] = msg.replace(b"\r\n", b"\n")
            try:
                qid = send_mail(srv.host, srv.port, f"{token}@client.test",
                                [f"{token}@ours.test"], msg, timeout=10)
            except Exception:  # the server is gone; stop sending
                return
            with lock:
                acked[qid] = token
            i += 1

    # A session parked in the middle of DATA, so the kill leaves a file
    # in tmp/ for the next start to clean up.
    parked = open_data(srv)
    parked.send(b"Subject: parked\r\n\r\nnever finished\r\n")
    wait_until(lambda: tmp_files(md), 5, what="a tmp/ file for DATA")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.kill()  # mid-run: the workers are in every stage of a session
    stop.set()
    for t in threads:
        t.join(30)
    parked.close()
    assert len(acked) >= 50, f"too little load before the kill: {len(acked)}"

    for qid, token in acked.items():
        st = read_stored(md, qid)
        assert st.sender == f"{token}@client.test"
        assert st.rcpts == [f"{token}@ours.test"]
        assert st.message == expected[token], qid
    # Files in new/ whose 250 never arrived must be whole too.
    for st in all_stored(md):
        token = SUBJECT_RE.search(st.message).group(1).decode()
        assert st.message == expected[token], st.path.name
    leftovers = tmp_files(md)
    assert leftovers, "the parked DATA session should have left a tmp file"

    srv2 = smtpd(maildir=md)
    wait_until(lambda: tmp_files(md) == [], 3, what="tmp/ cleaned at start")
    cleaned = srv2.wait_log("maildir.tmp_cleaned")
    assert cleaned["count"] >= len(leftovers)
    assert len(new_files(md)) >= len(acked)
    for qid in acked:
        path_for(md, qid)


def test_sigterm_lets_data_finish_and_closes_idle(smtpd):
    srv = smtpd(timeouts={"command": "20s", "data": "20s",
                          "shutdown": "15s"})
    busy = open_data(srv)
    busy.send(b"Subject: drain\r\n\r\nfirst half\r\n")
    idle = srv.connect()
    idle.cmd("EHLO client.test").expect(250)
    greeted = srv.connect()  # not even HELO yet: idle as well

    srv.send_signal(signal.SIGTERM)
    for w in (idle, greeted):
        w.read_reply(timeout=3).expect(
            421, "4.3.2", f"{HOSTNAME} Service shutting down")
        w.expect_closed()

    def refused():  # stops listening at once
        try:
            with socket.create_connection((srv.host, srv.port), 0.5):
                return False
        except ConnectionRefusedError:
            return True
    wait_until(refused, 3, what="the listener to close")

    assert srv.running(), "exited while a DATA session was in progress"
    busy.send(b"second half\r\n.\r\n")
    qid = queue_id_of(busy.read_reply(timeout=10))
    try:  # after its message the session ends too
        busy.read_reply(timeout=5).expect(421, "4.3.2")
    except ConnectionClosed:
        pass
    busy.expect_closed()
    assert srv.proc.wait(10) == 0
    assert read_stored(srv.maildir, qid).message == \
        b"Subject: drain\n\nfirst half\nsecond half\n"
    assert tmp_files(srv.maildir) == []
    assert srv.logs()[-1]["event"] == "smtpd.stop"


def test_sigterm_drain_is_bounded_by_shutdown_timeout(smtpd):
    srv = smtpd(timeouts={"command": "20s", "data": "20s", "shutdown": "1s"})
    busy = open_data(srv)
    busy.send(b"Subject: stuck\r\n\r\nnever ends")
    wait_until(lambda: tmp_files(srv.maildir), 5, what="tmp file")
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(10)
    elapsed = time.monotonic() - t0
    assert rc == 0
    assert 0.5 < elapsed < 5, elapsed
    try:  # a last word is welcome, silence is allowed; it must close
        r = busy.read_reply(timeout=3)
        assert r.code == 421, r
    except ConnectionClosed:
        pass
    busy.close()
    assert new_files(srv.maildir) == []
    assert tmp_files(srv.maildir) == [], "aborted message left in tmp/"


def test_sigint_stops_cleanly(smtpd):
    srv = smtpd()
    t0 = time.monotonic()
    assert srv.stop(signal.SIGINT, timeout=10) == 0
    assert time.monotonic() - t0 < 5
    assert srv.logs()[-1]["event"] == "smtpd.stop"


def test_client_gone_mid_data_leaves_nothing(smtpd):
    srv = smtpd()
    for how in ("close", "reset"):
        w = open_data(srv)
        w.send(b"Subject: gone\r\n\r\nhalf a message\r\n")
        wait_until(lambda: tmp_files(srv.maildir), 5, what="tmp file")
        if how == "reset":  # RST instead of FIN
            w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\1\0\0\0\0\0\0\0")
        w.close()
        wait_until(lambda: tmp_files(srv.maildir) == [], 3,
                   what=f"tmp/ cleaned after {how}")
    assert new_files(srv.maildir) == []
    # The server is unharmed.
    with srv.connect() as w:
        w.cmd("NOOP").expect(250)


def test_50mb_message_stored_intact(smtpd):
    srv = smtpd(max_message_size="64M", timeouts={"data": "60s"})
    rng = random.Random(50)
    alphabet = bytes(range(32, 127)) + b"\t" + bytes(range(0x80, 0x100))
    table = bytes(alphabet[b % len(alphabet)] for b in range(256))
    lines, size = [], 0
    while size < 1 << 20:  # ~1 MiB block of lines, 0..998 octets
        line = rng.randbytes(rng.randrange(0, 999)).translate(table)
        if rng.random() < 0.1:
            line = b"." + line
        lines.append(line)
        size += len(line) + 2
    block_wire, block_stored = dot_stuff(lines), stored_form(lines)
    reps = 50 * (1 << 20) // len(block_wire) + 1
    head = b"Subject: fifty megabytes\r\n\r\n"
    want = hashlib.sha256(head.replace(b"\r\n", b"\n"))
    with open_data(srv) as w:
        w.send(head)
        for _ in range(reps):
            w.send(block_wire)
            want.update(block_stored)
        w.send(b".\r\n")
        qid = queue_id_of(w.read_reply(timeout=120))
    wire_len = len(head) + reps * len(block_wire)
    stored_len = len(head) - 2 + reps * len(block_stored)
    assert wire_len >= 50 * (1 << 20)
    st = read_stored(srv.maildir, qid)
    assert len(st.message) == stored_len
    assert hashlib.sha256(st.message).hexdigest() == want.hexdigest()
    del st
    # The logged size is the message's, whichever form it counts.
    acc = srv.wait_log("msg.accepted", queue_id=qid)
    assert stored_len <= acc["size"] <= wire_len, acc



@pytest.fixture
def small_fs(tmp_path):
    """A 512 KiB tmpfs (needs CAP_SYS_ADMIN; skipped without it)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs",
                        str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {r.stderr.strip()}")
    yield mnt
    if subprocess.run(["umount", str(mnt)]).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)])


def send_one(w, body):
    """MAIL..DATA on an EHLO'd session; returns the reply to the data
    (or to DATA itself when DATA is refused)."""
    w.cmd("MAIL FROM:<alice@client.test>").expect(250)
    w.cmd("RCPT TO:<bob@ours.test>").expect(250)
    r = w.cmd("DATA")
    if r.code != 354:
        return r
    w.send(b"Subject: disk\r\n\r\n" + body + b".\r\n")
    return w.read_reply(timeout=30)


def test_full_disk_is_452_and_nothing_half_stored(small_fs, smtpd):
    srv = smtpd(maildir=small_fs / "md")
    filler = small_fs / "filler"
    with open(filler, "wb") as f:  # leave about 64 KiB
        f.write(b"\0" * (448 * 1024))
    body = (b"x" * 78 + b"\r\n") * 4000  # 320 KB
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        send_one(w, body).expect(452, "4.3.1", "Insufficient system storage")
        assert new_files(srv.maildir) == []
        wait_until(lambda: tmp_files(srv.maildir) == [], 3, what="tmp/ clean")
        filler.unlink()  # space again: the same session can deliver
        qid = queue_id_of(send_one(w, body))
    assert read_stored(srv.maildir, qid).message == \
        b"Subject: disk\n\n" + body.replace(b"\r\n", b"\n")


def test_write_error_is_451(small_fs, smtpd):
    srv = smtpd(maildir=small_fs / "md")
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)],
                       check=True)
        try:
            send_one(w, b"read-only\r\n").expect(
                451, "4.3.0", "Error: queue file write error")
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(small_fs)],
                           check=True)
        assert new_files(srv.maildir) == []
        queue_id_of(send_one(w, b"writable again\r\n"))
