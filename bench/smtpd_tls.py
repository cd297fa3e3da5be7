#!/usr/bin/python3
"""bench/smtpd_tls.py: smtpd's accept rate with STARTTLS against plaintext,
same server, same client, same run.

Owns: the scratch directory --workdir (certificate, smtpd config, Maildir)
and the raw outputs under --out (bench/out/ by default).
Invariants:
  * Everything runs on 127.0.0.1. One smtpd serves every cell; it has a
    certificate, so it advertises STARTTLS to every client, and the
    plaintext client simply does not use it.
  * The client is this script's own: --procs worker processes (re-running
    this file with --worker) with --sessions / --procs threads each, so
    neither the GIL of one process nor smtplib's overhead sets the rate.
    The plaintext cells use the same client, so whatever the client
    costs, it costs both sides; its CPU time is measured and reported.
  * The clock starts when every worker has imported, built its TLS
    context and made its message, and stops when the last one is done.
  * A run counts only when every reply was the expected one and exactly
    that many files landed in new/; new/ is emptied and sync(2) run after
    each run, outside the timing.
  * Cells alternate plaintext/TLS and the order flips on every repeat;
    the table shows medians.
  * smtpd started here is stopped here, also on errors and Ctrl-C.

Prints a markdown table on stdout and keeps it, a CSV of every run and
smtpd's log in --out.
"""

import argparse
import csv
import os
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

