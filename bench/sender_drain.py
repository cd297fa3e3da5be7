#!/usr/bin/python3
"""bench/sender_drain.py: time for sender and for a private Postfix to drain
the same queue of 1 KiB messages to 10 MX hosts, and the TCP connections
each MX host saw.

Owns: the scratch directory --workdir (sender config, Maildir, spool,
dnsmasq log), the smtp-sink processes (one per MX host, on 127.0.0.2 ..
127.0.0.(HOSTS+1), same port), one dnsmasq, the sender process, the relay
Postfix instance (through bench/postfix_relay_setup.sh, under
$PFRELAY_DIR) and the raw outputs under --out (bench/out/ by default).
Invariants:
  * Both systems deliver the same messages (same envelope, same bytes from
    the Received header on) to fresh sinks; only delivery is timed. Sender:
    files are written into <maildir>/new/ in smtpd's format before sender
    starts, the clock runs from spawning sender. Postfix: messages are
    injected over SMTP onto the hold queue, released to the deferred queue
    (postsuper -H), and the clock runs from "postqueue -f".
  * "Done" means every message finished: for sender N files in cur/, for
    Postfix an empty queue (confirmed by "postqueue -p"); the time the
    sinks had received all N is reported too.
  * Connections per MX host come from smtp-sink's own counter (-c: sess=
    is bumped when a session ends, so it is read after the client has
    exited), cross-checked with /proc/net/tcp samples (most connections
    open at once, distinct client ports seen) and with the client's log
    (sender: session.open lines; Postfix: deliveries without conn_use=).
  * Nothing is worked around: lost messages, more than one connection per
    MX host, log drops or a stall are reported as findings.
  * Every process started here (also the sinks and dnsmasq, which
    bench/drain_observe.py wraps) is stopped here, also on errors, Ctrl-C
    and SIGTERM. Exit status 1 when a run stalled or has a FINDING.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time

from drain_observe import (POLL, Dns, Sinks, TcpWatch, cpu_seconds,
                           FsyncSampler, free_port, mx_addr, run_text,
                           stop_process)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAY_SETUP = os.path.join(REPO, "bench", "postfix_relay_setup.sh")
FROM = "bench@bench.test"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sender", default=os.environ.get(
        "SENDER_BIN", os.path.join(REPO, "build", "sender")),
        help="sender binary (default: $SENDER_BIN or build/sender)")
    p.add_argument("--systems", default="sender,postfix",
                   help="comma list of sender, postfix (run in this order, "
                        "reversed on every second repeat)")
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--hosts", type=int, default=10,
                   help="MX hosts (d1.test..dN.test, 127.0.0.2..)")
    p.add_argument("--size", type=int, default=1024,
                   help="bytes of each message after the Received header")
    p.add_argument("--inject-sessions", type=int, default=10,
                   help="parallel SMTP sessions filling Postfix's queue")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per system (order alternates); the "
                        "median drain time is compared")
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds a drain may take before it counts as "
                        "a stall")
    p.add_argument("--workdir", default="/tmp/sender-drain")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    a = p.parse_args()
    a.systems = a.systems.split(",")
    for s in a.systems:
        if s not in ("sender", "postfix"):
            p.error("unknown system %r" % s)
    if "sender" in a.systems and not os.access(a.sender, os.X_OK):
        p.error("no sender binary at %s (build it, or --sender)" % a.sender)
    for tool in ("/usr/sbin/smtp-sink", "/usr/sbin/dnsmasq",
                 "/usr/sbin/postfix"):
        if not os.access(tool, os.X_OK):
            p.error("%s is missing (apt-get install postfix dnsmasq)" % tool)
    if not 1 <= a.hosts <= 200:
        p.error("--hosts must be 1..200")
    if a.messages < 1 or a.size < 300 or a.repeat < 1:
        p.error("--messages >= 1, --size >= 300, --repeat >= 1")
    return a


# -- the messages ---------------------------------------------------------
def make_messages(n, hosts, size):
    """[(rcpt, bytes from the Received header on, LF line ends)]."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    line = ("The quick brown fox jumps over the lazy dog; "
            "sender drain benchmark 0123456789\n")
    msgs = []
    for i in range(n):
        rcpt = "r%d@d%d.test" % (i, i % hosts + 1)
        received = ("Received: from client.bench.test (client.bench.test "
                    "[127.0.0.1])\n\tby bench.test with ESMTP id D%d; %s\n"
                    % (i, date))
        head = ("From: <%s>\nTo: <%s>\nSubject: drain %d\nDate: %s\n"
                "Message-ID: <%d.drain@bench.test>\n\n"
                % (FROM, rcpt, i, date, i))
        body = (line * (size // len(line) + 1))[:size - len(head) - 1]
        msgs.append((rcpt, (received + head + body + "\n").encode()))
    return msgs


def queue_for_sender(maildir, msgs):
    """smtpd's file format written straight into new/ (sender not yet
    running, so no tmp/ step is needed)."""
    new = os.path.join(maildir, "new")
    sec, pid = int(time.time()), os.getpid()
    for q, (rcpt, data) in enumerate(msgs):
        name = "%d.M%06dP%dQ%d.bench" % (sec, q % 1000000, pid, q + 1)
        with open(os.path.join(new, name), "wb") as f:
            f.write(b"X-Original-From: <%s>\nX-Original-To: <%s>\n"
                    % (FROM.encode(), rcpt.encode()))
            f.write(data)


# -- one drain ------------------------------------------------------------
class Result:
    def __init__(self, name):
        self.name = name
        self.run = 0
        self.t_sinks = None    # every message received by the sinks
        self.t_done = None     # queue empty / every file in cur/
        self.sink = []         # final (sess, quit, mesg) per sink
        self.max_conc = []
        self.ports_seen = []
        self.client_conns = []  # per sink, from the client's log
        self.notes = []
        self.events = {}
        self.cpu = None         # sender only: (user, system) seconds
        self.fsync_ms = None    # FsyncSampler mean during the drain


def watch_drain(res, n, sinks, tcp, done_fn, proc, timeout, t0):
    """Polls until done_fn() after the sinks have all n messages."""
    deadline = t0 + timeout
    while True:
        tcp.sample()
        if res.t_sinks is None:
            if sum(c[2] for c in sinks.counters()) >= n:
                res.t_sinks = time.monotonic() - t0
        if res.t_sinks is not None and done_fn():
            res.t_done = time.monotonic() - t0
            return
        if proc is not None and proc.poll() is not None:
            res.notes.append("FINDING: %s exited with %d during the drain"
                             % (res.name, proc.returncode))
            return
        if time.monotonic() > deadline:
            res.notes.append("FINDING: not drained within %.0f s (stall)"
                             % timeout)
            return
        time.sleep(POLL)


def finish_counts(res, sinks, tcp, per_sink):
    if not tcp.settle():
        res.notes.append("FINDING: connections to the sinks still open "
                         "10 s after the client stopped")
    time.sleep(0.2)  # the sink bumps sess= once it has seen the close
    res.sink = sinks.counters()
    res.max_conc = tcp.max
    res.ports_seen = [len(p) for p in tcp.ports]
    for i, c in enumerate(res.sink):
        if c[2] != per_sink[i]:
            res.notes.append("FINDING: mx%d.test received %d messages, %d "
                             "queued for it" % (i + 1, c[2], per_sink[i]))


def run_sender(args, msgs, per_sink, sink_port, dns_port, prefix):
    res = Result("sender")
    wd = os.path.join(args.workdir, "sender")
    shutil.rmtree(wd, ignore_errors=True)
    maildir = os.path.join(wd, "maildir")
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, d))
    os.makedirs(os.path.join(wd, "spool"))
    conf = os.path.join(wd, "sender.yaml")
    with open(conf, "w") as f:
        f.write("maildir: %s\nspool: %s\ninstance: bench\n"
                "hostname: sender.bench.test\n"
                "dns: {servers: [\"127.0.0.1:%d\"]}\nremote_port: %d\n"
                "keep_delivered: true\nlog: {level: info}\n"
                % (maildir, os.path.join(wd, "spool"), dns_port, sink_port))
    queue_for_sender(maildir, msgs)
    sinks = Sinks(args.hosts, sink_port, prefix + "-sender")
    proc = None
    log_path = prefix + "-sender.log"
    try:
        sinks.start()
        tcp = TcpWatch(sinks.addrs, sink_port)
        os.sync()
        cur = os.path.join(maildir, "cur")
        with open(log_path, "wb") as out, \
                open(prefix + "-sender.stderr", "wb") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen([args.sender, "-c", conf], stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL)
        fsync = FsyncSampler(args.workdir).start()
        try:
            watch_drain(res, len(msgs), sinks, tcp,
                        lambda: len(os.listdir(cur)) >= len(msgs), proc,
                        args.timeout, t0)
        finally:
            res.fsync_ms = fsync.stop()
        res.cpu = cpu_seconds(proc.pid)
        rc = stop_process(proc)
        if rc != 0:
            res.notes.append("FINDING: sender exited with %s on SIGTERM" % rc)
        finish_counts(res, sinks, tcp, per_sink)
    finally:
        stop_process(proc)
        sinks.stop()
    left = {d: len(os.listdir(p)) for d, p in (
        ("new", os.path.join(maildir, "new")),
        ("spool/bench", os.path.join(wd, "spool", "bench")),
        ("cur", os.path.join(maildir, "cur"))) if os.path.isdir(p)}
    if left.get("cur") != len(msgs) or left.get("new") or \
            left.get("spool/bench"):
        res.notes.append("FINDING: files at the end: %s" % left)
    flagged = [x for x in os.listdir(os.path.join(maildir, "cur"))
               if not x.endswith(":2,P")]
    if flagged:
        res.notes.append("FINDING: %d cur/ files not flagged :2,P (e.g. %s)"
                         % (len(flagged), flagged[0]))
    with open(prefix + "-sender.stderr", errors="replace") as f:
        err = f.read().strip()
    if err:
        res.notes.append("sender stderr: %s" % err.splitlines()[0])
    sender_log_checks(res, log_path, args.hosts)
    return res

