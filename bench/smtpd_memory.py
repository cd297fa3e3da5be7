#!/usr/bin/python3
"""bench/smtpd_memory.py: smtpd's memory per idle connection and while
receiving one large message.

Owns: the scratch directory --workdir (config + Maildir), the smtpd
processes it starts (always stopped before exit) and the raw outputs under
--out (bench/out/ by default).
Invariants:
  * Memory is the server's resident set from /proc/PID/status: VmRSS for
    "now", VmHWM for "peak". Kernel socket buffers are not in it.
  * The idle-connection phase and the large-message phase use two fresh
    server processes, so the first phase's peak cannot hide the second's.
    Before the large message is sent the peak is reset to the current RSS
    (writing 5 to /proc/PID/clear_refs, Linux >= 4.0) when possible.
  * A connection only counts as held when it got the 220 greeting and the
    full EHLO reply, and answers QUIT with 221 at the end.
  * Everything runs on 127.0.0.1.

Prints a markdown table on stdout and keeps it, plus smtpd's log, in --out.
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIB = 1024
MIB = 1024 * 1024
LINE_LEN = 80  # body line of the large message, CRLF included


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smtpd", default=os.environ.get(
        "SMTPD_BIN", os.path.join(REPO, "build", "smtpd")),
        help="smtpd binary (default: $SMTPD_BIN or build/smtpd)")
    p.add_argument("--sink", action="store_true",
                   help="measure smtp-sink instead (harness self-test)")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--message-mib", type=int, default=50)
    p.add_argument("--port", type=int, default=2528)
    p.add_argument("--workdir", default="/tmp/smtpd-bench-mem")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    return p.parse_args()


def raise_nofile(need):
    """Let this process (and the server it starts) hold need descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        hard = need  # needs root, as the benchmark runs
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def proc_status(pid):
    """VmRSS and VmHWM of pid, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * KIB
    return out


def reset_peak(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Server:
    """One smtpd (or smtp-sink) process listening on 127.0.0.1:port."""

    def __init__(self, args, stamp, tag):
        self.args = args
        self.dir = os.path.join(args.workdir, tag)
        self.maildir = os.path.join(self.dir, "maildir")
        self.log = os.path.join(args.out, "memory-%s-%s.log" % (stamp, tag))
        self.proc = None

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        if self.args.sink:
            argv = ["/usr/sbin/smtp-sink", "-u", "nobody",
                    "127.0.0.1:%d" % self.args.port, "1024"]
        else:
            argv = [self.args.smtpd, "-c", self.write_config()]
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf)
        self.wait_ready()
        return self.proc.pid

    def write_config(self):
        conf = os.path.join(self.dir, "smtpd.yaml")
        size = (self.args.message_mib + 16) * MIB
        with open(conf, "w") as f:
            f.write('listen: ["127.0.0.1:%d"]\n' % self.args.port)
            f.write("hostname: bench.test\n")
            f.write("maildir: %s\n" % self.maildir)
            f.write("max_connections: 1500\n")
            f.write("max_connections_per_ip: 0\n")
            f.write("max_message_size: %d\n" % size)
            f.write("log: {level: warn}\n")
        return conf

    def wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %d, see %s"
                                   % (self.proc.returncode, self.log))
            try:
                s = Client(self.args.port)
                s.ehlo()
                s.quit()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not answer on port %d"
                           % self.args.port)

    def stored_bytes(self):
        """Size of the one file in new/ (None for smtp-sink)."""
        if self.args.sink:
            return None
        new = os.path.join(self.maildir, "new")
        names = os.listdir(new)
        if len(names) != 1:
            raise RuntimeError("%d files in %s, expected 1"
                               % (len(names), new))
        return os.path.getsize(os.path.join(new, names[0]))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Client:
    """A minimal blocking SMTP client: one reply at a time."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.buf = b""
        self.greeting = self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self):
        """The last line of a (possibly multi-line) reply, RFC 5321 4.2.1."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3:4] != b"-":
                return line

    def command(self, text, expect):
        self.sock.sendall(text.encode() + b"\r\n")
        line = self.reply()
        if not line.startswith(expect.encode()):
            raise RuntimeError("%s: unexpected reply %r" % (text, line))
        return line

    def ehlo(self):
        if not self.greeting.startswith(b"220"):
            raise RuntimeError("greeting %r" % self.greeting)
        self.command("EHLO client.bench.test", "250")

    def quit(self):
        try:
            self.command("QUIT", "221")
        finally:
            self.sock.close()


def idle_phase(args, stamp):
    """RSS before and with N idle connections held."""
    srv = Server(args, stamp, "idle")
    pid = srv.start()
    clients, stopped = [], ""
    try:
        time.sleep(0.3)
        before = proc_status(pid)
        for _ in range(args.connections):
            try:
                c = Client(args.port)
                c.ehlo()
            except (OSError, RuntimeError) as e:
                stopped = str(e)  # refused or not served: hold no more
                break
            clients.append(c)
        time.sleep(0.5)
        held = proc_status(pid)
        for c in clients:
            c.quit()
    finally:
        srv.stop()
    n = len(clients)
    per = (held["VmRSS"] - before["VmRSS"]) / n if n else float("nan")
    return {"before": before, "held": held, "n": n, "stopped": stopped,
            "per_conn": per}


class Sampler(threading.Thread):
    """Polls VmRSS every 5 ms; keeps the largest value seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            except OSError:
                return
            time.sleep(0.005)


