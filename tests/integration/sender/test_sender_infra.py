"""The test infrastructure checked on its own (no sender binary needed):
the DNS zone answers as the sender tests assume, and the sinks record
what clients really did (smtplib as a lock-step client, a raw socket as
a pipelining one)."""

import smtplib
import socket
import threading
import time

import pytest

from . import minidns
from .sinks import Sink, wait_for, wire_form
from .testzone import HOSTS

BODY = (b"Subject: infra\n\n.starts with a dot\n..two dots\n.\n"
        b"\nlast line\n")
CRLF_BODY = BODY.replace(b"\n", b"\r\n")   # smtplib sends bytes as is


def q(dns, name, qtype):
    return minidns.query("127.0.0.1", dns.port, name, qtype)


@pytest.mark.parametrize("name,qtype,want", [
    ("one.test", "MX", (0, [("MX", 10, "mx1.test")])),
    ("shared-a.test", "MX", (0, [("MX", 10, "mx4.test")])),
    ("shared-b.test", "MX", (0, [("MX", 10, "mx4.test")])),
    ("mx1.test", "A", (0, [("A", "127.0.0.2")])),
    ("mx1.test", "AAAA", (0, [])),
    ("deadmx.test", "A", (0, [("A", "127.0.0.30")])),
    ("implicit.test", "MX", (0, [])),                  # NODATA
    ("implicit.test", "A", (0, [("A", "127.0.0.10")])),
    ("null.test", "MX", (0, [("MX", 0, "")])),          # RFC 7505
    ("nx.test", "MX", (minidns.NXDOMAIN, [])),
    ("nx.test", "A", (minidns.NXDOMAIN, [])),
])
def test_dns_zone(dns, name, qtype, want):
    assert q(dns, name, qtype) == want


def test_dns_backup_has_two_preferences(dns):
    rcode, ans = q(dns, "backup.test", "MX")
    assert rcode == 0
    assert sorted(ans) == [("MX", 10, "deadmx.test"), ("MX", 20, "mx5.test")]


def test_sink_lockstep_client_recorded_exactly(mx):
    s = mx.sink("mx1.test")
    with smtplib.SMTP(HOSTS["mx1.test"], mx.port, timeout=5) as c:
        c.sendmail("a@x.test", ["b@one.test", "c@one.test"], CRLF_BODY)
    (m,) = s.wait_messages(1)
    assert (m.mail_from, m.rcpts) == ("a@x.test", ["b@one.test",
                                                   "c@one.test"])
    assert m.data == wire_form(BODY)
    assert b"\r\n..starts with a dot\r\n" in m.wire
    conn = s.conns[0]
    assert conn.helo[0] == "EHLO"
    assert not [c for c in conn.commands if c.pipelined], conn.commands
    assert "PIPELINING" in conn.advertised


def test_sink_detects_pipelining(mx):
    s = mx.sink("mx1.test")
    with socket.create_connection((HOSTS["mx1.test"], mx.port), 5) as c, \
            c.makefile("rb") as f:
        f.readline()
        c.sendall(b"EHLO me.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        c.sendall(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@one.test>\r\n"
                  b"RCPT TO:<c@one.test>\r\nDATA\r\n")
        for _ in range(4):
            f.readline()
        c.sendall(b"hello\r\n.\r\nQUIT\r\n")
        f.readline()
        f.readline()
    s.wait_messages(1)
    conn = s.conns[0]
    group = [c for c in conn.commands if c.verb in ("MAIL", "RCPT", "DATA")]
    assert len({c.chunk for c in group}) == 1, group
    assert [c.pipelined for c in group] == [False, True, True, True]
    s.wait_idle()
    assert s.violations == []


def test_sink_flags_pipelining_not_offered():
    s = Sink("127.0.0.1", 0, pipelining=False)
    s.port = 0
    s.start()
    port = s._lsock.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as c, \
                c.makefile("rb") as f:
            f.readline()
            c.sendall(b"EHLO me.test\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            c.sendall(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@one.test>\r\n")
            f.readline()
            f.readline()
            c.sendall(b"QUIT\r\n")
            f.readline()
        wait_for(lambda: s.violations, 5, "a violation")
        assert "without PIPELINING" in s.violations[0]
    finally:
        s.stop()


def test_sink_refuses_ehlo_smtplib_falls_back(mx):
    s = mx.sink("mx2.test", ehlo=False)
    with smtplib.SMTP(HOSTS["mx2.test"], mx.port, timeout=5) as c:
        c.sendmail("a@x.test", ["b@two.test"], CRLF_BODY)
    s.wait_messages(1)
    assert [c.verb for c in s.conns[0].commands][:2] == ["EHLO", "HELO"]
    assert s.conns[0].helo[0] == "HELO"


def test_sink_rejects_listed_recipient(mx):
    s = mx.sink("mx1.test", reject_rcpts=["nobody@one.test"])
    with smtplib.SMTP(HOSTS["mx1.test"], mx.port, timeout=5) as c:
        refused = c.sendmail("a@x.test", ["b@one.test", "nobody@one.test"],
                             CRLF_BODY)
    assert refused == {"nobody@one.test": (550, b"5.1.1 <nobody@one.test>: "
                                                b"no such user")}
    assert s.wait_messages(1)[0].rcpts == ["b@one.test"]


def test_sink_421_after_n_messages(mx):
    s = mx.sink("mx1.test", max_msgs_per_conn=2)
    with smtplib.SMTP(HOSTS["mx1.test"], mx.port, timeout=5) as c:
        c.sendmail("a@x.test", ["b@one.test"], CRLF_BODY)
        c.sendmail("a@x.test", ["b@one.test"], CRLF_BODY)
        with pytest.raises((smtplib.SMTPSenderRefused,
                            smtplib.SMTPServerDisconnected)) as ei:
            c.sendmail("a@x.test", ["b@one.test"], CRLF_BODY)
        if isinstance(ei.value, smtplib.SMTPSenderRefused):
            assert ei.value.smtp_code == 421
    assert len(s.snapshot()) == 2
    s.wait_idle()


def test_sink_reply_delay_and_concurrency_count(mx):
    s = mx.sink("mx1.test", reply_delay=0.3)
    t0 = time.monotonic()
    socks = []
    for _ in range(2):
        c = socket.create_connection((HOSTS["mx1.test"], mx.port), 5)
        socks.append(c)
    for c in socks:
        assert c.recv(100).startswith(b"220 ")
        c.close()
    assert time.monotonic() - t0 >= 0.3
    wait_for(lambda: s.max_active == 2, 5, "two connections counted")
    s.wait_idle()
    s.max_active = 1   # this test opened two on purpose


def test_aiosmtpd_sink(mx):
    s = mx.sink("mx3.test", aiosmtpd=True)
    with smtplib.SMTP(HOSTS["mx3.test"], mx.port, timeout=5) as c:
        c.sendmail("a@x.test", ["b@three.test"], CRLF_BODY)
    (m,) = s.wait_messages(1)
    assert (m.mail_from, m.rcpts) == ("a@x.test", ["b@three.test"])
    assert m.data == wire_form(BODY)
    assert s.connections == 1


def test_concurrent_clients_each_get_their_session(mx):
    s = mx.sink("mx1.test")
    errs = []

    def send():
        try:
            with smtplib.SMTP(HOSTS["mx1.test"], mx.port, timeout=5) as c:
                c.sendmail("a@x.test", ["b@one.test"], CRLF_BODY)
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=send) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errs == []
    assert len(s.wait_messages(3)) == 3
    s.wait_idle()
    s.max_active = 1