def sender_log_checks(res, path, hosts):
    events = collections.Counter()
    opens = collections.Counter()
    bad = dropped = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            ev = rec.get("event")
            events[ev] += 1
            if ev == "session.open":
                opens[rec.get("mx")] += 1
            elif ev == "log.dropped":
                dropped += rec.get("dropped", 0)
    res.client_conns = [opens.get("mx%d.test" % (i + 1), 0)
                        for i in range(hosts)]
    res.events = events
    # Every sink accepts everything: any of these is a finding.
    if bad:
        res.notes.append("FINDING: %d sender log lines are not JSON" % bad)
    if dropped:
        res.notes.append("FINDING: sender dropped %d log lines "
                         "(log.dropped)" % dropped)
    for ev in ("delivery.deferred", "delivery.bounced", "msg.deferred",
               "msg.malformed", "msg.retire_failed", "session.fail",
               "dns.fail"):
        if events.get(ev):
            res.notes.append("FINDING: sender logged %d %s"
                             % (events[ev], ev))
    unknown = set(opens) - {"mx%d.test" % (i + 1) for i in range(hosts)}
    if unknown:
        res.notes.append("FINDING: session.open for unexpected mx %s"
                         % unknown)


def relay(cmd, *extra, check=True):
    return subprocess.run([RELAY_SETUP, cmd] + [str(x) for x in extra],
                          check=check, capture_output=True, text=True)


