#!/usr/bin/python3
"""bench/smtpd_accept.py: messages per second accepted by smtpd and by a
private Postfix instance, measured with Postfix's smtp-source(1).

Owns: the scratch directory --workdir (smtpd config + Maildir), the bench
Postfix instance (through bench/postfix_setup.sh, under $PFBENCH_DIR) and
the raw outputs under --out (bench/out/ by default).
Invariants:
  * Everything runs on 127.0.0.1; both servers write to the same
    filesystem and both fsync every message before their 250 reply.
  * Cells are interleaved (for each size and session count, every server
    runs before the next cell) so slow drift of the machine hits all
    servers alike; with --repeat the order alternates and the median wins.
  * After each run (outside the timing) its mail is gone before the next
    run starts: smtpd's new/ is emptied, Postfix's queue is drained by its
    discard transport, and dirty pages are flushed with sync(2).
  * A run only counts when smtp-source exits 0 (it aborts on any reply it
    did not expect) and, for smtpd, when exactly that many files landed in
    new/.
  * Servers started here are stopped here, also on errors and Ctrl-C.

Prints a markdown table on stdout and keeps the same table, a CSV of every
run and the servers' logs in --out.
"""

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX_SETUP = os.path.join(REPO, "bench", "postfix_setup.sh")
SENDER = "bench@bench.test"
RCPT = "rcpt@example.com"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smtpd", default=os.environ.get(
        "SMTPD_BIN", os.path.join(REPO, "build", "smtpd")),
        help="smtpd binary (default: $SMTPD_BIN or build/smtpd)")
    p.add_argument("--servers", default="smtpd,postfix",
                   help="comma list of smtpd, postfix, sink (smtp-sink, "
                        "a non-durable stand-in to validate the harness)")
    p.add_argument("--sizes", default="1024,102400",
                   help="message body sizes in bytes (smtp-source -l)")
    p.add_argument("--counts", default="2000,500",
                   help="messages per run, one per size (smtp-source -m)")
    p.add_argument("--sessions", default="1,10,50",
                   help="parallel sessions (smtp-source -s)")
    p.add_argument("--reuse", action="store_true",
                   help="send all messages of a session over one "
                        "connection (smtp-source -d); default is one "
                        "connection per message")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per cell; the median is reported")
    p.add_argument("--smtpd-port", type=int, default=2525)
    p.add_argument("--postfix-port", type=int, default=2526)
    p.add_argument("--sink-port", type=int, default=2527)
    p.add_argument("--workdir", default="/tmp/smtpd-bench")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    a = p.parse_args()
    a.servers = a.servers.split(",")
    a.sizes = [int(x) for x in a.sizes.split(",")]
    a.counts = [int(x) for x in a.counts.split(",")]
    a.sessions = [int(x) for x in a.sessions.split(",")]
    for s in a.servers:
        if s not in ("smtpd", "postfix", "sink"):
            p.error("unknown server %r" % s)
    if len(a.counts) != len(a.sizes):
        p.error("--counts needs one value per --sizes value")
    return a


def run_text(argv):
    """stdout of a command, or "?" when it cannot run."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    return (r.stdout or r.stderr).strip() or "?"


def wait_greeting(port, proc=None, timeout=10.0):
    """Wait until 127.0.0.1:port answers with a 220 greeting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("nothing answers 220 on 127.0.0.1:%d" % port)


def stop_process(proc, timeout=40):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Every server class has the same shape: name and port; version() for the
# header; start(); check(count) right after a run (raises when the run
# does not count); settle() to clear the run's backlog; stop().
class NoDeletes:
    """Keeps the benchmark from deleting files while it measures. On an
    ext4 without a journal, creating a file skips every inode freed in
    the last 60 s (300 s while its table block is dirty), one buffer
    lookup each, so a clean-up between runs would slow the next run by
    the number of files it deleted (bench/README.md). Files are renamed
    aside instead (a rename frees no inode), and an old tree is moved out
    of the way; both are deleted by cleanup(), after the measurements."""

    def __init__(self, root):
        self.kept = os.path.join(root, "kept")
        self.trash = [self.kept]

    def fresh_dir(self, path):
        if os.path.lexists(path):
            old = "%s.old-%d-%d" % (path, os.getpid(), len(self.trash))
            os.rename(path, old)
            self.trash.append(old)
        os.makedirs(path)

    def set_aside(self, folder):
        os.makedirs(self.kept, exist_ok=True)
        for name in os.listdir(folder):
            os.rename(os.path.join(folder, name),
                      os.path.join(self.kept, "%d-%s" % (time.monotonic_ns(),
                                                         name)))

    def cleanup(self):
        for path in self.trash:
            shutil.rmtree(path, ignore_errors=True)


