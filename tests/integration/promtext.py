"""What the metrics tests share: a strict parser for the Prometheus text
exposition format (version 0.0.4) and an HTTP receiver standing in for a
Pushgateway and a health-check service.

parse_prom() asserts on anything the format does not allow, so a body
that a real Pushgateway might reject fails the test that received it."""

import http.server
import math
import re
import select
import socket
import threading
import time

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) "
                     r"(counter|gauge|histogram|summary|untyped)$")
SAMPLE_RE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)(?: (-?\d+))?$")
LABEL_RE = re.compile(rf'({LABEL})="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def unescape(s, quote):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            nxt = s[i + 1:i + 2]
            allowed = "\\n\"" if quote else "\\n"
            assert nxt and nxt in allowed, f"bad escape in {s!r}"
            out.append("\n" if nxt == "n" else nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_value(v):
    if v in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[v]
    assert FLOAT_RE.match(v), f"bad sample value {v!r}"
    return float(v)


def parse_labels(s):
    labels, pos = {}, 0
    while pos < len(s):
        m = LABEL_RE.match(s, pos)
        assert m, f"bad label set at {s[pos:]!r}"
        assert not m.group(1).startswith("__"), f"reserved label {s!r}"
        assert m.group(1) not in labels, f"label twice in {s!r}"
        labels[m.group(1)] = unescape(m.group(2), True)
        pos = m.end()
    return tuple(sorted(labels.items()))


def parse_prom(text):
    """{family: {"help", "type", "samples": {labels: value}}}; asserts
    that every line follows the format: HELP/TYPE before their samples,
    one TYPE per family, families not interleaved, no duplicate series,
    counters never negative, the text ends with a line feed."""
    assert text.endswith("\n"), "text must end with a line feed"
    fams, done, current = {}, set(), None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        if line == "":
            continue
        if line.startswith("#"):
            m = HELP_RE.match(line) or TYPE_RE.match(line)
            assert m, f"comment is neither HELP nor TYPE: {where}"
            name = m.group(1)
            assert name not in done, f"family {name} split: {where}"
            if current and current != name:
                done.add(current)
            current = name
            fam = fams.setdefault(name, {"help": None, "type": None,
                                         "samples": {}})
            assert not fam["samples"], f"{where} after its samples"
            key = "help" if line.startswith("# HELP") else "type"
            assert fam[key] is None, f"second {key} for {name}: {where}"
            fam[key] = (unescape(m.group(2), False) if key == "help"
                        else m.group(2))
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample: {where}"
        name = m.group(1)
        assert name == current, f"sample outside its family: {where}"
        fam = fams[name]
        labels = parse_labels(m.group(2) or "")
        assert labels not in fam["samples"], f"duplicate series: {where}"
        value = parse_value(m.group(3))
        if fam["type"] == "counter":
            assert value >= 0, f"negative counter: {where}"
        fam["samples"][labels] = value
    for name, fam in fams.items():
        assert fam["type"] and fam["help"] is not None, \
            f"{name} lacks HELP or TYPE"
    return fams


def value(fams, name, **labels):
    return fams[name]["samples"][tuple(sorted(labels.items()))]


class Receiver:
    """Pushgateway stand-in on host (a loopback address): records every
    request. While .hang is set a PUT is read and then never answered
    until the client closes the connection (or the receiver stops)."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.requests = []          # (method, path, headers, body, time)
        self.lock = threading.Lock()
        self.hang = threading.Event()
        self.hung = threading.Event()   # a hung PUT is open right now
        self.hung_closed = []           # monotonic times the client left
        self.stopping = threading.Event()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self, body=b""):
                with rec.lock:
                    rec.requests.append((self.command, self.path,
                                         dict(self.headers), body,
                                         time.monotonic()))

            def do_PUT(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                self._record(body)
                if rec.hang.is_set():
                    rec.hold(self.connection)
                    self.close_connection = True
                    return
                self._answer(200)

            def do_GET(self):
                self._record()
                self._answer(200, b"OK")

            def _answer(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def hold(self, conn):
        self.hung.set()
        try:
            while not self.stopping.is_set():
                r, _, _ = select.select([conn], [], [], 0.05)
                if r and conn.recv(1, socket.MSG_PEEK) == b"":
                    with self.lock:
                        self.hung_closed.append(time.monotonic())
                    return
        except OSError:
            with self.lock:
                self.hung_closed.append(time.monotonic())
        finally:
            self.hung.clear()

    def url(self, path="", host=None):
        """http://<host or the address it listens on>:<port><path>"""
        return f"http://{host or self.host}:{self.port}{path}"

    def of(self, method):
        with self.lock:
            return [r for r in self.requests if r[0] == method]

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