def body_chunk():
    """About 64 KiB of 78-octet lines + CRLF (RFC 5322 2.1.1)."""
    line = (b"x" * (LINE_LEN - 2)) + b"\r\n"
    return line * (64 * KIB // LINE_LEN)


def big_phase(args, stamp):
    """Peak RSS growth while one connection delivers one big message."""
    srv = Server(args, stamp, "big")
    pid = srv.start()
    try:
        c = Client(args.port)
        c.ehlo()
        c.command("MAIL FROM:<big@bench.test>", "250")
        c.command("RCPT TO:<rcpt@example.com>", "250")
        c.command("DATA", "354")
        time.sleep(0.3)
        base = proc_status(pid)
        reset = reset_peak(pid)
        start = proc_status(pid)["VmHWM"] if reset else base["VmHWM"]
        sampler = Sampler(pid)
        sampler.start()
        chunk = body_chunk()
        total = args.message_mib * MIB
        t0 = time.monotonic()
        c.sock.sendall(b"Subject: big\r\n\r\n")
        sent = 0
        while sent < total:
            c.sock.sendall(chunk)
            sent += len(chunk)
        c.sock.settimeout(120)
        c.command(".", "250")
        secs = time.monotonic() - t0
        sampler.done.set()
        sampler.join()
        end = proc_status(pid)
        c.quit()
        stored = srv.stored_bytes()
    finally:
        srv.stop()
    # Stored with LF line ends: one octet less per 80-octet line.
    expect = sent - sent // LINE_LEN
    if stored is not None and stored < expect:
        raise RuntimeError("stored file has %d bytes, expected >= %d"
                           % (stored, expect))
    return {"base": base, "end": end, "reset": reset, "start_hwm": start,
            "hwm_growth": end["VmHWM"] - max(start, base["VmRSS"]),
            "sampled_growth": sampler.peak - base["VmRSS"],
            "bytes": sent, "secs": secs, "stored": stored,
            "expect": expect}


def kib(n):
    return "%.0f KiB" % (n / KIB)


def report(args, idle, big):
    name = "smtp-sink" if args.sink else args.smtpd
    version = "smtp-sink" if args.sink else subprocess.run(
        [args.smtpd, "--version"], capture_output=True,
        text=True).stdout.strip()
    date = time.strftime("%a, %d %b %Y %H:%M:%S %z")
    per_ok = idle["per_conn"] < 16 * KIB
    mib = args.message_mib
    lines = [
        "## smtpd_memory: %s" % date,
        "",
        "* machine: %d CPUs (nproc), Linux %s" % (os.cpu_count(),
                                                  os.uname().release),
        "* server: %s (%s)" % (name, version or "?"),
        "",
        "| measurement | value | target |",
        "|---|---|---|",
        "| idle connections held (220 + EHLO, then idle) | %d of %d%s | %d |"
        % (idle["n"], args.connections,
           (" (next one: %s)" % idle["stopped"]) if idle["stopped"] else "",
           args.connections),
        "| VmRSS before | %s | |" % kib(idle["before"]["VmRSS"]),
        "| VmRSS with the idle connections | %s | |"
        % kib(idle["held"]["VmRSS"]),
        "| VmHWM with the idle connections | %s | |"
        % kib(idle["held"]["VmHWM"]),
        "| **RSS per idle connection** | **%.0f bytes** (%s) | < 16 KiB |"
        % (idle["per_conn"], "ok" if per_ok else "OVER"),
        "| %d MiB message: VmRSS before DATA body | %s | |"
        % (mib, kib(big["base"]["VmRSS"])),
        "| %d MiB message: VmHWM after 250 | %s | |"
        % (mib, kib(big["end"]["VmHWM"])),
        "| **%d MiB message: peak RSS growth (VmHWM)** | **%s** | "
        "a few hundred KB |" % (mib, kib(big["hwm_growth"])),
        "| %d MiB message: peak RSS growth (VmRSS sampled every 5 ms) "
        "| %s | |" % (mib, kib(big["sampled_growth"])),
        "| %d MiB message: DATA to 250 | %.2f s (%.0f MiB/s) | |"
        % (mib, big["secs"], big["bytes"] / MIB / big["secs"]),
        "| %d MiB message: stored file (LF line ends) | %s | >= %d bytes |"
        % (mib, "n/a" if big["stored"] is None else
           "%d bytes" % big["stored"], big["expect"]),
    ]
    if not big["reset"]:
        lines.append("")
        lines.append("(could not reset VmHWM through clear_refs; growth is "
                     "measured from the larger of VmHWM and VmRSS before)")
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    raise_nofile(max(4096, args.connections + 256))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    idle = idle_phase(args, stamp)
    big = big_phase(args, stamp)
    text = report(args, idle, big)
    with open(os.path.join(args.out, "memory-%s.md" % stamp), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
