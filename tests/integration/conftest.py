"""Fixtures that run the real smtpd binary.

`smtpd(**overrides)` writes a YAML config into the test's tmp dir (the
defaults below, deep-merged with overrides; a value of None removes a
key), starts the binary (env SMTPD_BIN, default <repo>/build/smtpd) with
stdout/stderr captured to files, waits until its first listen address
accepts a connection, and returns a running `Smtpd`.

On teardown every instance still running gets SIGTERM; the test errors
out if an instance exited non-zero (unless the test killed it on purpose)
or if its stderr holds a sanitizer report.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from promtext import Receiver
from smtp_wire import Wire

REPO = Path(__file__).resolve().parents[2]
HOSTNAME = "mx.test.example"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                   "LeakSanitizer", "ERROR: ThreadSanitizer")


def smtpd_bin():
    return os.environ.get("SMTPD_BIN", str(REPO / "build" / "smtpd"))


_PORTS_GIVEN = set()


def free_port(host="127.0.0.1", family=socket.AF_INET):
    """A port free right now, never one this run handed out before: the
    kernel may offer the same free port to two calls in a row, which two
    listeners of one server cannot share."""
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            break
    _PORTS_GIVEN.add(port)
    return port


def sha512_crypt(password):
    if not shutil.which("openssl"):
        pytest.fail("the openssl command is needed (Debian package openssl)")
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=password, capture_output=True, text=True,
                       check=True, timeout=15)
    h = r.stdout.strip()
    assert h.startswith("$6$"), h
    return h


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- config ------------------------------------------------------------------
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./@+-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "~", "y",
               "n"}


def _scalar(v, in_flow=False):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if not in_flow and _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s)


def _flow(v):
    """A list item: a scalar, or a mapping written as {k: v, ...}."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_scalar(x, True)}"
                               for k, x in v.items()) + "}"
    return _scalar(v, True)


def to_yaml(d, indent=0):
    out = []
    pad = "  " * indent
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k}:")
            out.append(to_yaml(v, indent + 1))
        elif isinstance(v, (list, tuple)):
            out.append(f"{pad}{k}: [" +
                       ", ".join(_flow(x) for x in v) + "]")
        else:
            out.append(f"{pad}{k}: {_scalar(v)}")
    return "\n".join(x for x in out if x)


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_listen(item):
    if isinstance(item, dict):  # the mapping form of a listen entry
        item = item["address"]
    m = re.match(r"^\[(.+)\]:(\d+)$", item)
    if m:
        return m.group(1), int(m.group(2)), socket.AF_INET6
    host, port = item.rsplit(":", 1)
    return host, int(port), socket.AF_INET


# -- one running server --------------------------------------------------------
class StartError(AssertionError):
    pass


def process_problems(proc, expect_rc, stderr, extra=()):
    """Teardown checks shared by the smtpd and sender suites: stops the
    process (SIGTERM, 30 s), then its exit code (unless expect_rc is
    None), sanitizer reports in stderr() and any extra check (callables
    raising AssertionError). Returns what is wrong, [] when nothing."""
    found = []
    if proc is None:
        return found
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            found.append("did not exit within 30s of SIGTERM")
    if expect_rc is not None and proc.returncode != expect_rc:
        found.append(f"exit code {proc.returncode}, want {expect_rc}")
    err = stderr()
    for mark in SANITIZER_MARKS:
        if mark in err:
            found.append(f"sanitizer report ({mark!r})")
            break
    for check in extra:
        try:
            check()
        except AssertionError as e:
            found.append(str(e))
    if found:
        found.append(f"stderr tail: {err[-4000:]}")
    return found


