"""Raw-socket SMTP client for the integration tests.

Unlike smtplib it never hides what is on the wire: it sends exactly the
bytes it is given and parses replies strictly (RFC 5321 4.2: "ddd-text"
continuation lines, "ddd text" last line, every line ended by CRLF). Every
byte received is kept in .received so a failing assertion can show the
exact wire bytes.
"""

import re
import socket
import time

ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


class ProtocolError(AssertionError):
    """The server sent something that is not a well-formed SMTP reply."""


class ConnectionClosed(AssertionError):
    """The server closed the connection before a complete reply."""


class Reply:
    """One complete (possibly multi-line) SMTP reply."""

    def __init__(self, code, lines, raw):
        self.code = code      # int
        self.lines = lines    # text after "ddd-" / "ddd " of each line
        self.raw = raw        # exact bytes, CRLFs included

    @property
    def text(self):
        """Text of the last line (single-line replies: the whole text)."""
        return self.lines[-1]

    @property
    def enh(self):
        """Enhanced status code (RFC 3463) of the last line, or None."""
        first = self.text.split(" ", 1)[0]
        return first if ENH_RE.match(first) else None

    @property
    def message(self):
        """Last line's text after the enhanced code, if there is one."""
        if self.enh is None:
            return self.text
        parts = self.text.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""

    def expect(self, code, enh=None, message=None):
        """Asserts code, enhanced code and (when given) exact text."""
        want = f"{code} {enh}" if enh else f"{code}"
        if message is not None:
            want += f" {message}"
        assert self.code == code, f"want {want!r}, got {self.raw!r}"
        if enh is not None:
            assert self.enh == enh, f"want {want!r}, got {self.raw!r}"
        if message is not None:
            assert self.message == message, f"want {want!r}, got {self.raw!r}"
        return self

    def __repr__(self):
        return f"Reply({self.raw!r})"


def parse_reply_line(line):
    """Splits one CRLF-terminated reply line into (code, last, text)."""
    if not line.endswith(b"\r\n"):
        raise ProtocolError(f"reply line not ended by CRLF: {line!r}")
    body = line[:-2]
    if b"\n" in body or b"\r" in body:
        raise ProtocolError(f"bare CR or LF inside reply line: {line!r}")
    if len(body) < 3 or not body[:3].isdigit():
        raise ProtocolError(f"reply line without a 3-digit code: {line!r}")
    if len(body) == 3:
        return int(body), True, ""
    sep = body[3:4]
    if sep not in (b" ", b"-"):
        raise ProtocolError(f"bad separator after reply code: {line!r}")
    return int(body[:3]), sep == b" ", body[4:].decode("utf-8", "replace")


