"""Small assertions shared by the sender tests."""

import re

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
