"""bench/smtp_tls_source.c, the load client of bench/smtpd_tls.py, against
smtpd: it must deliver exactly what it reports, fail loudly on a reply it
did not expect and never connect outside 127.0.0.0/8. Its binary is
looked for next to smtpd, then in build/ (the static build has none)."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, smtpd_bin
from mailstore import all_stored, wait_until
from test_starttls import pki, tls_server  # noqa: F401 (fixture)

EX_USAGE = 64
LOOPBACK_RELAY = {"networks": ["127.0.0.0/8"]}


def client_bin():
    for d in (Path(smtpd_bin()).parent, REPO / "build"):
        p = d / "smtp-tls-source"
        if p.is_file():
            return str(p)
    pytest.fail("smtp-tls-source not found next to smtpd or in build/ "
                "(cmake --build BUILD --target smtp-tls-source)")


def run_client(*args, timeout=60):
    return subprocess.run([client_bin(), *args], capture_output=True,
                          text=True, timeout=timeout)


def assert_sessions(srv, conns, per_conn, tls):
    """The client's conns connections carried per_conn messages each and
    tls of them had a handshake. The start-up probe of the fixture is a
    connection with no message. smtpd's logger thread writes the lines:
    wait for the closes first."""
    wait_until(lambda: len(srv.find_logs("conn.close")) >= conns + 1,
               what=f"{conns + 1} conn.close lines")
    closes = srv.find_logs("conn.close")
    assert sorted(c["msgs"] for c in closes) == [0] + [per_conn] * conns
    assert len(srv.find_logs("tls.established")) == tls


def fields(stdout):
    return dict(f.split("=", 1) for f in stdout.split() if "=" in f)


@pytest.mark.parametrize("flags,proto", [
    ([], "ESMTP"),
    (["-P"], "ESMTP"),
    (["-T"], "ESMTPS"),
    (["-T", "-P"], "ESMTPS"),
])
def test_reused_sessions_deliver_what_they_report(smtpd, pki, flags, proto):
    srv = tls_server(smtpd, pki, relay=LOOPBACK_RELAY)
    r = run_client("-s", "3", "-m", "12", "-r", "4", "-l", "300", *flags,
                   f"127.0.0.1:{srv.port}")
    assert r.returncode == 0, r.stderr
    assert fields(r.stdout)["messages"] == "12"
    stored = all_stored(srv.maildir)
    assert len(stored) == 12
    for st in stored:
        assert st.rcpts == ["rcpt@example.com"]
        assert f" with {proto} id " in st.received_unfolded
        # The body is exactly -l bytes: headers, blank line, 300 bytes.
        body = st.message.split(b"\n\n", 1)[1]
        assert len(body.replace(b"\n", b"\r\n")) == 300
    assert_sessions(srv, 3, 4, 3 if "-T" in flags else 0)


def test_new_session_per_message(smtpd, pki):
    srv = tls_server(smtpd, pki, relay=LOOPBACK_RELAY)
    r = run_client("-s", "2", "-m", "6", "-T", f"127.0.0.1:{srv.port}")
    assert r.returncode == 0, r.stderr
    assert fields(r.stdout)["messages"] == "6"
    assert len(all_stored(srv.maildir)) == 6
    assert_sessions(srv, 6, 1, 6)


def test_unexpected_reply_fails_the_run(smtpd, pki):
    # No relay for loopback: RCPT TO:<rcpt@example.com> is refused.
    srv = tls_server(smtpd, pki, relay={"networks": ["10.255.255.0/24"],
                                        "domains": ["ours.test"]})
    r = run_client("-s", "2", "-m", "4", "-r", "2", "-P",
                   f"127.0.0.1:{srv.port}")
    assert r.returncode == 1
    assert "expected 250, got \"5" in r.stderr, r.stderr
    assert fields(r.stdout)["messages"] == "0"
    assert all_stored(srv.maildir) == []


@pytest.mark.parametrize("target", ["10.0.0.1:25", "localhost:25",
                                    "127.0.0.1:0", "127.0.0.1"])
def test_refuses_anything_but_loopback(target):
    r = run_client(target, timeout=10)
    assert r.returncode == EX_USAGE
    assert r.stdout == ""
    assert "smtp-tls-source" in r.stderr
