"""Fixtures that run the real sender binary against real DNS and SMTP
servers on 127.0.0.0/8 (no mocks of the network).

* `dns` (session): dnsmasq on 127.0.0.1:<free port> serving the zone in
  testzone.py; names under .test that are not in it are NXDOMAIN.
* `own_dns` (per test): factory for a dnsmasq of the test's own, which
  it may stop and restart on the same port (Dns.stop(), Dns.restart()).
* `mx` (per test): picks one port free on every MX address (remote_port
  is global, so every sink listens on the same port on its own loopback
  address) and starts sinks on demand: mx.sink("mx1.test", **options).
  At teardown each sink must have seen no protocol violation and never
  more than one connection at a time (DESIGN.md: one socket per MX host).
* `sender` (per test): factory. sender(start=False, **overrides) writes
  the YAML config (defaults below deep-merged with overrides; None
  removes a key); .drop(...) puts a queue file into <maildir>/new/ in
  smtpd's format; .start() runs the binary (env SENDER_BIN, default
  <repo>/build/sender) and waits for its sender.start line. Teardown
  sends SIGTERM and fails on a non-zero exit, a sanitizer report in
  stderr or a stdout line that is not JSON.
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from . import minidns
from .minidns import free_udp_tcp_port
from .testzone import HOSTS, MX, NULL_MX
from .sinks import AioSink, Sink, wait_for


def _parent_conftest():
    """The smtpd suite's conftest, for its YAML writer and constants (a
    plain "import conftest" would find this very file)."""
    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("smtpd_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_smtpd_conftest = _parent_conftest()
REPO = _smtpd_conftest.REPO
SANITIZER_MARKS = _smtpd_conftest.SANITIZER_MARKS
merge = _smtpd_conftest.merge
to_yaml = _smtpd_conftest.to_yaml
smtpd_bin = _smtpd_conftest.smtpd_bin
free_port = _smtpd_conftest.free_port
sha512_crypt = _smtpd_conftest.sha512_crypt

SENDER_HOSTNAME = "sender.test"


def dnsmasq_args(port, logfile):
    args = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
            "--bind-interfaces", "--listen-address=127.0.0.1",
            f"--port={port}", "--local=/test/", "--conf-file=/dev/null",
            "--pid-file=", "--user=root", "--log-queries",
            f"--log-facility={logfile}"]
    args += [f"--host-record={h},{a}" for h, a in HOSTS.items()]
    args += [f"--mx-host={d},{h},{p}" for d, h, p in MX]
    # RDATA: preference 0 (2 bytes) and the root name (one zero byte).
    args.append(f"--dns-rr={NULL_MX},15,000000")
    return args


class Dns:
    def __init__(self, workdir):
        self.workdir = workdir
        self.log = workdir / "dnsmasq.log"
        self.port = None
        self.proc = None

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def start(self, port=None):
        """Starts dnsmasq on a free port, or on `port` (a restart keeps
        the address the sender was configured with)."""
        for _ in range(5):
            self.port = port or free_udp_tcp_port()
            if self._launch():
                return self
            if port:
                time.sleep(0.2)   # the old socket may linger briefly
        raise AssertionError("dnsmasq did not start: " + (
            self.workdir / "dnsmasq.stderr").read_text())

    def restart(self):
        """Stops it and starts it again on the same port."""
        port = self.port
        self.stop()
        return self.start(port=port)

    def _launch(self):
        with open(self.workdir / "dnsmasq.stderr", "wb") as err:
            self.proc = subprocess.Popen(
                dnsmasq_args(self.port, self.log),
                stdout=subprocess.DEVNULL, stderr=err,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                rcode, ans = minidns.query("127.0.0.1", self.port,
                                           "mx1.test", "A", 0.2)
                if rcode == 0 and ans:
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def queries(self, name, qtype="MX"):
        """How many queries for name/qtype the log shows (--log-queries
        writes "query[MX] one.test from 127.0.0.1")."""
        try:
            text = self.log.read_text("utf-8", "replace")
        except FileNotFoundError:
            return 0
        return text.count(f"query[{qtype}] {name} from ")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def dns(tmp_path_factory):
    d = Dns(tmp_path_factory.mktemp("dns")).start()
    yield d
    d.stop()


@pytest.fixture
def own_dns(tmp_path):
    """Factory for DNS servers of one test's own, which it may stop and
    restart (the session-wide `dns` must stay up for everyone else):
    own_dns() returns a started Dns; all are stopped at teardown."""
    made = []

    def make():
        workdir = tmp_path / f"dns{len(made)}"
        workdir.mkdir()
        d = Dns(workdir)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.stop()


# -- MX sinks -----------------------------------------------------------------
def port_free_on_all(addrs):
    """A TCP port that can be bound on every address in addrs."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
        ok = True
        for a in addrs:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((a, port))
            except OSError:
                ok = False
                break
        if ok:
            return port
    raise AssertionError("no port free on all MX addresses")


