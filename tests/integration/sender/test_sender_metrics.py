"""Metrics push and health ping from the sender: every metrics.interval it
PUTs Prometheus text to a local HTTP receiver (Pushgateway API) and GETs
the ping URL. The body must parse strictly as the text exposition format
and its counters must match what the log says happened; a push endpoint
that never answers must not hold up mail and is logged once when it
starts failing; a push host given by name is looked up through the
sender's own DNS servers."""

import base64
import re

import pytest

from promtext import Receiver, parse_prom, value

from .sinks import wait_for
from .testzone import HOSTS

WAIT = 15.0  # seconds for anything that needs a push round or two
JOB = "sender-test"
FAMILIES = {
    "sender_deliveries_total": "counter",
    "sender_queue_messages": "gauge",
    "sender_sessions_active": "gauge",
    "sender_sessions_opened_total": "counter",
    "sender_dns_lookups_total": "counter",
    "sender_dns_failures_total": "counter",
    "sender_log_lines_dropped_total": "counter",
    "sender_uptime_seconds": "gauge",
}
OUTCOMES = ("sent", "deferred", "bounced")
QUERY_RE = re.compile(r"query\[(MX|A)\] \S+ from ")


def metrics_config(receiver, **over):
    cfg = {"push_url": receiver.url("/gw/"), "interval": "1s", "job": JOB,
           "instance": "out/1"}
    cfg.update(over)
    return cfg


def group_path(instance):
    """The Pushgateway grouping path for JOB and instance: plain, or the
    base64url form for a value with a slash."""
    if "/" in instance:
        enc = base64.urlsafe_b64encode(instance.encode()).decode()
        return f"/metrics/job/{JOB}/instance@base64/{enc}"
    return f"/metrics/job/{JOB}/instance/{instance}"


def pushes(receiver):
    """Every PUT body so far, parsed strictly."""
    return [parse_prom(r[3].decode("utf-8")) for r in receiver.of("PUT")]


def latest(receiver):
    puts = receiver.of("PUT")
    return parse_prom(puts[-1][3].decode("utf-8")) if puts else None


def deliveries(fams):
    return {o: value(fams, "sender_deliveries_total", outcome=o)
            for o in OUTCOMES}


def sessions_opened(fams):
    """{mx: sessions} from sender_sessions_opened_total."""
    return {dict(k)["mx"]: v for k, v in
            fams["sender_sessions_opened_total"]["samples"].items()}


def dns_queries(dns):
    """MX and A queries the test DNS server has answered so far (an
    address lookup asks for A and AAAA; count it once)."""
    try:
        text = dns.log.read_text("utf-8", "replace")
    except FileNotFoundError:
        return 0
    return len(QUERY_RE.findall(text))


def test_counters_match_the_log(sender, mx, dns, receiver):
    """Three messages sent, one recipient refused with 550 (its bounce is
    a message of its own), one deferred (dead.test's MX refuses
    connections): the pushed counters equal the delivery.* and
    session.open lines, the push goes to the configured group, and the
    ping URL gets GETs."""
    mx.sink("mx1.test", reject_rcpts=["bad@one.test"])
    mx.sink("mx2.test")     # the bounce goes to alice@two.test
    queries_before = dns_queries(dns)
    s = sender(metrics=metrics_config(receiver),
               health={"ping_url": receiver.url("/ping/sender")})
    # Before any mail: a push with nothing counted yet.
    first = wait_for(lambda: latest(receiver), WAIT, "a first push")
    assert deliveries(first) == {o: 0 for o in OUTCOMES}
    assert value(first, "sender_queue_messages") == 0
    assert first["sender_sessions_opened_total"]["samples"] == {}

    sent = [s.drop([f"u{i}@one.test"]) for i in range(3)]
    refused = s.drop(["bad@one.test"], mail_from="alice@two.test")
    waiting = s.drop(["x@dead.test"])
    bounce = s.wait_log("bounce.sent", timeout=WAIT, queue_id=refused)
    for qid in sent + [refused, bounce["bounce_id"]]:
        s.wait_log("msg.done", timeout=WAIT, queue_id=qid)
    s.wait_log("msg.waiting", timeout=WAIT, queue_id=waiting)
    for host in ("mx1.test", "mx2.test"):
        s.wait_log("session.close", timeout=WAIT, mx=host)

    def logged(event, **fields):
        return len(s.find_logs(event, **fields))

    want = {o: logged(f"delivery.{o}") for o in OUTCOMES}
    # The three, and the bounce itself; bad@one.test; x@dead.test.
    assert want == {"sent": 4, "deferred": 1, "bounced": 1}, s.tail()
    opened = {h: logged("session.open", mx=h)
              for h in ("mx1.test", "mx2.test")}
    assert all(n >= 1 for n in opened.values()), opened

    def settled():
        fams = latest(receiver)
        return fams if fams and deliveries(fams) == want and \
            value(fams, "sender_queue_messages") == 1 and \
            value(fams, "sender_sessions_active") == 0 and \
            all(sessions_opened(fams).get(h) == n
                for h, n in opened.items()) else None

    fams = wait_for(settled, WAIT, lambda: f"a push with {want}, "
                    f"sessions {opened}; last: {receiver.of('PUT')[-1:]}")
    # One series per MX host tried; the dead one never opened a session.
    assert set(sessions_opened(fams)) == {"mx1.test", "mx2.test",
                                          "deadmx.test"}
    assert sessions_opened(fams)["deadmx.test"] == 0
    # Every query the DNS server saw came from this sender (each lookup
    # once: no retries on loopback), and none failed.
    assert value(fams, "sender_dns_lookups_total") == \
        dns_queries(dns) - queries_before
    assert value(fams, "sender_dns_failures_total") == 0
    assert value(fams, "sender_log_lines_dropped_total") == 0
    assert {n: f["type"] for n, f in fams.items()} == FAMILIES

    version = s.wait_log("sender.start")["version"]
    puts = receiver.of("PUT")
    for _, path, headers, body, _ in puts:
        # "out/1" has a slash: the Pushgateway's base64url form.
        assert path == "/gw" + group_path("out/1")
        assert headers["Content-Type"] == \
            "text/plain; version=0.0.4; charset=utf-8"
        assert headers["User-Agent"] == f"mta-sender/{version}"
    ups = [value(f, "sender_uptime_seconds") for f in pushes(receiver)]
    assert ups == sorted(ups) and ups[-1] > 0, ups

    wait_for(lambda: len(receiver.of("GET")) >= 2, WAIT, "two pings")
    assert {r[1] for r in receiver.of("GET")} == {"/ping/sender"}
    assert len(s.find_logs("metrics.push_ok")) == 1
    assert len(s.find_logs("health.ping_ok")) == 1
    assert s.find_logs("metrics.push_failing") == []
    assert s.find_logs("health.ping_failing") == []


