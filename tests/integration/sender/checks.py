"""Small assertions shared by the sender tests."""

import os
import re
from collections import Counter

from .testzone import HOSTS

DSN_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def bare(address):
    """A log's "to" with or without angle brackets, as the bare address."""
    a = str(address)
    return a[1:-1] if a.startswith("<") and a.endswith(">") else a


def outcomes(sender, qid=None):
    """{recipient: [delivery.* lines, in order]}, of one message if qid"""
    out = {}
    for e in sender.logs():
        if qid is not None and e.get("queue_id") != qid:
            continue
        if str(e.get("event", "")).startswith("delivery."):
            out.setdefault(bare(e.get("to")), []).append(e)
    return out


def final_status(sender, qid=None):
    """{recipient: status of its last delivery line}, of one message if
    qid (a bounce has delivery lines of its own)"""
    return {to: lines[-1].get("status")
            for to, lines in outcomes(sender, qid).items()}


def relay(host, port):
    return f"{host}[{HOSTS[host]}]:{port}"


def with_qid(messages, qid):
    """Messages at a sink whose Received header carries queue id qid."""
    return [m for m in messages if f" id {qid};".encode() in m.data]


def one_each(messages, qids):
    """Asserts every qid arrived exactly once; returns {qid: Message}."""
    out = {}
    for q in qids:
        hits = with_qid(messages, q)
        assert len(hits) == 1, f"{q} arrived {len(hits)} times"
        out[q] = hits[0]
    return out


# The queue id in the Received header the tests' queue files carry (and
# in a bounce's own Received header).
QID_RE = re.compile(rb"\bid ([0-9]+\.M[0-9]+P[0-9]+Q[0-9]+);")


def qid_of(message):
    """The queue id of a message at a sink, None when it has none."""
    m = QID_RE.search(message.data)
    return m.group(1).decode() if m else None


def delivery_counts(sinks):
    """Counter {(queue id, recipient): copies accepted} over every
    message the sinks accepted."""
    counts = Counter()
    for s in sinks:
        for m in s.snapshot():
            for r in m.rcpts:
                counts[(qid_of(m), r)] += 1
    return counts


def duplicates(counts):
    """Copies beyond the first, summed over a delivery_counts() Counter."""
    return sum(n - 1 for n in counts.values() if n > 1)


# The instance folder's own bookkeeping, there while the instance lives.
INSTANCE_OWN = {".heartbeat"}


def instance_leftovers(sender):
    """What is left in the sender's instance folder besides its own
    bookkeeping: claimed messages, journals, anything else."""
    d = sender.instance_dir
    if not d.is_dir():
        return []
    return sorted(n for n in os.listdir(d) if n not in INSTANCE_OWN)