class Wire:
    """A client connection speaking raw bytes."""

    def __init__(self, host, port, timeout=10.0, source=None,
                 family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.received = bytearray()
        self.closed_by_peer = False

    # -- sending -----------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def send_line(self, line):
        self.send((line.encode("utf-8") if isinstance(line, str) else line)
                  + b"\r\n")

    # -- receiving ---------------------------------------------------------
    def _fill(self, deadline):
        """Reads more bytes into buf; False on EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(
                f"no complete reply in time; received so far: "
                f"{bytes(self.received)!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise socket.timeout(
                f"no complete reply in time; received so far: "
                f"{bytes(self.received)!r}") from None
        if not data:
            self.closed_by_peer = True
            return False
        self.buf += data
        self.received += data
        return True

    def read_reply(self, timeout=None):
        """Reads exactly one complete reply (all lines of it)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines, raw, code = [], b"", None
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if not self._fill(deadline):
                    raise ConnectionClosed(
                        f"closed after {raw + self.buf!r}; all received: "
                        f"{bytes(self.received)!r}")
                continue
            line, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
            raw += line
            c, last, text = parse_reply_line(line)
            if code is not None and c != code:
                raise ProtocolError(f"code changed inside a reply: {raw!r}")
            code = c
            lines.append(text)
            if last:
                return Reply(code, lines, raw)

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        self.send_line(line)
        return self.read_reply(timeout)

    def expect_closed(self, timeout=5.0):
        """Asserts the server closes with nothing more than what is
        already buffered being read."""
        deadline = time.monotonic() + timeout
        extra = b""
        while True:
            if self.buf:
                extra += self.buf
                self.buf = b""
            try:
                if not self._fill(deadline):
                    break
            except socket.timeout:
                raise AssertionError(
                    f"server did not close; received: "
                    f"{bytes(self.received)!r}")
        assert extra == b"", f"unexpected bytes before close: {extra!r}"

    def expect_silence(self, wait=0.3):
        """Asserts no further bytes arrive within wait seconds (each
        command answered exactly once)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            data = None
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.received += data
        assert not self.buf and not data, (
            f"unexpected extra bytes: {self.buf + (data or b'')!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


QUEUED_RE = re.compile(r"^Ok: queued as (\S+)$")


def queue_id_of(reply):
    """Queue id from "250 2.0.0 Ok: queued as <id>"."""
    reply.expect(250, "2.0.0")
    m = QUEUED_RE.match(reply.message)
    assert m, f"250 without 'Ok: queued as <id>': {reply.raw!r}"
    return m.group(1)


def session_message(wire, sender, rcpts, data, ehlo="client.test"):
    """EHLO (when ehlo is set), MAIL, RCPTs, DATA, data (wire form,
    without the terminator) and the terminator, one step at a time.
    Returns the queue id."""
    if ehlo:
        wire.cmd(f"EHLO {ehlo}").expect(250)
    wire.cmd(f"MAIL FROM:<{sender}>").expect(250, "2.1.0", "Ok")
    for r in rcpts:
        wire.cmd(f"RCPT TO:<{r}>").expect(250, "2.1.5", "Ok")
    wire.cmd("DATA").expect(354, None, "End data with <CR><LF>.<CR><LF>")
    wire.send(data + b".\r\n" if data.endswith(b"\r\n") or not data
              else data + b"\r\n.\r\n")
    return queue_id_of(wire.read_reply())


def dot_stuff(lines):
    """Wire form (RFC 5321 4.5.2) of a list of byte lines without ends."""
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in lines)


def stored_form(lines):
    """What the server must store for those lines: LF line ends."""
    return b"".join(ln + b"\n" for ln in lines)


def make_message(subject, body_lines=(), headers=()):
    """A small RFC 5322 message with CRLF line ends (bytes)."""
    lines = [b"From: Alice <alice@client.test>",
             b"To: Bob <bob@ours.test>",
             b"Subject: " + subject.encode("utf-8")]
    lines += [h.encode("utf-8") if isinstance(h, str) else h
              for h in headers]
    lines.append(b"")
    lines += [ln.encode("utf-8") if isinstance(ln, str) else ln
              for ln in body_lines]
    return b"".join(ln + b"\r\n" for ln in lines)


def send_mail(host, port, sender, rcpts, msg, helo="client.test",
              esmtp=True, mail_options=(), timeout=30):
    """Sends one message with smtplib (which dot-stuffs msg); msg must use
    CRLF line ends. Returns the queue id from the 250 reply."""
    import smtplib
    with smtplib.SMTP(host, port, local_hostname=helo,
                      timeout=timeout) as c:
        code, resp = c.ehlo(helo) if esmtp else c.helo(helo)
        assert code == 250, (code, resp)
        code, resp = c.mail(sender, list(mail_options))
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = c.rcpt(r)
            assert code == 250, (r, code, resp)
        code, resp = c.data(msg)
        m = re.match(rb"^2\.0\.0 Ok: queued as (\S+)$", resp)
        assert code == 250 and m, (code, resp)
        c.quit()
    return m.group(1).decode("ascii")
