"""Recipients that cannot be delivered: null MX and NXDOMAIN bounce,
SMTPUTF8 to a server without it bounces with 5.6.7, a dead DNS server
defers (and the file stays in the spool)."""

from .checks import bare, outcomes, relay
from .minidns import free_udp_tcp_port
from .sinks import wait_for


def test_null_mx_bounces_nothing_sent(sender, mx):
    ok = mx.sink("mx1.test")
    s = sender(start=False)
    qid = s.drop(["u@null.test", "v@one.test"])
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    (b,) = outcomes(s)["u@null.test"]
    assert (b["event"], b["status"]) == ("delivery.bounced", "bounced")
    assert b["dsn"] == "5.1.10", b        # RFC 7505 section 4.1
    assert b["relay"] == "none", b
    assert b["queue_id"] == qid
    (m,) = ok.wait_messages(1)
    assert m.rcpts == ["v@one.test"]
    assert (done["sent"], done["bounced"]) == (1, 1)
    assert s.cur_files() == [f"{qid}.test:2,PT"]


def test_null_mx_only_recipient(sender, mx):
    s = sender(start=False)
    qid = s.drop(["u@null.test"])
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    assert (done["sent"], done["bounced"]) == (0, 1)
    assert [e["event"] for e in outcomes(s)["u@null.test"]] == [
        "delivery.bounced"]
    assert not s.find_logs("session.open")
    assert s.cur_files() == [f"{qid}.test:2,PT"]


def test_nxdomain_bounces(sender, mx):
    s = sender(start=False)
    qid = s.drop(["u@nx.test"])
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    (b,) = outcomes(s)["u@nx.test"]
    assert (b["event"], b["status"], b["relay"]) == (
        "delivery.bounced", "bounced", "none")
    assert b["dsn"] == "5.1.2", b         # contract: NXDOMAIN -> 5.1.2
    assert (done["sent"], done["bounced"]) == (0, 1)
    assert not s.find_logs("session.open")


def test_dns_server_down_defers(sender, mx):
    dead = f"127.0.0.1:{free_udp_tcp_port()}"
    s = sender(start=False, dns={"servers": [dead]})
    qid = s.drop(["u@one.test"])
    name = f"{qid}.test"
    s.start()
    d = s.wait_log("delivery.deferred", timeout=40, queue_id=qid)
    assert (d["status"], d["dsn"], d["relay"]) == ("deferred", "4.4.3",
                                                   "none"), d
    assert bare(d["to"]) == "u@one.test"
    s.wait_log("dns.fail", domain="one.test")
    # Deferred: the file stays claimed in the instance folder.
    assert s.spool_files() == [name]
    assert s.new_files() == [] and s.cur_files() == []
    assert not s.find_logs("msg.done")


def test_smtputf8_needs_server_support(sender, mx):
    plain = mx.sink("mx1.test", smtputf8=False)
    utf8 = mx.sink("mx2.test", smtputf8=True)
    s = sender(start=False)
    msg = ("From: J\u00f6ran <j\u00f6ran@example.org>\n"
           "Subject: gr\u00fc\u00dfe\n\n\u00e7a va\n").encode("utf-8")
    qid = s.drop(["b@one.test", "c@two.test"], msg,
                 mail_from="j\u00f6ran@example.org",
                 params=["BODY=8BITMIME", "SMTPUTF8"])
    s.start()
    done = s.wait_log("msg.done", queue_id=qid)
    (b,) = outcomes(s)["b@one.test"]
    assert (b["event"], b["dsn"]) == ("delivery.bounced", "5.6.7"), b
    (m,) = utf8.wait_messages(1)
    assert m.mail_from == "j\u00f6ran@example.org"
    assert "SMTPUTF8" in m.params and m.rcpts == ["c@two.test"]
    assert m.data.endswith(msg.replace(b"\n", b"\r\n"))
    (c,) = outcomes(s)["c@two.test"]
    assert c["status"] == "sent" and c["relay"] == relay("mx2.test",
                                                         mx.port)
    # Nothing was sent to the server without SMTPUTF8.
    assert plain.snapshot() == []
    assert not [c for conn in plain.conns for c in conn.commands
                if c.verb in ("MAIL", "RCPT", "DATA")]
    assert (done["sent"], done["bounced"]) == (1, 1)


def test_rcpt_4xx_defers_that_recipient_only(sender, mx):
    sink = mx.sink("mx1.test", defer_rcpts=["later@one.test"])
    s = sender(start=False)
    qid = s.drop(["a@one.test", "later@one.test"])
    s.start()
    d = s.wait_log("delivery.deferred", queue_id=qid)
    assert bare(d["to"]) == "later@one.test"
    assert (d["status"], d["dsn"]) == ("deferred", "4.2.1"), d
    assert "mailbox busy" in d["reply"]
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["a@one.test"]
    s.wait_log("delivery.sent", queue_id=qid)
    # Not final: the file stays claimed, no msg.done, nothing in cur/.
    sink.wait_idle()
    assert s.spool_files() == [f"{qid}.test"]
    assert s.cur_files() == [] and not s.find_logs("msg.done")


def test_all_mx_refuse_connections_defers(sender, mx):
    s = sender(start=False)
    qid = s.drop(["u@dead.test"])
    s.start()
    d = s.wait_log("delivery.deferred", queue_id=qid)
    assert bare(d["to"]) == "u@dead.test"
    assert d["dsn"].startswith("4.4."), d
    assert s.spool_files() == [f"{qid}.test"]
    assert not s.find_logs("msg.done")


def test_backup_mx_serves_only_its_own_domain(sender, mx):
    """backup.test (MX deadmx.test, mx5.test) and dead.test (MX
    deadmx.test only) share their most preferred host. mx5.test is not an
    MX of dead.test: mail for dead.test must never be handed to it
    (RFC 5321 5.1: only the domain's MX hosts)."""
    backup = mx.sink("mx5.test")
    s = sender(start=False)
    q_backup = s.drop(["u@backup.test"])
    q_dead = s.drop(["v@dead.test"])
    s.start()
    # Whichever domain is resolved first, each must get its own MX list.
    wait_for(lambda: len(outcomes(s)) == 2, 10, "an outcome for both")
    st = {k: [e["event"] for e in v] for k, v in outcomes(s).items()}
    tried = [c.line for conn in backup.conns for c in conn.commands
             if c.verb == "RCPT"]
    assert "RCPT TO:<v@dead.test>" not in tried, (
        f"mail for dead.test handed to mx5.test: {st}")
    assert st == {"u@backup.test": ["delivery.sent"],
                  "v@dead.test": ["delivery.deferred"]}, st
    assert [r for m in backup.snapshot() for r in m.rcpts] == [
        "u@backup.test"]
    s.wait_log("msg.done", queue_id=q_backup)
    assert not s.find_logs("msg.done", queue_id=q_dead)