def pf_queue_files(qdir):
    n = 0
    for d in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(qdir, d)):
            n += len(files)
    return n


def inject(msgs, port, sessions):
    """Sends msgs over `sessions` parallel SMTP connections (CRLF)."""
    errors = []

    def worker(part):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                for rcpt, data in part:
                    c.sendmail(FROM, [rcpt], data.replace(b"\n", b"\r\n"))
        except (OSError, smtplib.SMTPException) as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(msgs[k::sessions],),
                                daemon=True) for k in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("injection into Postfix failed: %s" % errors[0])


def run_postfix(args, msgs, per_sink, sink_port, prefix, started):
    res = Result("Postfix")
    pfdir = os.environ.get("PFRELAY_DIR", "/tmp/pfrelay")
    port = free_port(["127.0.0.1"])
    sinks = Sinks(args.hosts, sink_port, prefix + "-postfix")
    try:
        sinks.start()
        tcp = TcpWatch(sinks.addrs, sink_port)
        started.append("postfix")
        relay("start", port, sink_port, args.hosts)
        t_inj = time.monotonic()
        inject(msgs, port, args.inject_sessions)
        t_inj = time.monotonic() - t_inj
        held = int(relay("hold").stdout)
        if held != len(msgs) or sum(c[2] for c in sinks.counters()):
            raise RuntimeError("after injection: %d on hold, sinks got %d"
                               % (held, sum(c[2] for c in sinks.counters())))
        res.notes.append("injection (not timed): %.1f s, %.0f msg/s over "
                         "%d sessions" % (t_inj, len(msgs) / t_inj,
                                          args.inject_sessions))
        relay("release")
        os.sync()
        qdir = os.path.join(pfdir, "queue")
        t0 = time.monotonic()
        relay("flush")
        fsync = FsyncSampler(args.workdir).start()
        try:
            watch_drain(res, len(msgs), sinks, tcp,
                        lambda: pf_queue_files(qdir) == 0, None,
                        args.timeout, t0)
        finally:
            res.fsync_ms = fsync.stop()
        pq = run_text(["postqueue", "-c", os.path.join(pfdir, "etc"),
                       "-p"])
        if "Mail queue is empty" not in pq:
            res.notes.append("FINDING: postqueue -p: %s" % pq.splitlines()[-1])
        relay("stop")
        finish_counts(res, sinks, tcp, per_sink)
    finally:
        if "postfix" in started:
            relay("stop", check=False)
            started.remove("postfix")
        sinks.stop()
        if os.path.exists(os.path.join(pfdir, "postfix.log")):
            shutil.copy(os.path.join(pfdir, "postfix.log"),
                        prefix + "-postfix.log")
    postfix_log_checks(res, prefix + "-postfix.log", args.hosts)
    return res


