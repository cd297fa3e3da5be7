"""bench/drain_observe.py: the processes and probes bench/sender_drain.py
drives: one smtp-sink per MX host and its counters, /proc/net/tcp samples
of the connections to the sinks, dnsmasq, port and fsync probes.

Owns: the processes it starts (smtp-sink, dnsmasq); the caller stops them
with .stop(), which is safe to call more than once.
Invariants:
  * Sink counters are reported relative to the moment the sink was ready,
    so the readiness probe (itself one SMTP session) is not counted.
  * smtp-sink -c bumps sess= when a session ends: read counters for
    connections only after the client has closed them (TcpWatch.settle).
"""

import os
import re
import socket
import statistics
import struct
import subprocess
import threading
import time

SMTP_SINK = "/usr/sbin/smtp-sink"
DNSMASQ = "/usr/sbin/dnsmasq"
POLL = 0.05  # seconds between samples


def run_text(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (r.stdout or r.stderr).strip() or "?"


def stop_process(proc, timeout=20):
    """SIGTERM, then SIGKILL; returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def mx_addr(i):
    return "127.0.0.%d" % (i + 2)


def free_port(addrs, udp=False):
    """A TCP port (and UDP port when udp) free on every address."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
        try:
            for a in addrs:
                kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM]
                                                if udp else [])
                for k in kinds:
                    with socket.socket(socket.AF_INET, k) as s:
                        s.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on %s" % ",".join(addrs))

# -- observers ------------------------------------------------------------
class Sinks:
    """One smtp-sink per MX host; counters parsed from its -c output."""

    COUNTER = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, hosts, port, prefix):
        self.addrs = [mx_addr(i) for i in range(hosts)]
        self.port = port
        self.files = ["%s-sink%d.out" % (prefix, i + 1)
                      for i in range(hosts)]
        self.procs = []
        self.base = [(0, 0, 0)] * hosts

    def start(self):
        for a, path in zip(self.addrs, self.files):
            with open(path, "wb") as out:
                self.procs.append(subprocess.Popen(
                    [SMTP_SINK, "-c", "-u", "nobody",
                     "%s:%d" % (a, self.port), "256"],
                    stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL))
        for a, p in zip(self.addrs, self.procs):
            wait_greeting(a, self.port, p)
        # The probes above are sessions too: wait until each sink has
        # counted its one, then count from there.
        deadline = time.monotonic() + 5
        while min(c[0] for c in self.counters()) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("smtp-sink did not count the probe")
            time.sleep(POLL)
        self.base = self.counters()

    def counters(self):
        """[(sess, quit, mesg)] per sink, from the last counter line."""
        res = []
        for path in self.files:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 128))
                found = self.COUNTER.findall(f.read())
            res.append(tuple(int(x) for x in found[-1]) if found
                       else (0, 0, 0))
        return [tuple(x - b for x, b in zip(c, base))
                for c, base in zip(res, self.base)]

    def stop(self):
        for p in self.procs:
            stop_process(p)


def wait_greeting(addr, port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("smtp-sink on %s exited" % addr)
        try:
            with socket.create_connection((addr, port), 1) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    s.recv(512)
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("no 220 from %s:%d" % (addr, port))


class TcpWatch:
    """Samples /proc/net/tcp: established connections per sink address."""

    def __init__(self, addrs, port):
        self.keys = {}
        for i, a in enumerate(addrs):
            h = socket.inet_aton(a)[::-1].hex().upper()
            self.keys["%s:%04X" % (h, port)] = i
        self.max = [0] * len(addrs)
        self.ports = [set() for _ in addrs]

    def sample(self):
        """Returns the number of established sink connections now.
        /proc/net/tcp is not an atomic snapshot (a socket can be listed
        twice while the table changes), so peers are counted as a set."""
        now = [set() for _ in self.max]
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split(None, 4)
                i = self.keys.get(parts[1])
                if i is not None and parts[3] == "01":
                    now[i].add(parts[2])
        for i, peers in enumerate(now):
            self.max[i] = max(self.max[i], len(peers))
            self.ports[i] |= peers
        return sum(len(p) for p in now)

    def settle(self, timeout=10.0):
        """Waits until no connection to a sink is open."""
        deadline = time.monotonic() + timeout
        while self.sample() and time.monotonic() < deadline:
            time.sleep(POLL)
        return self.sample() == 0


class Dns:
    """dnsmasq serving dN.test MX 10 mxN.test, mxN.test A 127.0.0.(N+1)."""

    def __init__(self, hosts, port, log):
        self.port = port
        self.argv = [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts",
                     "--bind-interfaces", "--listen-address=127.0.0.1",
                     "--port=%d" % port, "--local=/test/",
                     "--conf-file=/dev/null", "--pid-file=", "--user=root",
                     "--log-queries", "--log-facility=%s" % log]
        for i in range(hosts):
            self.argv += ["--host-record=mx%d.test,%s" % (i + 1, mx_addr(i)),
                          "--mx-host=d%d.test,mx%d.test,10" % (i + 1, i + 1)]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: %s"
                                   % self.proc.stderr.read().decode())
            if dns_has_a(self.port, "mx1.test"):
                return
            time.sleep(0.05)
        raise RuntimeError("dnsmasq does not answer on port %d" % self.port)

    def stop(self):
        stop_process(self.proc)


def dns_has_a(port, name):
    """True when 127.0.0.1:port answers an A query for name with data."""
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        try:
            s.sendto(q, ("127.0.0.1", port))
            r = s.recv(512)
        except OSError:
            return False
    return (len(r) >= 12 and r[:2] == q[:2] and r[3] & 0x0F == 0
            and struct.unpack(">H", r[6:8])[0] > 0)

def cpu_seconds(pid):
    """(user, system) CPU seconds of a live process, from /proc."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


class FsyncSampler:
    """What sender does per delivered message, timed in the background
    during a drain: rename a 1 KiB file from one directory into another,
    then fsync both directories. One sample every `every` seconds (two
    fsyncs per 0.25 s next to the thousands the drain itself does)."""

    def __init__(self, workdir, every=0.25):
        self.dirs = [os.path.join(workdir, "probe-a"),
                     os.path.join(workdir, "probe-b")]
        self.every = every
        self.times = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)
        for d in self.dirs:
            if os.path.exists(os.path.join(d, "f")):
                os.unlink(os.path.join(d, "f"))
        with open(os.path.join(self.dirs[0], "f"), "wb") as f:
            f.write(b"x" * 1024)
        self.thread.start()
        return self

    def _run(self):
        fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in self.dirs]
        try:
            i = 0
            while not self.stop_ev.is_set():
                src, dst = (0, 1) if i % 2 == 0 else (1, 0)
                t0 = time.monotonic()
                os.rename("f", "f", src_dir_fd=fds[src],
                          dst_dir_fd=fds[dst])
                os.fsync(fds[dst])
                os.fsync(fds[src])
                self.times.append(time.monotonic() - t0)
                i += 1
                self.stop_ev.wait(self.every)
        finally:
            for fd in fds:
                os.close(fd)

    def stop(self):
        """Mean milliseconds of the samples so far (None without any): the
        mean, since a drain pays the sum, tail included."""
        self.stop_ev.set()
        if self.thread.is_alive():
            self.thread.join()
        return statistics.fmean(self.times) * 1000 if self.times else None
