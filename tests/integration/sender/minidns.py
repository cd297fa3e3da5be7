"""A minimal DNS client (RFC 1035 4.1) for checking the test DNS server:
one UDP query, the answer section decoded for A, AAAA and MX."""

import random
import socket
import struct

TYPES = {"A": 1, "MX": 15, "AAAA": 28}
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _decode_name(msg, off):
    """Returns (name, offset after the name), following compression
    pointers (RFC 1035 4.1.4)."""
    labels, end, hops = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            hops += 1
            assert hops < 64, "DNS compression loop"
            if end is None:
                end = off + 2
            off = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii"))
        off += n
    return ".".join(labels), end if end is not None else off


def query(server, port, name, qtype, timeout=2.0):
    """Returns (rcode, answers): answers are ("A", "1.2.3.4"),
    ("AAAA", "::1") or ("MX", preference, "host" ("" for the root))."""
    qid = random.randrange(65536)
    pkt = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + \
        _encode_name(name) + struct.pack("!HH", TYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, (server, port))
        while True:
            msg, _ = s.recvfrom(4096)
            if struct.unpack("!H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        _, off = _decode_name(msg, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            answers.append(("A", socket.inet_ntop(socket.AF_INET, rdata)))
        elif rtype == 28:
            answers.append(("AAAA", socket.inet_ntop(socket.AF_INET6,
                                                     rdata)))
        elif rtype == 15:
            pref = struct.unpack("!H", rdata[:2])[0]
            answers.append(("MX", pref, _decode_name(msg, off + 2)[0]))
        off += rdlen
    return flags & 0xF, answers


def free_udp_tcp_port(host="127.0.0.1"):
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind((host, port))
            except OSError:
                continue
        return port
