#!/usr/bin/python3
"""bench/smtpd_tls.py: smtpd's accept rate with STARTTLS against plaintext,
same server, same client, same run.

Owns: the scratch directory --workdir (certificate, smtpd config, Maildir)
and the raw outputs under --out (bench/out/ by default).
Invariants:
  * Everything runs on 127.0.0.1. One smtpd serves every cell; it has a
    certificate, so it advertises STARTTLS to every client, and the
    plaintext client simply does not use it.
  * The client is smtp-tls-source (bench/smtp_tls_source.c, built next
    to smtpd): one process, one thread, --sessions concurrent sessions
    over poll(), so the client's TLS costs as little CPU as it can and
    leaves the shared CPUs to smtpd. Each pattern runs lock-step (each
    command waits for its reply) and with pipelining (MAIL, RCPT and
    DATA in one write), as separate rows; --mode picks one. The
    plaintext cells use the same client, so whatever the
    client costs, it costs both sides; its CPU time (getrusage, from its
    first connect to its last close) is reported.
  * The clock is the client's: it starts when the client has built its
    TLS context and message and is told to go, at its first connect,
    and stops at its last close.
  * A run counts only when every reply was the expected one and exactly
    that many files landed in new/; they are renamed aside and sync(2)
    run after each run, outside the timing (deleted only after the last
    run: see NoDeletes in smtpd_accept.py).
  * Cells alternate plaintext/TLS and the order flips on every repeat;
    the table shows medians.
  * smtpd started here is stopped here, also on errors and Ctrl-C.

Prints a markdown table on stdout and keeps it, a CSV of every run and
smtpd's log in --out.
"""

import argparse
import csv
import os
import ssl
import statistics
import subprocess
import sys
import time

from drain_observe import cpu_seconds
import smtpd_accept
from smtpd_accept import run_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTNAME = "bench.test"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smtpd", default=os.environ.get(
        "SMTPD_BIN", os.path.join(REPO, "build", "smtpd")),
        help="smtpd binary (default: $SMTPD_BIN or build/smtpd)")
    p.add_argument("--client", default=None,
                   help="smtp-tls-source binary (default: $TLS_SOURCE_BIN "
                        "or smtp-tls-source next to the smtpd binary)")
    p.add_argument("--mode", choices=["both", "lock-step", "pipelining"],
                   default="both",
                   help="lock-step: each command waits for its reply; "
                        "pipelining: MAIL, RCPT and DATA in one write "
                        "(RFC 2920); default: both, as separate rows")
    p.add_argument("--sessions", type=int, default=50,
                   help="concurrent sessions (default 50)")
    p.add_argument("--new-count", type=int, default=2000,
                   help="messages per run, one session per message")
    p.add_argument("--per-session", type=int, default=400,
                   help="messages per session in the reused-session "
                        "pattern (messages = sessions x this)")
    p.add_argument("--size", type=int, default=1024,
                   help="body bytes per message (default 1024)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per cell; the median is reported")
    p.add_argument("--port", type=int, default=2529)
    p.add_argument("--workdir", default="/tmp/smtpd-tls-bench")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    a = p.parse_args()
    if a.client is None:
        a.client = os.environ.get("TLS_SOURCE_BIN", os.path.join(
            os.path.dirname(a.smtpd), "smtp-tls-source"))
    if not os.access(a.client, os.X_OK):
        p.error("no smtp-tls-source at %s (build it: cmake --build BUILD "
                "--target smtp-tls-source, or give --client)" % a.client)
    if a.new_count % a.sessions:
        p.error("--new-count must be a multiple of --sessions")
    return a


# ---------------------------------------------------------------- client

def run_client(args, tls, reuse, pipelining, count):
    """One timed run; returns (seconds, client CPU seconds), both as the
    client measured them."""
    argv = [args.client, "-w", "-s", str(args.sessions), "-m", str(count),
            "-l", str(args.size)]
    if reuse:
        argv += ["-r", str(count // args.sessions)]
    if tls:
        argv.append("-T")
    if pipelining:
        argv.append("-P")
    argv.append("127.0.0.1:%d" % args.port)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("smtp-tls-source did not start")
        p.stdin.write("go\n")
        p.stdin.flush()
        out = p.stdout.read()
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # messages=N seconds=S rate=R cpu=C
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    if p.returncode != 0 or int(fields.get("messages", -1)) != count:
        raise RuntimeError("smtp-tls-source failed (exit %d): %s"
                           % (p.returncode, out.strip()))
    return float(fields["seconds"]), float(fields["cpu"])


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
MODES = [("lock-step", False), ("pipelining", True)]


def rows(args):
    """(label, reuse, pipelining) for every row of the table."""
    modes = [m for m in MODES if args.mode in ("both", m[0])]
    return [("%s, %s" % (p, m), reuse, pipe)
            for p, reuse in PATTERNS for m, pipe in modes]


def bench(args, server, stamp):
    results = {}
    raw = open(os.path.join(args.out, "tls-%s.csv" % stamp), "w")
    with raw:
        w = csv.writer(raw)
        w.writerow(["pattern", "tls", "messages", "seconds", "msg_per_s",
                    "client_cpu_s", "smtpd_cpu_s"])
        for label, reuse, pipe in rows(args):
            count = (args.sessions * args.per_session if reuse
                     else args.new_count)
            for rep in range(args.repeat):
                order = (False, True) if rep % 2 == 0 else (True, False)
                for tls in order:
                    s0 = server.cpu()
                    secs, ccpu = run_client(args, tls, reuse, pipe, count)
                    scpu = server.cpu() - s0
                    server.check_and_empty(count)
                    rate = count / secs
                    results.setdefault((label, tls), []).append(
                        (rate, ccpu / secs, scpu / count, count))
                    w.writerow([label, int(tls), count, "%.3f" % secs,
                                "%.1f" % rate, "%.3f" % ccpu,
                                "%.3f" % scpu])
                    raw.flush()
                    print("%s %-36s %-9s %6.0f msg/s (%.1fs) client CPU "
                          "%3.0f%% smtpd %.0f us/msg"
                          % (time.strftime("%H:%M:%S"), label,
                             "STARTTLS" if tls else "plaintext",
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
    for label, _, _ in rows(args):
        p, t = results[(label, False)], results[(label, True)]
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
        "* client: %s (smtp-tls-source, one process), %d sessions, "
        "%d-byte bodies, reused sessions send %d messages each; median "
        "(min-max) of %d run(s)"
        % (args.client, args.sessions, args.size, args.per_session,
           args.repeat),
        "* load average (1 min) at start: %.2f" % os.getloadavg()[0],
        "",
    ]


def main():
    args = parse_args()
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
            "Client CPU = smtp-tls-source's CPU seconds / wall seconds (100 %% = "
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
