"""SMTP sinks: the remote MX hosts the sender delivers to.

`Sink` is a raw-socket SMTP server (one thread per connection) written for
full control and exact evidence. For every connection it keeps each recv()
chunk with the number of replies already sent when it arrived, so a test
can tell a pipelined command (sent before the reply to the previous one,
RFC 2920) from a lock-step one; every command line; every reply; and the
messages with their envelope and exact content (dot-stuffing undone, CRLF
kept). It also counts simultaneous connections (DESIGN.md: at most one
socket per MX host) and records protocol violations it sees from the
client; the conftest fails a test whose sinks saw any.

Options: pipelining / 8bitmime / smtputf8 / size advertised or not, EHLO
refused with 502 (HELO fallback), recipients rejected with 550 or 450,
senders rejected with 550, a
delay before every reply (slow MX), 421 after N messages in one
connection, a refusing greeting (e.g. 421) followed by close, STARTTLS
advertised but broken (220 and then bytes that are not TLS) or refused
(454).

`AioSink` is the same role played by aiosmtpd's Controller, an independent
SMTP server implementation (it does not offer PIPELINING), used to check
that what the sender sends is understood by someone else's parser too.
Given an ssl.SSLContext it offers STARTTLS; each message records whether
it came inside TLS.
"""

import bisect
import re
import socket
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

ADDR_RE = re.compile(r"^(MAIL FROM|RCPT TO):<([^>]*)>((?: [^ ]+)*)$",
                     re.IGNORECASE)
# RFC 2920 3.1: these may only be the last command of a pipelined group.
GROUP_END = {"EHLO", "HELO", "DATA", "QUIT", "NOOP", "VRFY", "EXPN",
             "TURN", "STARTTLS", "AUTH"}
MAX_RCPTS = 100


def wait_for(cond, timeout, what, interval=0.02):
    """Polls cond() until truthy; fails with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(interval)


def wire_form(stored_body):
    """What a stored body (LF line ends) must look like after the SMTP
    round trip with dot-stuffing undone: every LF becomes CRLF, and a
    body without a final line end gets one (RFC 5321 4.5.2)."""
    out = stored_body.replace(b"\n", b"\r\n")
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


class Message:
    """One message the sink accepted with 250 after the final dot."""

    def __init__(self, conn, mail_from, params, rcpts, data, wire):
        self.conn = conn            # Conn id within the sink
        self.mail_from = mail_from  # str, "" for <>
        self.params = params        # MAIL parameters, e.g. ["SIZE=12"]
        self.rcpts = rcpts          # accepted recipients, in order
        self.data = data            # bytes, unstuffed, CRLF kept
        self.wire = wire            # bytes as sent, ".\r\n" excluded
        self.t = time.monotonic()   # when the 250 was sent

    def __repr__(self):
        return (f"Message(conn={self.conn}, from={self.mail_from!r}, "
                f"to={self.rcpts!r}, {len(self.data)} bytes)")


class Command:
    def __init__(self, line, chunk, arrival_replies, reply_no):
        self.line = line                    # str, CRLF stripped
        self.verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        self.chunk = chunk                  # recv() index of its 1st byte
        self.arrival_replies = arrival_replies  # replies sent by then
        self.reply_no = reply_no            # number of its reply

    @property
    def pipelined(self):
        """Sent before the reply to the previous command (RFC 2920)."""
        return self.arrival_replies < self.reply_no

    def __repr__(self):
        return (f"<{self.line!r} chunk={self.chunk} "
                f"replies={self.arrival_replies}/{self.reply_no}>")


class Conn:
    def __init__(self, cid, peer):
        self.id = cid
        self.peer = peer
        self.t_open = time.monotonic()
        self.t_close = None
        self.chunks = []        # [(t, bytes, replies sent before)]
        self.chunk_starts = []  # absolute offset of each chunk
        self.received = 0       # bytes so far
        self.commands = []      # [Command]
        self.replies = []       # [(t sent, bytes)]
        self.pending = []       # replies not yet written
        self.helo = None        # ("EHLO"|"HELO", name) accepted
        self.messages = 0
        self.advertised = set()

    def chunk_of(self, offset):
        return bisect.bisect_right(self.chunk_starts, offset) - 1

    def verbs(self):
        return [c.verb for c in self.commands]

    def __repr__(self):
        return f"Conn({self.id}, {self.verbs()}, msgs={self.messages})"


class Closed(Exception):
    pass


# Linux TCP states (include/net/tcp_states.h) in which the peer has sent
# its FIN or the socket is gone: the client has closed its end.
_PEER_CLOSED = {6, 7, 8, 9, 11}   # TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK CLOSING


def _peer_open(sock):
    """True while the client has not closed its end of sock. The kernel
    knows at once; the thread serving sock may notice later, so this is
    what counts for "two sockets at once" (a client that closes and then
    reconnects has its FIN queued here before its SYN reaches accept)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return info[0] not in _PEER_CLOSED