class Mx:
    def __init__(self):
        self.port = port_free_on_all(sorted(HOSTS.values()))
        self.sinks = {}
        # One sender keeps one socket per MX host; a test that runs N
        # senders on one Maildir raises this to N.
        self.max_simultaneous = 1

    def sink(self, host, aiosmtpd=False, **options):
        """Starts the sink for MX host `host` (a name from HOSTS)."""
        assert host not in self.sinks, f"{host} already has a sink"
        assert host != "deadmx.test", "deadmx.test must stay dead"
        if aiosmtpd:
            s = AioSink(HOSTS[host], self.port, name=host, **options)
        else:
            s = Sink(HOSTS[host], self.port, name=host, **options)
        self.sinks[host] = s.start()
        return s

    def problems(self):
        found = []
        for host, s in self.sinks.items():
            found += s.violations + s.errors
            if s.max_active > self.max_simultaneous:
                found.append(f"{host}: {s.max_active} simultaneous "
                             "connections (want at most "
                             f"{self.max_simultaneous})")
        return found

    def stop(self):
        for s in self.sinks.values():
            s.stop()


@pytest.fixture
def mx():
    m = Mx()
    yield m
    # Evaluated after the sender stopped (it depends on mx): sessions
    # closed by a SIGTERM are part of what the sinks judge.
    m.stop()
    problems = m.problems()
    if problems:
        pytest.fail("MX sinks saw problems:\n" + "\n".join(problems),
                    pytrace=False)


# -- the sender ---------------------------------------------------------------
def sender_bin():
    return os.environ.get("SENDER_BIN", str(REPO / "build" / "sender"))


RECEIVED = ("Received: from client.test (unknown [127.0.0.1])\n"
            "\tby mx.test.example with ESMTP id {qid};\n"
            "\tThu, 26 Nov 2026 06:00:00 +0000\n")


class Sender:
    def __init__(self, workdir, cfg, path):
        self.workdir = workdir
        self.cfg = cfg
        self.config_path = path
        self.maildir = Path(cfg["maildir"])
        self.spool = Path(cfg["spool"])
        self.instance_dir = self.spool / cfg["instance"]
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.proc = None
        self.wrapper = []  # command run around sender (valgrind)
        self.expect_rc = 0
        self.seq = 0
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        self.spool.mkdir(parents=True, exist_ok=True)

    # -- queue files ----------------------------------------------------------
    def drop(self, rcpts, message=None, mail_from="alice@example.org",
             params=(), raw=None, mtime=None):
        """Writes a queue file as smtpd does (tmp/ then rename into new/)
        and returns its queue id. message: bytes after our Received
        header (LF line ends). raw: the whole file, for malformed ones.
        The stored body that must reach the MX byte for byte is
        Received + message; see body_of(). mtime: when smtpd accepted it
        (the file's mtime; delay is measured from it)."""
        self.seq += 1
        now = time.time()
        qid = (f"{int(now)}.M{int(now * 1e6) % 1000000:06d}P{os.getpid()}"
               f"Q{self.seq}")
        name = f"{qid}.test"
        if raw is None:
            if message is None:
                to = ", ".join(rcpts) if len(rcpts) <= 5 else \
                    "undisclosed-recipients:;"
                message = (f"From: <{mail_from}>\nTo: {to}\n"
                           f"Subject: test {self.seq}\n\nbody {qid}\n"
                           ).encode()
            head = f"X-Original-From: <{mail_from}>"
            head += "".join(" " + p for p in params) + "\n"
            head += "".join(f"X-Original-To: <{r}>\n" for r in rcpts)
            raw = (head + RECEIVED.format(qid=qid)).encode("utf-8") + \
                message
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.rename(tmp, self.maildir / "new" / name)
        return qid

    @staticmethod
    def body_of(raw_file):
        """The stored body of a queue file: everything after the leading
        X-Original-* lines."""
        lines = raw_file.splitlines(keepends=True)
        i = 0
        while i < len(lines) and lines[i].startswith(b"X-Original-"):
            i += 1
        return b"".join(lines[i:])

    def wait_done(self, n, timeout=15.0):
        """Waits for n msg.done lines (n messages finished)."""
        return self.wait_logs("msg.done", n, timeout)

    def cur_files(self):
        return sorted(p.name for p in (self.maildir / "cur").iterdir())

    def new_files(self):
        return sorted(p.name for p in (self.maildir / "new").iterdir())

    def spool_files(self, sub=None):
        d = self.spool / (sub or self.cfg["instance"])
        if not d.is_dir():
            return []
        # Hidden files are the sender's journals, not queued messages.
        return sorted(p.name for p in d.iterdir()
                      if p.is_file() and not p.name.startswith("."))

    # -- life cycle -----------------------------------------------------------
    def start(self, timeout=10.0):
        with open(self.stdout_path, "ab") as out, \
                open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [*self.wrapper, sender_bin(), "-c", str(self.config_path)],
                stdout=out,
                stderr=err, stdin=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while not self.find_logs("sender.start"):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"sender exited with {self.proc.returncode} at start-up"
                    f"; stderr: {self.stderr()[-3000:]!r}; stdout: "
                    f"{self.stdout_path.read_text()[-3000:]!r}")
            if time.monotonic() > deadline:
                raise AssertionError("no sender.start line within "
                                     f"{timeout}s; stderr: {self.stderr()!r}")
            time.sleep(0.02)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        if self.running():
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    # -- output ---------------------------------------------------------------
    def stderr(self):
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def logs(self):
        """Every complete stdout line as JSON; fails on one that is not."""
        try:
            data = self.stdout_path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.splitlines()
        if self.running() and not data.endswith(b"\n"):
            lines = lines[:-1]
        out = []
        for i, raw in enumerate(lines, 1):
            try:
                obj = json.loads(raw)
            except ValueError as e:
                raise AssertionError(
                    f"stdout line {i} is not JSON ({e}): {raw!r}") from None
            assert isinstance(obj, dict), f"line {i} not an object: {raw!r}"
            out.append(obj)
        return out

    def find_logs(self, event, **fields):
        return [e for e in self.logs() if e.get("event") == event and
                all(e.get(k) == v for k, v in fields.items())]

    def tail(self, n=4000):
        try:
            return self.stdout_path.read_text("utf-8", "replace")[-n:]
        except FileNotFoundError:
            return ""

    def wait_logs(self, event, count, timeout=10.0, **fields):
        """Waits until at least count lines match; returns them all."""
        return wait_for(
            lambda: (lambda h: h if len(h) >= count else None)(
                self.find_logs(event, **fields)),
            timeout,
            lambda: f"{count} x event={event} {fields} (have "
                    f"{len(self.find_logs(event, **fields))}); stdout tail:"
                    f"\n{self.tail()}")

    def wait_log(self, event, timeout=10.0, **fields):
        return self.wait_logs(event, 1, timeout, **fields)[0]

    def problems(self):
        """Teardown checks, as for smtpd, plus: every log line parses."""
        return _smtpd_conftest.process_problems(
            self.proc, self.expect_rc, self.stderr, extra=(self.logs,))