class Smtpd:
    """Our smtpd with the benchmark config, Maildir under --workdir."""

    name = "smtpd"

    def __init__(self, args, stamp, port=None, bench="accept"):
        self.bin = args.smtpd
        self.port = port or args.smtpd_port
        self.dir = os.path.join(args.workdir, "smtpd")
        self.maildir = os.path.join(self.dir, "maildir")
        self.log = os.path.join(args.out, "%s-%s-smtpd.log" % (bench, stamp))
        self.proc = None
        self.files = NoDeletes(args.workdir)

    def extra_config(self):
        """Config lines a benchmark adds (run in the fresh self.dir)."""
        return []

    def version(self):
        return run_text([self.bin, "--version"])

    def start(self):
        self.files.fresh_dir(self.dir)
        conf = os.path.join(self.dir, "smtpd.yaml")
        with open(conf, "w") as f:
            f.write('listen: ["127.0.0.1:%d"]\n' % self.port)
            f.write("hostname: bench.test\n")
            f.write("maildir: %s\n" % self.maildir)
            f.write("max_connections: 1500\n")
            f.write("max_connections_per_ip: 0\n")
            f.write("log: {level: warn}\n")
            for line in self.extra_config():
                f.write(line + "\n")
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen([self.bin, "-c", conf],
                                         stdout=logf, stderr=logf)
        wait_greeting(self.port, self.proc)

    def check(self, count):
        n = len(os.listdir(os.path.join(self.maildir, "new")))
        if n != count:
            raise RuntimeError("smtpd stored %d of %d messages" % (n, count))
        if self.proc.poll() is not None:
            raise RuntimeError("smtpd exited with %d" % self.proc.returncode)

    def settle(self):
        self.files.set_aside(os.path.join(self.maildir, "new"))

    def stop(self):
        stop_process(self.proc)
        if self.proc is not None and self.proc.returncode not in (0, None):
            print("warning: smtpd exited with %d" % self.proc.returncode,
                  file=sys.stderr)
        self.files.cleanup()


class Postfix:
    """The private instance of bench/postfix_setup.sh."""

    name = "Postfix"

    def __init__(self, args, stamp):
        self.port = args.postfix_port
        self.started = False

    def version(self):
        return "Postfix " + run_text(["postconf", "-d", "-h", "mail_version"])

    def start(self):
        subprocess.run([POSTFIX_SETUP, "start", str(self.port)], check=True)
        self.started = True
        wait_greeting(self.port)

    def check(self, count):
        pass  # smtp-source's exit status already covers every 250

    def settle(self):
        subprocess.run([POSTFIX_SETUP, "drain", "120"], check=True)

    def stop(self):
        if self.started:
            subprocess.run([POSTFIX_SETUP, "drain", "120"])
            subprocess.run([POSTFIX_SETUP, "stop"])


class Sink:
    """Postfix's smtp-sink: answers 250 and discards; checks the harness."""

    name = "smtp-sink"

    def __init__(self, args, stamp):
        self.port = args.sink_port
        self.proc = None

    def version(self):
        return "smtp-sink (discards, no fsync)"

    def start(self):
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "127.0.0.1:%d" % self.port, "256"],
            stdout=subprocess.DEVNULL)
        wait_greeting(self.port, self.proc)

    def check(self, count):
        pass

    def settle(self):
        pass

    def stop(self):
        stop_process(self.proc)


SERVERS = {"smtpd": Smtpd, "postfix": Postfix, "sink": Sink}


def smtp_source_argv(port, size, count, sessions, reuse):
    argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(count),
            "-l", str(size), "-M", "bench.test", "-f", SENDER, "-t", RCPT]
    if reuse:
        argv.insert(1, "-d")
    return argv + ["127.0.0.1:%d" % port]


def run_cell(server, size, count, sessions, reuse, errlog):
    """One smtp-source run; returns messages per second and seconds."""
    argv = smtp_source_argv(server.port, size, count, sessions, reuse)
    errlog.write("$ %s\n" % " ".join(argv))
    errlog.flush()
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=errlog, stderr=errlog)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("smtp-source against %s failed (exit %d), see %s"
                           % (server.name, r.returncode, errlog.name))
    server.check(count)
    # Leave nothing behind for the next run to pay for: the server's
    # backlog (Postfix deliveries, smtpd's files) and dirty pages.
    server.settle()
    os.sync()
    return count / elapsed, elapsed