class Smtpd:
    def __init__(self, workdir, config, config_path):
        self.workdir = workdir
        self.config = config
        self.config_path = config_path
        self.host, self.port, self.family = parse_listen(config["listen"][0])
        self.hostname = config.get("hostname", socket.gethostname())
        self.maildir = Path(config["maildir"])
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.proc = None
        self.killed = False      # SIGKILLed by the test: rc not checked
        self.expect_rc = 0
        self.preexec = None      # run in the child before exec (rlimits)
        self.wrapper = []        # command run around smtpd (valgrind)

    # -- life cycle ------------------------------------------------------------
    def start(self, ready_timeout=15.0):
        with open(self.stdout_path, "wb") as out, \
                open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*self.wrapper, smtpd_bin(), "-c", str(self.config_path)],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                cwd=self.workdir, preexec_fn=self.preexec)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout):
        """Polls until the first listen address answers; then says QUIT
        and waits for the server to close, so the probe connection no
        longer counts against any limit."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise StartError(f"smtpd exited with {rc} at start-up; "
                                 f"stderr: {self.stderr()!r}")
            try:
                w = Wire(self.host, self.port, timeout=5,
                         family=self.family)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise StartError("smtpd did not accept connections "
                                     f"in {timeout}s; stderr: "
                                     f"{self.stderr()!r}")
                time.sleep(0.02)
        with w:
            w.read_reply().expect(220)
            w.cmd("QUIT").expect(221)
            w.expect_closed()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Sends sig and waits; returns the exit code."""
        if self.running():
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self):
        """SIGKILL, as a crash would; the exit code is not checked."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(10)

    # -- output ------------------------------------------------------------------
    def stderr(self):
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """Complete stdout lines (a line still being written is left)."""
        data = self.stdout_path.read_bytes()
        if not self.running() or data.endswith(b"\n"):
            return data.splitlines()
        return data.splitlines()[:-1]

    def logs(self):
        """Every stdout line parsed as JSON; fails on a line that is not."""
        out = []
        for i, raw in enumerate(self.log_lines(), 1):
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

    def wait_log(self, event, timeout=5.0, **fields):
        deadline = time.monotonic() + timeout
        while True:
            hits = self.find_logs(event, **fields)
            if hits:
                return hits[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no log line event={event} {fields} within {timeout}s;"
                    f" stdout: {self.stdout_path.read_text()[-3000:]}")
            time.sleep(0.02)

    # -- clients -----------------------------------------------------------------
    def connect(self, greet=True, timeout=10.0, source=None):
        w = Wire(self.host, self.port, timeout=timeout, source=source,
                 family=self.family)
        if greet:
            w.read_reply().expect(220, None, f"{self.hostname} ESMTP")
        return w

    def problems(self):
        """Teardown checks: exit code and sanitizer reports."""
        return process_problems(self.proc, None if self.killed
                                else self.expect_rc, self.stderr)


class SmtpdFactory:
    """Starts smtpd instances in base_dir; checks them all at the end."""

    def __init__(self, base_dir):
        self.base_dir = Path(base_dir)
        self.instances = []

    def __call__(self, maildir=None, start=True, **overrides):
        n = len(self.instances)
        workdir = self.base_dir / f"smtpd{n}"
        workdir.mkdir(parents=True)
        md = Path(maildir) if maildir else self.base_dir / "maildir"
        for attempt in range(3):
            base = {
                "listen": [f"127.0.0.1:{free_port()}"],
                "hostname": HOSTNAME,
                "maildir": str(md),
                "timeouts": {"command": "10s", "data": "10s",
                             "shutdown": "5s"},
            }
            cfg = merge(base, overrides)
            path = workdir / "smtpd.yaml"
            path.write_text(to_yaml(cfg) + "\n")
            inst = Smtpd(workdir, cfg, path)
            if not start:
                self.instances.append(inst)
                return inst
            try:
                inst.start()
                self.instances.append(inst)
                return inst
            except StartError:
                # A port picked by free_port() may have been taken in
                # between; retry only for a bind failure (exit 1).
                if inst.proc.poll() != 1 or "listen" in overrides or \
                        attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def check_all(self):
        msgs = []
        for i, inst in enumerate(self.instances):
            msgs += [f"smtpd{i}: {p}" for p in inst.problems()]
        return msgs


@pytest.fixture
def smtpd(tmp_path):
    if not Path(smtpd_bin()).is_file():
        pytest.fail(f"smtpd binary not found at {smtpd_bin()} "
                    "(build it, or set SMTPD_BIN)")
    factory = SmtpdFactory(tmp_path)
    yield factory
    problems = factory.check_all()
    if problems:
        pytest.fail("smtpd problems at teardown:\n" + "\n".join(problems),
                    pytrace=False)


def run_cli(args, timeout=15, **kw):
    """Runs smtpd with args to completion (CLI tests)."""
    return subprocess.run([smtpd_bin()] + list(args), capture_output=True,
                          text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def smtpd_module(tmp_path_factory):
    """Like smtpd, shared by the tests of one module (cheaper when many
    small tests can use one server)."""
    if not Path(smtpd_bin()).is_file():
        pytest.fail(f"smtpd binary not found at {smtpd_bin()} "
                    "(build it, or set SMTPD_BIN)")
    factory = SmtpdFactory(tmp_path_factory.mktemp("smtpd"))
    yield factory
    problems = factory.check_all()
    if problems:
        pytest.fail("smtpd problems at teardown:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def receiver():
    """A local HTTP receiver for metrics pushes and health pings (both
    suites)."""
    r = Receiver()
    yield r
    r.stop()