class SenderFactory:
    def __init__(self, base_dir, dns, mx):
        self.base_dir = Path(base_dir)
        self.dns = dns
        self.mx = mx
        self.instances = []

    def __call__(self, start=True, **overrides):
        n = len(self.instances)
        workdir = self.base_dir / f"sender{n}"
        workdir.mkdir(parents=True)
        base = {
            "maildir": str(self.base_dir / "maildir"),
            "spool": str(self.base_dir / "spool"),
            "instance": f"t{n}",
            "hostname": SENDER_HOSTNAME,
            "dns": {"servers": [self.dns.server]},
            "remote_port": self.mx.port,
            "scan_interval": "1s",
            "idle_linger": "300ms",
            "keep_delivered": True,
            "timeouts": {"connect": "5s", "greeting": "10s", "mail": "10s",
                         "rcpt": "10s", "data": "10s", "data_block": "10s",
                         "data_end": "10s"},
            "log": {"level": "info"},
        }
        cfg = merge(base, overrides)
        path = workdir / "sender.yaml"
        path.write_text(to_yaml(cfg) + "\n")
        inst = Sender(workdir, cfg, path)
        self.instances.append(inst)
        if start:
            inst.start()
        return inst

    def check_all(self):
        msgs = []
        for i, inst in enumerate(self.instances):
            msgs += [f"sender{i}: {p}" for p in inst.problems()]
        return msgs


@pytest.fixture
def sender(tmp_path, dns, mx):
    if not Path(sender_bin()).is_file():
        pytest.fail(f"sender binary not found at {sender_bin()} "
                    "(build it, or set SENDER_BIN)")
    factory = SenderFactory(tmp_path, dns, mx)
    yield factory
    problems = factory.check_all()
    if problems:
        pytest.fail("sender problems at teardown:\n" + "\n".join(problems),
                    pytrace=False)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and certificates signed by it for mx1.test, mx2.test,
    mx4.test and wrong.test (EC P-256: fast to make)."""
    if not shutil.which("openssl"):
        pytest.fail("the openssl command is needed (Debian package "
                    "openssl)")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=mta sender test CA", cwd=d)
    for name in ("mx1.test", "mx2.test", "mx4.test", "wrong.test"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{name}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d