def test_hung_push_does_not_delay_mail(sender, mx, receiver):
    """Pushes hang (each times out after 3/4 of the 5 s interval): mail
    dropped while the first one hangs is delivered before it times out,
    two failed pushes make one metrics.push_failing line, and one
    metrics.push_ok follows once the receiver answers again."""
    sink = mx.sink("mx1.test")
    receiver.hang.set()
    s = sender(metrics=metrics_config(receiver, interval="5s",
                                      instance="out1"))
    assert receiver.hung.wait(WAIT), "no push reached the receiver"
    qids = [s.drop([f"u{i}@one.test"]) for i in range(3)]
    for q in qids:
        s.wait_log("msg.done", timeout=WAIT, queue_id=q)
    assert receiver.hung.is_set() and not receiver.hung_closed, \
        "the push was given up before the mail was delivered"
    assert len(sink.snapshot()) == 3
    events = [e["event"] for e in s.logs()]
    assert "metrics.push_failing" not in events

    failing = s.wait_log("metrics.push_failing", timeout=WAIT)
    assert "timed out" in failing["reason"], failing
    assert failing["url"] == receiver.url("/gw" + group_path("out1"))
    # The next round hangs too: still failing, not logged again.
    wait_for(lambda: len(receiver.hung_closed) >= 2, WAIT,
             "the second hung push to be given up")
    receiver.hang.clear()
    ok = s.wait_log("metrics.push_ok", timeout=WAIT)
    assert ok["failures"] == 2, ok
    assert len(s.find_logs("metrics.push_failing")) == 1
    assert len(receiver.of("PUT")) == 3  # never two at once, no retries
    fams = latest(receiver)
    assert deliveries(fams) == {"sent": 3, "deferred": 0, "bounced": 0}


def test_push_host_name_is_resolved_by_the_senders_dns(sender, dns):
    """push.test exists only in the test DNS server (dns.servers), so a
    push that arrives proves the sender looked it up itself; libcurl is
    handed the address and still names the host in the request."""
    r = Receiver(host=HOSTS["push.test"])
    try:
        base = r.url(host="push.test")
        s = sender(metrics={"push_url": base + "/gw", "interval": "1s",
                            "job": JOB, "instance": "out1"},
                   health={"ping_url": base + "/ping"})
        wait_for(lambda: len(r.of("PUT")) >= 2 and r.of("GET"), WAIT,
                 "two pushes and a ping to push.test")
        hosts = {req[2]["Host"] for req in r.of("PUT") + r.of("GET")}
        assert hosts == {f"push.test:{r.port}"}, hosts
        assert {p[1] for p in r.of("PUT")} == {"/gw" + group_path("out1")}
        parse_prom(r.of("PUT")[-1][3].decode("utf-8"))
        assert dns.queries("push.test", "A") >= 1
        ok = s.wait_log("metrics.push_ok")
        assert ok["url"] == base + "/gw" + group_path("out1")
        assert s.find_logs("metrics.push_failing") == []
        assert s.find_logs("health.ping_failing") == []
    finally:
        r.stop()