class Sink:
    def __init__(self, host, port, name=None, pipelining=True,
                 eightbitmime=True, smtputf8=False, size=None, ehlo=True,
                 reject_rcpts=(), defer_rcpts=(), reject_senders=(),
                 reply_delay=0.0,
                 defer_reply="450 4.2.1 <{addr}>: mailbox busy, try later",
                 max_msgs_per_conn=None, over_max="421", greeting=None,
                 idle_timeout=30.0, starttls=None):
        self.host = host
        self.port = port
        self.name = name or host
        self.pipelining = pipelining
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.size = size
        self.ehlo = ehlo
        self.reject_rcpts = {r.lower() for r in reject_rcpts}
        self.defer_rcpts = {r.lower() for r in defer_rcpts}
        self.defer_reply = defer_reply     # to RCPT of defer_rcpts
        self.reject_senders = {r.lower() for r in reject_senders}
        self.greeting = greeting    # e.g. "421 4.3.2 busy": then close
        self.reply_delay = reply_delay
        self.max_msgs_per_conn = max_msgs_per_conn
        self.over_max = over_max    # "421", or "close": drop the socket
        self.idle_timeout = idle_timeout
        self.starttls = starttls    # None, "garbage" or "refuse"
        self.lock = threading.Lock()
        self.conns = []
        self.messages = []
        self.violations = []
        self.active = 0         # connections not yet closed here
        self.max_active = 0     # most client-open connections at once
        self.errors = []        # exceptions in connection threads
        self._live = {}         # conn id -> socket, while served
        self._stop = threading.Event()
        self._threads = []
        self._lsock = None

    # -- life cycle -----------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        s.settimeout(0.1)
        self._lsock = s
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name=f"sink-{self.name}")
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in list(self._threads):
            t.join(10)
        if self._lsock:
            self._lsock.close()
            self._lsock = None

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, peer = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                conn = Conn(len(self.conns), peer)
                self.conns.append(conn)
                self.active += 1
                others = [sk for sk in self._live.values() if _peer_open(sk)]
                self._live[conn.id] = sock
                self.max_active = max(self.max_active, 1 + len(others))
            t = threading.Thread(target=self._serve, args=(sock, conn),
                                 daemon=True,
                                 name=f"sink-{self.name}-{conn.id}")
            t.start()
            self._threads.append(t)

    # -- evidence -------------------------------------------------------------
    def violation(self, conn, what):
        with self.lock:
            self.violations.append(f"{self.name} conn {conn.id}: {what}")

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait_messages(self, n, timeout=10.0):
        """Waits until at least n messages arrived; returns them all."""
        wait_for(lambda: len(self.messages) >= n, timeout,
                 lambda: f"{n} messages at {self.name}, have "
                         f"{len(self.messages)}: {self.conns}")
        return self.snapshot()

    def wait_idle(self, timeout=10.0):
        """Waits until every connection so far has been closed."""
        wait_for(lambda: self.conns and self.active == 0, timeout,
                 lambda: f"{self.name} idle (active={self.active})")

    def messages_per_conn(self):
        out = {}
        for m in self.snapshot():
            out[m.conn] = out.get(m.conn, 0) + 1
        return out

    # -- one connection ------------------------------------------------------
    def _serve(self, sock, conn):
        sock.settimeout(0.2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = {"buf": b"", "base": 0}   # unread bytes, offset of buf[0]
        try:
            self._session(sock, conn, st)
        except Closed:
            pass
        except Exception as e:  # noqa: BLE001 - kept as evidence
            with self.lock:
                self.errors.append(f"{self.name} conn {conn.id}: {e!r}")
        finally:
            with self.lock:
                self._live.pop(conn.id, None)
                conn.t_close = time.monotonic()
                self.active -= 1
            sock.close()

    def _recv(self, sock, conn, st):
        self._flush(sock, conn)
        deadline = time.monotonic() + self.idle_timeout
        while True:
            if self._stop.is_set():
                raise Closed()
            try:
                data = sock.recv(65536)
            except socket.timeout:
                if time.monotonic() > deadline:
                    self.violation(conn, "client idle too long")
                    raise Closed()
                continue
            except OSError:
                raise Closed()
            if not data:
                raise Closed()
            conn.chunk_starts.append(conn.received)
            conn.chunks.append((time.monotonic(), data, len(conn.replies)))
            conn.received += len(data)
            st["buf"] += data
            return

    def _line(self, sock, conn, st):
        """Next CRLF line: (bytes without CRLF, absolute start offset)."""
        while b"\r\n" not in st["buf"]:
            if len(st["buf"]) > 4096:
                self.violation(conn, "line without CRLF over 4096 bytes")
                raise Closed()
            self._recv(sock, conn, st)
        line, rest = st["buf"].split(b"\r\n", 1)
        start = st["base"]
        st["base"] += len(line) + 2
        st["buf"] = rest
        if b"\n" in line or b"\r" in line:
            self.violation(conn, f"bare CR or LF in {line[:80]!r}")
        return line, start

    def _reply(self, sock, conn, text):
        """Queues a reply; like a real server (RFC 2920 3.2 and Postfix)
        the replies to a pipelined group go out in one write, when no
        more input is waiting (see _recv)."""
        if self.reply_delay:
            time.sleep(self.reply_delay)
            if conn.pending:
                self._flush(sock, conn)
        conn.pending.append(text.replace("\n", "\r\n").encode() +
                            b"\r\n")

    def _flush(self, sock, conn):
        if not conn.pending:
            return
        try:
            sock.sendall(b"".join(conn.pending))
        except OSError:
            raise Closed()
        now = time.monotonic()
        conn.replies += [(now, raw) for raw in conn.pending]
        conn.pending = []

    def _close_after(self, sock, conn, st):
        """Stop writing; let the client read our last reply and close
        (closing with unread input would send it a RST instead)."""
        self._flush(sock, conn)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            raise Closed()
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                if not sock.recv(65536):
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        raise Closed()

    def _ehlo_text(self):
        ext = [self.name]
        if self.pipelining:
            ext.append("PIPELINING")
        if self.eightbitmime:
            ext.append("8BITMIME")
        if self.size is not None:
            ext.append(f"SIZE {self.size}")
        if self.smtputf8:
            ext.append("SMTPUTF8")
        if self.starttls:
            ext.append("STARTTLS")
        ext.append("ENHANCEDSTATUSCODES")
        return "\n".join(f"250-{e}" for e in ext[:-1]) + f"\n250 {ext[-1]}"

    def _session(self, sock, conn, st):
        if self.greeting:
            self._reply(sock, conn, self.greeting)
            self._close_after(sock, conn, st)
        self._reply(sock, conn, f"220 {self.name} ESMTP sink")
        txn = None  # {"from":, "params":, "rcpts": [], "tried": 0}
        group_end = "greeting"  # verb that ended the last group, if any
        while True:
            raw, start = self._line(sock, conn, st)
            line = raw.decode("utf-8", "replace")
            chunk = conn.chunk_of(start)
            cmd = Command(line, chunk, conn.chunks[chunk][2],
                          len(conn.replies) + len(conn.pending))
            conn.commands.append(cmd)
            if len(raw) + 2 > 512 and cmd.verb not in ("MAIL", "RCPT"):
                self.violation(conn, f"command over 512 octets: {line!r}")
            if cmd.pipelined:
                if "PIPELINING" not in conn.advertised:
                    self.violation(conn, f"{line!r} sent before the reply "
                                         "to the previous command without "
                                         "PIPELINING")
                elif group_end:
                    self.violation(conn, f"{line!r} pipelined after "
                                         f"{group_end} (RFC 2920 3.1)")
            v = cmd.verb
            # Message content may start a group (RFC 2920 3.1), so after
            # an accepted DATA the next command may be pipelined.
            group_end = v if v in GROUP_END else None
            if v == "EHLO":
                if not self.ehlo:
                    self._reply(sock, conn, "502 5.5.1 EHLO not supported")
                    continue
                conn.helo = ("EHLO", line[5:])
                ext = {"PIPELINING": self.pipelining,
                       "8BITMIME": self.eightbitmime,
                       "SMTPUTF8": self.smtputf8,
                       "SIZE": self.size is not None,
                       "STARTTLS": bool(self.starttls)}
                conn.advertised = {k for k, on in ext.items() if on}
                txn = None
                self._reply(sock, conn, self._ehlo_text())
            elif v == "HELO":
                conn.helo = ("HELO", line[5:])
                conn.advertised = set()
                txn = None
                self._reply(sock, conn, f"250 {self.name}")
            elif v == "MAIL":
                txn = self._mail(sock, conn, st, line, txn)
            elif v == "RCPT":
                self._rcpt(sock, conn, line, txn)
            elif v == "DATA":
                if self._data(sock, conn, st, txn):
                    txn = None
                    group_end = None
            elif v == "RSET":
                txn = None
                self._reply(sock, conn, "250 2.0.0 reset")
            elif v == "NOOP":
                self._reply(sock, conn, "250 2.0.0 ok")
            elif v == "QUIT":
                self._reply(sock, conn, "221 2.0.0 bye")
                self._close_after(sock, conn, st)
            elif v == "STARTTLS" and "STARTTLS" in conn.advertised:
                self._starttls(sock, conn, st)
            else:
                self.violation(conn, f"unexpected command {line!r}")
                self._reply(sock, conn, "500 5.5.2 unrecognized command")

    def _starttls(self, sock, conn, st):
        """A broken TLS server: 220, then a line of text where the
        ServerHello belongs; or a refusal that keeps the session."""
        if self.starttls == "refuse":
            self._reply(sock, conn, "454 4.7.0 TLS not available")
            return
        self._reply(sock, conn, "220 2.0.0 Ready to start TLS")
        self._flush(sock, conn)
        try:
            sock.sendall(b"this is not TLS at all\r\n")
        except OSError:
            raise Closed()
        self._close_after(sock, conn, st)

    def _mail(self, sock, conn, st, line, txn):
        if conn.helo is None:
            self.violation(conn, "MAIL before EHLO/HELO")
        if txn is not None:
            self.violation(conn, "MAIL inside a transaction (no RSET)")
        if self.max_msgs_per_conn is not None and \
                conn.messages >= self.max_msgs_per_conn:
            if self.over_max == "close":   # as if the server crashed
                raise Closed()
            self._reply(sock, conn, "421 4.7.0 too many messages in this "
                                    "connection, closing")
            self._close_after(sock, conn, st)
        m = ADDR_RE.match(line)
        if not m or m.group(1).upper() != "MAIL FROM":
            self.violation(conn, f"bad MAIL syntax {line!r}")
            self._reply(sock, conn, "501 5.5.4 syntax")
            return None
        params = m.group(3).split()
        for p in params:
            key = p.split("=", 1)[0].upper()
            known = {"SIZE": "SIZE", "BODY": "8BITMIME",
                     "SMTPUTF8": "SMTPUTF8"}
            if key not in known or known[key] not in conn.advertised:
                self.violation(conn, f"MAIL parameter {p!r} not offered")
                self._reply(sock, conn, "555 5.5.4 unsupported parameter")
                return None
            if key == "SIZE" and self.size and \
                    int(p.split("=", 1)[1]) > self.size:
                self._reply(sock, conn, "552 5.3.4 message size exceeds "
                                        "fixed limit")
                return None
        if m.group(2).lower() in self.reject_senders:
            self._reply(sock, conn, "550 5.7.1 sender rejected by policy")
            return None
        self._reply(sock, conn, "250 2.1.0 sender ok")
        return {"from": m.group(2), "params": params, "rcpts": [],
                "tried": 0}

    def _rcpt(self, sock, conn, line, txn):
        if txn is None:
            # Pipelined RCPTs after a refused MAIL are not the client's
            # fault (RFC 2920 3.1); anything else is.
            if not (conn.commands[-1].pipelined):
                self.violation(conn, "RCPT without MAIL")
            self._reply(sock, conn, "503 5.5.1 need MAIL first")
            return
        m = ADDR_RE.match(line)
        if not m or m.group(1).upper() != "RCPT TO":
            self.violation(conn, f"bad RCPT syntax {line!r}")
            self._reply(sock, conn, "501 5.5.4 syntax")
            return
        txn["tried"] += 1
        if txn["tried"] > MAX_RCPTS:
            self.violation(conn, "more than 100 RCPTs in one transaction")
            self._reply(sock, conn, "452 4.5.3 too many recipients")
            return
        addr = m.group(2)
        if addr.lower() in self.reject_rcpts:
            self._reply(sock, conn, f"550 5.1.1 <{addr}>: no such user")
            return
        if addr.lower() in self.defer_rcpts:
            self._reply(sock, conn, self.defer_reply.format(addr=addr))
            return
        txn["rcpts"].append(addr)
        self._reply(sock, conn, "250 2.1.5 recipient ok")

    def _data(self, sock, conn, st, txn):
        """Returns True when the transaction ended. A refused DATA leaves
        the transaction open: the client must RSET (RFC 5321 4.1.1.5)."""
        if txn is None or not txn["rcpts"]:
            if txn is None and not conn.commands[-1].pipelined:
                self.violation(conn, "DATA without MAIL")
            self._reply(sock, conn, "554 5.5.1 no valid recipients")
            return False
        if st["buf"]:
            self.violation(conn, "message data sent before the 354 reply")
        self._reply(sock, conn, "354 end data with <CR><LF>.<CR><LF>")
        lines, wire = [], []
        while True:
            raw, _ = self._line(sock, conn, st)
            if raw == b".":
                break
            wire.append(raw + b"\r\n")
            if len(raw) + 2 > 1000:
                self.violation(conn, f"data line of {len(raw) + 2} octets "
                                     "(RFC 5321 4.5.3.1.6)")
            lines.append((raw[1:] if raw.startswith(b".") else raw) +
                         b"\r\n")
            if raw.startswith(b".") and not raw.startswith(b".."):
                self.violation(conn, f"data line {raw[:40]!r} starts with "
                                     "a single dot (not dot-stuffed)")
        data = b"".join(lines)
        if "8BITMIME" not in conn.advertised and "SMTPUTF8" not in \
                conn.advertised and any(b > 127 for b in data):
            self.violation(conn, "8-bit data to a 7-bit server")
        conn.messages += 1
        with self.lock:
            msg = Message(conn.id, txn["from"], txn["params"],
                          list(txn["rcpts"]), data, b"".join(wire))
            self.messages.append(msg)
        self._reply(sock, conn, f"250 2.0.0 queued as {self.name}-"
                                f"{len(self.messages)}")
        return True


# -- aiosmtpd -----------------------------------------------------------------
class _AioHandler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        self.sink.record(envelope, tls=session.ssl is not None)
        return "250 2.0.0 queued"


class _CountingSMTP(SMTP):
    def __init__(self, sink, *a, **kw):
        super().__init__(*a, **kw)
        self._sink = sink

    def connection_made(self, transport):
        # After STARTTLS the TLS layer calls this again on the same
        # connection: count it once.
        if not getattr(self, "_counted", False):
            self._counted = True
            self._sink.opened()
        super().connection_made(transport)

    def connection_lost(self, error):
        if getattr(self, "_counted", False):
            self._counted = False
            self._sink.closed()
        super().connection_lost(error)


class _CountingController(Controller):
    def __init__(self, sink, *a, **kw):
        self._sink = sink
        super().__init__(*a, **kw)

    def factory(self):
        return _CountingSMTP(self._sink, self.handler, **self.SMTP_kwargs)


class AioSink:
    """aiosmtpd as the MX. Messages are kept like Sink's (conn is the
    connection number; wire is not available)."""

    def __init__(self, host, port, name=None, smtputf8=False,
                 tls_context=None):
        self.host = host
        self.port = port
        self.name = name or host
        self.lock = threading.Lock()
        self.messages = []
        self.violations = []
        self.errors = []
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.ctl = _CountingController(
            self, _AioHandler(self), hostname=host, port=port,
            server_hostname=self.name, decode_data=False,
            enable_SMTPUTF8=smtputf8, ready_timeout=5.0,
            tls_context=tls_context)

    def start(self):
        self.ctl.start()
        # The controller's own readiness probe is not the sender.
        wait_for(lambda: self.active == 0, 5, "aiosmtpd probe closed")
        with self.lock:
            self.connections = 0
            self.max_active = 0
        return self

    def stop(self):
        self.ctl.stop()

    def opened(self):
        with self.lock:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def closed(self):
        with self.lock:
            self.active -= 1

    def record(self, env, tls=False):
        with self.lock:
            # aiosmtpd keeps the null reverse-path as "<>".
            sender = "" if env.mail_from == "<>" else env.mail_from
            msg = Message(self.connections - 1, sender,
                          list(env.mail_options), list(env.rcpt_tos),
                          bytes(env.original_content), None)
            msg.tls = tls
            self.messages.append(msg)

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait_messages(self, n, timeout=10.0):
        wait_for(lambda: len(self.messages) >= n, timeout,
                 lambda: f"{n} messages at {self.name} (aiosmtpd), have "
                         f"{len(self.messages)}")
        return self.snapshot()