def postfix_log_checks(res, path, hosts):
    """New connections = smtp deliveries logged without conn_use=."""
    conns = collections.Counter()
    status = collections.Counter()
    rx = re.compile(r"relay=[^\[]*\[([\d.]+)\]:\d+, (conn_use=)?.*"
                    r"status=(\w+)")
    with open(path, errors="replace") as f:
        for line in f:
            m = rx.search(line)
            if m:
                status[m.group(3)] += 1
                if not m.group(2):
                    conns[m.group(1)] += 1
    res.client_conns = [conns.get(mx_addr(i), 0) for i in range(hosts)]
    res.events = status
    for st in ("deferred", "bounced"):
        if status.get(st):
            res.notes.append("FINDING: Postfix logged %d status=%s"
                             % (status[st], st))


# -- report ---------------------------------------------------------------
def header(args, stamp_rfc):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = run_text(["df", "--output=fstype", args.workdir]).split()[-1]
    return [
        "## sender_drain: %s" % stamp_rfc, "",
        "* machine: %s CPUs (nproc), %s, Linux %s, workdir and Postfix "
        "queue on %s" % (run_text(["nproc"]), cpu, os.uname().release, fs),
        "* %s; Postfix %s; smtp-sink (Postfix %s) per MX host"
        % (run_text([args.sender, "--version"]),
           run_text(["postconf", "-d", "-h", "mail_version"]),
           run_text(["postconf", "-d", "-h", "mail_version"])),
        "* workload: %d messages, one recipient each, a %d-byte message "
        "after a Received header, round-robin over d1..d%d.test (one MX "
        "host each)" % (args.messages, args.size, args.hosts),
        "* load average (1 min) at start: %.2f" % os.getloadavg()[0], ""]


def rate(n, t):
    return "%.0f" % (n / t) if t else "-"


def secs(t):
    return "%.2f" % t if t is not None else "stalled"