def fmt_size(n):
    if n % 1024 == 0:
        return "%d KiB" % (n // 1024)
    return "%d B" % n


def fsync_probe(workdir, n=50):
    """Median ms to create, write 1 KiB to and fsync one file in workdir."""
    path = os.path.join(workdir, "fsync-probe")
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x" * 1024)
            os.fsync(fd)
        finally:
            os.close(fd)
        times.append(time.monotonic() - t0)
        os.unlink(path)
    return statistics.median(times) * 1000


def header(args, servers):
    fs = run_text(["df", "--output=fstype", args.workdir]).split()[-1]
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mode = ("one connection per session, messages back to back (-d)"
            if args.reuse else
            "one connection per message (smtp-source default)")
    system_pf = subprocess.run(["postfix", "status"],
                               capture_output=True).returncode == 0
    lines = [
        "## smtpd_accept: %s" % run_text(["date", "-R"]),
        "",
        "* machine: %s CPUs (nproc), %s, Linux %s, workdir on %s "
        "(1 KiB write + fsync: %.2f ms median)"
        % (run_text(["nproc"]), cpu, os.uname().release, fs,
           fsync_probe(args.workdir)),
        "* servers: %s" % "; ".join(s.version() for s in servers),
        "* client: smtp-source, %s, median of %d run(s)"
        % (mode, args.repeat),
        "* system Postfix instance: %s (not touched)"
        % ("running" if system_pf else "not running"),
        "* load average (1 min) at start: %.2f" % os.getloadavg()[0],
        "",
    ]
    return lines


def cell(rates):
    """Median, with the range when there was more than one run."""
    med = statistics.median(rates)
    if len(rates) == 1:
        return "%.0f" % med
    return "%.0f (%.0f-%.0f)" % (med, min(rates), max(rates))


def table(args, servers, results):
    names = [s.name for s in servers]
    cols = ["size", "sessions", "messages"] + ["%s msg/s" % n for n in names]
    if len(servers) == 2:
        cols.append("%s / %s" % (names[0], names[1]))
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    for size, count in zip(args.sizes, args.counts):
        for sessions in args.sessions:
            runs = [results[(n, size, sessions)] for n in names]
            rates = [statistics.median(r) for r in runs]
            row = [fmt_size(size), str(sessions), str(count)]
            row += [cell(r) for r in runs]
            if len(servers) == 2:
                row.append("%.2f" % (rates[0] / rates[1]))
            lines.append("| " + " | ".join(row) + " |")
    return lines


def bench(args, servers, stamp):
    results = {}
    raw = open(os.path.join(args.out, "accept-%s.csv" % stamp), "w")
    errlog = open(os.path.join(args.out, "accept-%s-smtp-source.log"
                               % stamp), "w")
    with raw, errlog:
        w = csv.writer(raw)
        w.writerow(["server", "size", "sessions", "messages", "seconds",
                    "msg_per_s"])
        for size, count in zip(args.sizes, args.counts):
            for sessions in args.sessions:
                for rep in range(args.repeat):
                    order = servers if rep % 2 == 0 else servers[::-1]
                    for s in order:
                        rate, secs = run_cell(s, size, count, sessions,
                                              args.reuse, errlog)
                        results.setdefault((s.name, size, sessions),
                                           []).append(rate)
                        w.writerow([s.name, size, sessions, count,
                                    "%.3f" % secs, "%.1f" % rate])
                        raw.flush()
                        print("%-9s %7s s=%-3d %6.0f msg/s (%.1fs)"
                              % (s.name, fmt_size(size), sessions, rate,
                                 secs), file=sys.stderr)
    return results


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    servers = [SERVERS[n](args, stamp) for n in args.servers]
    started = []
    try:
        for s in servers:
            s.start()
            started.append(s)
        head = header(args, servers)
        results = bench(args, servers, stamp)
    finally:
        for s in started:
            s.stop()
    foot = ["", "load average (1 min) at the end: %.2f (counts the "
            "benchmark's own processes too); medians of %d "
            "run(s), (min-max) when more than one; raw runs in "
            "accept-%s.csv" % (os.getloadavg()[0], args.repeat, stamp)]
    text = "\n".join(head + table(args, servers, results) + foot) + "\n"
    with open(os.path.join(args.out, "accept-%s.md" % stamp), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
