"""Metrics push and health ping: smtpd PUTs Prometheus text to a local
HTTP receiver (Pushgateway API) and GETs the ping URL every
metrics.interval. The body must parse strictly as the text exposition
format and its counters must match the traffic the test sent; a push
endpoint that never answers must not delay mail, is logged once when it
starts failing and once when it works again, and does not hold up
shutdown."""

import os
import signal
import smtplib
import time

import pytest

from conftest import run_cli, to_yaml
from mailstore import wait_until
from promtext import parse_prom, value
from smtp_wire import make_message

INTERVAL = "1s"
WAIT = 15.0  # seconds for anything that needs a push round or two


def test_parser_is_strict():
    good = ('# HELP a_total Text with \\\\ and \\n.\n# TYPE a_total counter\n'
            'a_total{x="q\\"uote",y="z"} 3\n'
            '# HELP g G.\n# TYPE g gauge\ng -Inf\n')
    fams = parse_prom(good)
    assert fams["a_total"]["help"] == "Text with \\ and \n."
    assert value(fams, "a_total", x='q"uote', y="z") == 3
    bad = [
        good[:-1],                                      # no final LF
        "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n",  # split
        "# HELP a x\n# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
        "# HELP a x\n# TYPE a counter\na -1\n",
        "# HELP a x\n# TYPE a counter\nb 1\n",
        "# HELP a x\n# TYPE a counter\na{x=1} 1\n",
        "# HELP a x\n# TYPE a counter\na one\n",
        "# HELP a x\n# TYPE a counter\na{x=\"\\t\"} 1\n",
        "# HELP a x\n# TYPE a counter\n# TYPE a gauge\na 1\n",
        "# a comment\n",
        "# HELP a x\na 1\n",                            # no TYPE
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_prom(text)


def metrics_config(receiver, **over):
    cfg = {"push_url": receiver.url("/gw/"), "interval": INTERVAL,
           "job": "smtpd-test", "instance": "mx/1"}
    cfg.update(over)
    return cfg


# -- tests ----------------------------------------------------------------------
def smtplib_send(srv, msg, rcpt="bob@ours.test"):
    with smtplib.SMTP(srv.host, srv.port, local_hostname="client.test",
                      timeout=30) as c:
        c.ehlo("client.test")
        assert c.mail("alice@client.test")[0] == 250
        assert c.rcpt(rcpt)[0] == 250
        code, resp = c.data(msg)
        c.quit()
    return code, resp


def latest_metrics(receiver):
    puts = receiver.of("PUT")
    return parse_prom(puts[-1][3].decode("utf-8")) if puts else None


def test_counters_match_traffic(smtpd, receiver):
    srv = smtpd(max_message_size="1k",
                relay={"networks": ["10.0.0.0/8"],
                       "domains": ["ours.test"]},
                metrics=metrics_config(receiver),
                health={"ping_url": receiver.url("/ping/smtpd")})
    # Connection 1: two accepted messages of known sizes in one session.
    msgs = [make_message("one", ["first body"]),
            make_message("two", ["second", ".dotted line", "x" * 300])]
    with smtplib.SMTP(srv.host, srv.port, local_hostname="client.test",
                      timeout=30) as c:
        for m in msgs:
            c.ehlo("client.test")
            assert c.mail("alice@client.test")[0] == 250
            assert c.rcpt("bob@ours.test")[0] == 250
            assert c.data(m)[0] == 250
        c.quit()
    sizes = [len(m.replace(b"\r\n", b"\n")) for m in msgs]
    # Connection 2: one message over max_message_size: rejected at its end.
    code, _ = smtplib_send(srv, make_message("big", ["y" * 70] * 30))
    assert code == 552
    # Connection 3: a recipient the relay policy refuses.
    with smtplib.SMTP(srv.host, srv.port, local_hostname="client.test",
                      timeout=30) as c:
        c.ehlo("client.test")
        assert c.mail("alice@client.test")[0] == 250
        assert c.rcpt("carol@elsewhere.test")[0] == 554
        c.quit()
    srv.wait_log("conn.close", conn=4)
    logged = [e["size"] for e in srv.find_logs("msg.accepted")]
    assert logged == sizes

    want = {  # 4 connections: the fixture's readiness probe and ours
        "smtpd_connections_total": 4,
        "smtpd_connections_refused_total": 0,
        "smtpd_connections_active": 0,
        "smtpd_messages_accepted_total": 2,
        "smtpd_messages_rejected_total": 1,
        "smtpd_recipients_rejected_total": 1,
        "smtpd_received_bytes_total": sum(sizes),
        "smtpd_log_lines_dropped_total": 0,
    }

    def pushed_counts():
        fams = latest_metrics(receiver)
        return fams and all(value(fams, k) == v for k, v in want.items())

    wait_until(pushed_counts, WAIT, what=f"a push with {want}; last: "
               f"{receiver.of('PUT')[-1:]}")
    fams = latest_metrics(receiver)
    for name, fam in fams.items():
        assert fam["type"] == ("counter" if name.endswith("_total")
                               else "gauge"), name
    assert value(fams, "smtpd_build_info", version="0.1.0") == 1
    assert sorted(fams) == sorted(list(want) + ["smtpd_uptime_seconds",
                                                "smtpd_build_info"])

    puts = receiver.of("PUT")
    for method, path, headers, body, _ in puts:
        # "mx/1" has a slash: the Pushgateway's base64url form.
        assert path == "/gw/metrics/job/smtpd-test/instance@base64/bXgvMQ=="
        assert headers["Content-Type"] == \
            "text/plain; version=0.0.4; charset=utf-8"
        parse_prom(body.decode("utf-8"))
    ups = [value(parse_prom(p[3].decode()), "smtpd_uptime_seconds")
           for p in puts]
    assert ups == sorted(ups) and ups[-1] > 0

    wait_until(lambda: len(receiver.of("GET")) >= 2, WAIT,
               what="two pings")
    assert {r[1] for r in receiver.of("GET")} == {"/ping/smtpd"}
    assert len(srv.find_logs("metrics.push_ok")) == 1
    assert len(srv.find_logs("health.ping_ok")) == 1
    assert srv.find_logs("metrics.push_failing") == []
    assert srv.find_logs("health.ping_failing") == []


def test_hung_push_does_not_delay_mail(smtpd, receiver):
    """The first push hangs (timeout 7.5 s at a 10 s interval): mail goes
    through while it hangs, one failing line follows its timeout, and one
    ok line once the receiver answers again."""
    receiver.hang.set()
    srv = smtpd(metrics=metrics_config(receiver, interval="10s",
                                       instance="mx1"))
    assert receiver.hung.wait(WAIT), "no push reached the receiver"
    done = []
    for i in range(3):
        code, _ = smtplib_send(srv, make_message(f"during hang {i}"))
        assert code == 250
        done.append(time.monotonic())
    wait_until(lambda: receiver.hung_closed, WAIT,
               what="the hung push to be given up")
    # Every message was acknowledged while the push still hung.
    assert max(done) < receiver.hung_closed[0], (done,
                                                 receiver.hung_closed)
    failing = srv.wait_log("metrics.push_failing", timeout=WAIT)
    assert "timed out" in failing["reason"], failing
    assert failing["url"] == receiver.url(
        "/gw/metrics/job/smtpd-test/instance/mx1")

    receiver.hang.clear()
    ok = srv.wait_log("metrics.push_ok", timeout=WAIT)
    assert ok["failures"] == 1
    assert len(srv.find_logs("metrics.push_failing")) == 1
    assert len(receiver.of("PUT")) == 2  # never two at once, no retries
    fams = latest_metrics(receiver)
    assert value(fams, "smtpd_messages_accepted_total") == 3


def test_sigterm_does_not_wait_for_hung_push(smtpd, receiver):
    receiver.hang.set()
    srv = smtpd(metrics=metrics_config(receiver, interval="1h"))
    assert receiver.hung.wait(WAIT), "no push reached the receiver"
    t0 = time.monotonic()
    assert srv.stop(signal.SIGTERM, timeout=30) == 0
    # The request's own timeout is 10 s; stopping must not wait for it.
    assert time.monotonic() - t0 < 5.0
    wait_until(lambda: receiver.hung_closed, WAIT,
               what="the hung connection to close")
    srv.wait_log("smtpd.stop")
    assert srv.find_logs("metrics.push_failing") == []


@pytest.mark.parametrize("metrics,health,message", [
    ({"push_url": "ftp://127.0.0.1/"}, {},
     "metrics.push_url: must start with http:// or https://"),
    ({"push_url": "http://127.0.0.1:9091/?x=1"}, {},
     "metrics.push_url: must not have a query (?) or fragment (#)"),
    ({}, {"ping_url": "127.0.0.1:80"}, "health.ping_url: not a URL"),
    ({"interval": "500ms"}, {}, "metrics.interval"),
    ({"job": ""}, {}, "metrics.job: must not be empty"),
    ({"instance": ""}, {}, "metrics.instance: must not be empty"),
])
def test_bad_metrics_config(tmp_path, metrics, health, message):
    cfg = tmp_path / "smtpd.yaml"
    sections = {k: v for k, v in (("metrics", metrics), ("health", health))
                if v}
    cfg.write_text(to_yaml(sections) + "\n")
    r = run_cli(["-c", str(cfg), "--check-config"])
    assert r.returncode == 78, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr


def test_push_host_name_resolved_without_a_thread(smtpd, receiver):
    """A host name is looked up through smtpd's own c-ares channel on the
    loop (here from /etc/hosts) and handed to libcurl, which never starts
    a resolver thread of its own."""
    srv = smtpd(metrics=metrics_config(receiver,
                                       push_url=receiver.url("/gw",
                                                             "localhost")),
                health={"ping_url": receiver.url("/ping", "localhost")})
    wait_until(lambda: receiver.of("PUT") and receiver.of("GET"), WAIT,
               what="a push and a ping to localhost")
    port = receiver.port
    for method in ("PUT", "GET"):
        headers = receiver.of(method)[0][2]
        assert headers.get("Host") == f"localhost:{port}", headers
    assert parse_prom(receiver.of("PUT")[0][3].decode("utf-8"))
    assert srv.find_logs("metrics.push_failing") == []
    threads = len(os.listdir(f"/proc/{srv.proc.pid}/task"))
    assert threads == 2, f"{threads} threads: worker and logger only"