def report(args, results):
    n = args.messages
    out = ["| system | run | drain s | msg/s | all at sinks s | connections "
           "per MX (sink count) | most open at once per MX | "
           "rename + 2 dir fsyncs during the drain, mean ms |",
           "|---|---|---|---|---|---|---|---|"]
    for r in results:
        out.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            r.name, r.run, secs(r.t_done), rate(n, r.t_done),
            secs(r.t_sinks), compact([c[0] for c in r.sink]),
            compact(r.max_conc), "%.2f" % r.fsync_ms if r.fsync_ms
            else "-"))
    med = {}
    for name in ("sender", "Postfix"):
        times = [r.t_done for r in results if r.name == name]
        if times and None not in times:
            med[name] = statistics.median(times)
            if len(times) > 1:
                out.append("| %s | median | %.2f | %s | | | | |"
                           % (name, med[name], rate(n, med[name])))
    if len(med) == 2:
        out += ["", "sender / Postfix throughput: **%.2fx** (target: "
                ">= 2x with exactly one connection per MX host)"
                % (med["Postfix"] / med["sender"])]
    last = {r.name: r for r in results}
    out += ["", "Last run, per MX host (connections: smtp-sink's count / "
            "client log / distinct client ports in /proc/net/tcp samples "
            "/ most open at once):", "",
            "| MX host | " + " | ".join(
                "%s msgs | %s conns" % (k, k) for k in last) + " |",
            "|---|" + "---|---|" * len(last)]
    for i in range(args.hosts):
        row = ["mx%d.test (%s)" % (i + 1, mx_addr(i))]
        for r in last.values():
            if not r.sink:
                row += ["?", "?"]
                continue
            row += [str(r.sink[i][2]), "%d / %d / %d / %d" % (
                r.sink[i][0], r.client_conns[i], r.ports_seen[i],
                r.max_conc[i])]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    for r in results:
        if r.name == "sender" and r.sink and \
                any(c[0] != 1 for c in r.sink):
            r.notes.append("FINDING: not exactly one connection per MX "
                           "host: %s" % [c[0] for c in r.sink])
        if r.cpu:
            r.notes.append("sender CPU %.2f s user + %.2f s system"
                           % r.cpu)
        out += ["* %s run %d: %s; log: %s" % (
            r.name, r.run, "; ".join(r.notes) or "no anomalies",
            ", ".join("%s %d" % kv for kv in sorted(r.events.items())))]
    return out


def compact(vals):
    """"1 (all 10)" when all equal, else the list."""
    if vals and all(v == vals[0] for v in vals):
        return "%d (all %d)" % (vals[0], len(vals))
    return " ".join(str(v) for v in vals)


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = os.path.join(args.out, "drain-%s" % stamp)
    head = header(args, run_text(["date", "-R"]))
    msgs = make_messages(args.messages, args.hosts, args.size)
    per_sink = [0] * args.hosts
    for i in range(args.messages):
        per_sink[i % args.hosts] += 1
    addrs = [mx_addr(i) for i in range(args.hosts)]
    started = []
    dns = None
    results = []
    try:
        if "sender" in args.systems:
            dns = Dns(args.hosts, free_port(["127.0.0.1"], udp=True),
                      base + "-dnsmasq.log")
            dns.start()
        for rep in range(1, args.repeat + 1):
            order = args.systems if rep % 2 else args.systems[::-1]
            for s in order:
                print("run %d: draining with %s ..." % (rep, s),
                      file=sys.stderr)
                prefix = "%s-%d" % (base, rep)
                sink_port = free_port(addrs)
                if s == "sender":
                    r = run_sender(args, msgs, per_sink, sink_port,
                                   dns.port, prefix)
                else:
                    r = run_postfix(args, msgs, per_sink, sink_port,
                                    prefix, started)
                r.run = rep
                results.append(r)
                print("run %d: %s %s s" % (rep, r.name, secs(r.t_done)),
                      file=sys.stderr)
    finally:
        if dns is not None:
            dns.stop()
        if "postfix" in started:
            relay("stop", check=False)
    foot = ["", "load average (1 min) at the end: %.2f; raw output: "
            "%s-*" % (os.getloadavg()[0], os.path.relpath(base, REPO))]
    text = "\n".join(head + report(args, results) + foot) + "\n"
    with open(base + ".md", "w") as f:
        f.write(text)
    sys.stdout.write(text)
    # A benchmark, not a test, but a run with findings must not look green.
    bad = any(r.t_done is None or any(x.startswith("FINDING")
                                      for x in r.notes) for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
