"""Reading what smtpd stored in its Maildir.

A stored file is (contract, "Stored file"):
    X-Original-From: <sender>[ BODY=...][ SMTPUTF8]
    X-Original-To: <rcpt>          (one per recipient, RCPT order)
    Received: ... (folded with TAB continuation lines)
    <message, dot-unstuffed, LF line ends>
Only the leading X-Original-* lines are the envelope; anything a client
wrote into its message stays in .message.
"""

import email.utils
import re
import time
from pathlib import Path

FROM_RE = re.compile(rb"^X-Original-From: <([^>]*)>((?: \S+)*)\n$")
TO_RE = re.compile(rb"^X-Original-To: <([^>]*)>\n$")
QUEUE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Stored:
    def __init__(self, path, sender, params, rcpts, received, message):
        self.path = path
        self.sender = sender          # str, "" for the null sender
        self.params = params          # e.g. ["BODY=8BITMIME", "SMTPUTF8"]
        self.rcpts = rcpts            # [str] in RCPT order
        self.received = received      # bytes, the whole folded header
        self.message = message        # bytes after our Received header

    @property
    def received_unfolded(self):
        """Received header as one line (RFC 5322 2.2.3 unfolding)."""
        return re.sub(rb"\n[ \t]+", b" ", self.received.rstrip(b"\n")) \
            .decode("utf-8")

    def __repr__(self):
        return (f"Stored({self.path.name}, from={self.sender!r}, "
                f"to={self.rcpts!r}, {len(self.message)} bytes)")


def parse_stored(data, path=None):
    lines = data.splitlines(keepends=True)
    assert lines, f"{path}: empty file"
    m = FROM_RE.match(lines[0])
    assert m, f"{path}: first line is not X-Original-From: {lines[0]!r}"
    sender = m.group(1).decode("utf-8")
    params = m.group(2).decode("utf-8").split()
    i = 1
    rcpts = []
    while i < len(lines) and lines[i].startswith(b"X-Original-To:"):
        t = TO_RE.match(lines[i])
        assert t, f"{path}: bad X-Original-To line {lines[i]!r}"
        rcpts.append(t.group(1).decode("utf-8"))
        i += 1
    assert i < len(lines) and lines[i].startswith(b"Received: "), (
        f"{path}: no Received: header after the envelope block: "
        f"{b''.join(lines[:i + 1])!r}")
    start = i
    i += 1
    while i < len(lines) and lines[i][:1] in (b"\t", b" "):
        i += 1
    received = b"".join(lines[start:i])
    message = b"".join(lines[i:])
    return Stored(path, sender, params, rcpts, received, message)


def new_files(maildir):
    return sorted(p for p in (Path(maildir) / "new").iterdir()
                  if p.is_file())


def tmp_files(maildir):
    return sorted(p for p in (Path(maildir) / "tmp").iterdir())


def all_stored(maildir):
    return [parse_stored(p.read_bytes(), p) for p in new_files(maildir)]


def path_for(maildir, queue_id):
    """The one file in new/ whose name is "<queue_id>.<host>"."""
    assert QUEUE_ID_RE.match(queue_id), f"odd queue id {queue_id!r}"
    hits = [p for p in new_files(maildir)
            if p.name.startswith(queue_id + ".")]
    assert len(hits) == 1, (
        f"want exactly one new/{queue_id}.<host>, found "
        f"{[p.name for p in new_files(maildir)]}")
    return hits[0]


def read_stored(maildir, queue_id):
    p = path_for(maildir, queue_id)
    return parse_stored(p.read_bytes(), p)


def check_received(stored, helo, client_ip, hostname, queue_id, proto,
                   rcpt=None, max_skew=300):
    """Asserts the Received header has the contract's form and a date
    close to now."""
    line = stored.received_unfolded
    head = (f"Received: from {helo} (unknown [{client_ip}]) by {hostname} "
            f"with {proto} id {queue_id}")
    head += f" for <{rcpt}>; " if rcpt else "; "
    assert line.startswith(head), f"want {head!r}..., got {line!r}"
    date = line[len(head):]
    parsed = email.utils.parsedate_to_datetime(date)
    assert parsed is not None and parsed.utcoffset() is not None, date
    assert re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
                    r"[A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$", date), \
        f"not an RFC 5322 date: {date!r}"
    assert abs(parsed.timestamp() - time.time()) < max_skew, date


def wait_until(cond, timeout=5.0, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}")
        time.sleep(interval)