from drain_observe import cpu_seconds
import smtpd_accept
from smtpd_accept import run_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENDER = "bench@bench.test"
RCPT = "rcpt@example.com"
HOSTNAME = "bench.test"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smtpd", default=os.environ.get(
        "SMTPD_BIN", os.path.join(REPO, "build", "smtpd")),
        help="smtpd binary (default: $SMTPD_BIN or build/smtpd)")
    p.add_argument("--sessions", type=int, default=50,
                   help="concurrent sessions (default 50)")
    p.add_argument("--procs", type=int, default=5,
                   help="client worker processes sharing the sessions")
    p.add_argument("--new-count", type=int, default=2000,
                   help="messages per run, one session per message")
    p.add_argument("--per-session", type=int, default=100,
                   help="messages per session in the reused-session "
                        "pattern (messages = sessions x this)")
    p.add_argument("--size", type=int, default=1024,
                   help="body bytes per message (default 1024)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per cell; the median is reported")
    p.add_argument("--port", type=int, default=2529)
    p.add_argument("--workdir", default="/tmp/smtpd-tls-bench")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    # Internal: one client worker process.
    p.add_argument("--worker", nargs=5, metavar=("TLS", "SESSIONS",
                   "MSGS_PER_SESSION", "REUSE", "SIZE"),
                   help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.sessions % a.procs:
        p.error("--sessions must be a multiple of --procs")
    if a.new_count % a.sessions:
        p.error("--new-count must be a multiple of --sessions")
    return a


# ---------------------------------------------------------------- client

class Wire:
    """One SMTP connection: send a line, read a (multi-line) reply."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def reply(self, want):
        while True:
            line = self.f.readline(1024)
            if len(line) < 4 or not line[:3].isdigit():
                raise RuntimeError("bad reply %r" % line)
            if line[3:4] != b"-":
                break
        if not line.startswith(want):
            raise RuntimeError("wanted %r, got %r" % (want, line))

    def cmd(self, data, want):
        self.sock.sendall(data)
        self.reply(want)

    def starttls(self, ctx):
        self.cmd(b"STARTTLS\r\n", b"220")
        self.f.close()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=HOSTNAME)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.cmd(b"QUIT\r\n", b"221")
        finally:
            self.f.close()
            self.sock.close()


def make_message(size):
    """Headers, blank line, then exactly size body bytes (CRLF lines)."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: tls bench\r\n"
            "Message-ID: <bench@bench.test>\r\n\r\n" % (SENDER, RCPT))
    line = b"x" * 76 + b"\r\n"
    body = (line * (size // len(line) + 1))[:size - 2] + b"\r\n"
    return head.encode() + body + b".\r\n"


def open_session(port, ctx):
    w = Wire(port)
    w.reply(b"220")
    w.cmd(b"EHLO client.bench.test\r\n", b"250")
    if ctx is not None:
        w.starttls(ctx)
        w.cmd(b"EHLO client.bench.test\r\n", b"250")
    return w


def send_one(w, msg):
    w.cmd(b"MAIL FROM:<%s>\r\n" % SENDER.encode(), b"250")
    w.cmd(b"RCPT TO:<%s>\r\n" % RCPT.encode(), b"250")
    w.cmd(b"DATA\r\n", b"354")
    w.cmd(msg, b"250")


def session_loop(port, ctx, count, reuse, msg, errors):
    try:
        if reuse:
            w = open_session(port, ctx)
            for _ in range(count):
                send_one(w, msg)
            w.close()
            return
        for _ in range(count):
            w = open_session(port, ctx)
            send_one(w, msg)
            w.close()
    except Exception as e:  # reported by the worker's exit status
        errors.append(repr(e))


def worker(port, spec):
    """Runs SESSIONS threads once the parent writes a line to stdin;
    prints the CPU seconds it used from then on."""
    tls, sessions, per, reuse, size = (int(x) for x in spec)
    ctx = None
    if tls:
        # No certificate check (like an opportunistic MTA client): the
        # check would be client work only, and client and server share
        # the CPUs here.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    msg = make_message(size)
    errors = []
    threads = [threading.Thread(target=session_loop,
                                args=(port, ctx, per, reuse, msg, errors))
               for _ in range(sessions)]
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("cpu %.4f" % (time.process_time() - cpu0), flush=True)
    for e in errors[:5]:
        print(e, file=sys.stderr)
    return 1 if errors else 0


def run_client(args, tls, reuse, count):
    """One timed run; returns (seconds, client CPU seconds)."""
    per_session = count // args.sessions
    spec = [str(int(tls)), str(args.sessions // args.procs),
            str(per_session), str(int(reuse)), str(args.size)]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__),
                               "--port", str(args.port), "--worker", *spec],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
             for _ in range(args.procs)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("client worker did not start")
    t0 = time.monotonic()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    cpu = 0.0
    for p in procs:
        out = p.stdout.read()
        p.wait()
        if p.returncode != 0 or not out.startswith("cpu "):
            raise RuntimeError("client worker failed (exit %d)"
                               % p.returncode)
        cpu += float(out.split()[1])
    return time.monotonic() - t0, cpu


# ---------------------------------------------------------------- server

def openssl(*argv, cwd):
    subprocess.run(["openssl", *argv], cwd=cwd, check=True,
                   capture_output=True, timeout=30)


def make_cert(d):
    """Self-signed EC P-256 certificate for bench.test and 127.0.0.1."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
            "-out", "server.pem", "-days", "2", "-subj", "/CN=" + HOSTNAME,
            "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % HOSTNAME,
            cwd=d)


class Smtpd(smtpd_accept.Smtpd):
    """The accept benchmark's smtpd, with a certificate and relaying for
    loopback; counts its CPU."""

    def __init__(self, args, stamp):
        super().__init__(args, stamp, port=args.port, bench="tls")

    def extra_config(self):
        make_cert(self.dir)
        return ['relay: {networks: ["127.0.0.0/8"]}',
                "tls: {cert: %s, key: %s}"
                % (os.path.join(self.dir, "server.pem"),
                   os.path.join(self.dir, "server.key"))]

    def cpu(self):
        """User + system CPU seconds smtpd has used so far."""
        return sum(cpu_seconds(self.proc.pid))

    def check_and_empty(self, count):
        self.check(count)
        self.settle()
        os.sync()


# ---------------------------------------------------------------- driver

PATTERNS = [("new session per message", False), ("reused sessions", True)]


def bench(args, server, stamp):
    results = {}
    raw = open(os.path.join(args.out, "tls-%s.csv" % stamp), "w")
    with raw:
        w = csv.writer(raw)
        w.writerow(["pattern", "tls", "messages", "seconds", "msg_per_s",
                    "client_cpu_s", "smtpd_cpu_s"])
        for label, reuse in PATTERNS:
            count = (args.sessions * args.per_session if reuse
                     else args.new_count)
            for rep in range(args.repeat):
                order = (False, True) if rep % 2 == 0 else (True, False)
                for tls in order:
                    s0 = server.cpu()
                    secs, ccpu = run_client(args, tls, reuse, count)
                    scpu = server.cpu() - s0
                    server.check_and_empty(count)
                    rate = count / secs
                    results.setdefault((reuse, tls), []).append(
                        (rate, ccpu / secs, scpu / count, count))
                    w.writerow([label, int(tls), count, "%.3f" % secs,
                                "%.1f" % rate, "%.3f" % ccpu,
                                "%.3f" % scpu])
                    raw.flush()
                    print("%-24s %-9s %6.0f msg/s (%.1fs) client CPU %3.0f%%"
                          " smtpd %.0f us/msg"
                          % (label, "STARTTLS" if tls else "plaintext",
                             rate, secs, 100 * ccpu / secs,
                             1e6 * scpu / count), file=sys.stderr)
    return results


def med(rows, i):
    return statistics.median(r[i] for r in rows)


def table(args, results):
    lines = ["| pattern | messages | plaintext msg/s | STARTTLS msg/s "
             "| TLS cost | client CPU plain / TLS | smtpd CPU per msg "
             "plain / TLS |",
             "|---|---|---|---|---|---|---|"]
    for label, reuse in PATTERNS:
        p, t = results[(reuse, False)], results[(reuse, True)]
        rp, rt = med(p, 0), med(t, 0)

        def rng(rows):
            rates = [r[0] for r in rows]
            return "%.0f (%.0f-%.0f)" % (statistics.median(rates),
                                         min(rates), max(rates))
        lines.append("| %s | %d | %s | %s | %.1f %% | %.0f %% / %.0f %% "
                     "| %.0f / %.0f us |"
                     % (label, p[0][3], rng(p), rng(t),
                        100 * (1 - rt / rp), 100 * med(p, 1),
                        100 * med(t, 1), 1e6 * med(p, 2),
                        1e6 * med(t, 2)))
    return lines


def header(args):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        "## smtpd_tls: %s" % run_text(["date", "-R"]),
        "",
        "* machine: %s CPUs (nproc), %s, Linux %s"
        % (run_text(["nproc"]), cpu, os.uname().release),
        "* smtpd: %s; %s" % (args.smtpd, ssl.OPENSSL_VERSION),
        "* client: %d sessions (%d processes x %d threads), %d-byte "
        "bodies, reused sessions send %d messages each; median (min-max) "
        "of %d run(s)" % (args.sessions, args.procs,
                          args.sessions // args.procs, args.size,
                          args.per_session, args.repeat),
        "* load average (1 min) at start: %.2f" % os.getloadavg()[0],
        "",
    ]


def main():
    args = parse_args()
    if args.worker:
        return worker(args.port, args.worker)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    server = Smtpd(args, stamp)
    try:
        server.start()
        head = header(args)
        results = bench(args, server, stamp)
    finally:
        server.stop()
    foot = ["", "TLS cost = 1 - STARTTLS rate / plaintext rate (medians). "
            "Client CPU = the workers' CPU seconds / wall seconds (100 %% = "
            "one CPU of %s). Load average (1 min) at the end: %.2f; raw "
            "runs in tls-%s.csv" % (run_text(["nproc"]), os.getloadavg()[0],
                                    stamp)]
    text = "\n".join(head + table(args, results) + foot) + "\n"
    with open(os.path.join(args.out, "tls-%s.md" % stamp), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
