"""Both programs under valgrind's memcheck through a TLS session each:
smtpd taking mail over STARTTLS + AUTH and implicit TLS, sender
delivering over verified TLS and keeping a deferred message. Each must
stop on SIGTERM with exit code 0, no memory error and nothing definitely
or indirectly lost (valgrind's exit code 99 and its log say otherwise).

Runs against the normal build; skipped for sanitizer builds and static
binaries (see unfit()) and when valgrind is not installed
(scripts/install-deps.sh installs it)."""

import re
import shutil
import smtplib
import ssl
import struct
from pathlib import Path

import pytest

from .conftest import free_port, sender_bin, sha512_crypt, smtpd_bin
from .checks import final_status
from .testzone import HOSTS

VALGRIND_RC = 99
STARTUP = 60.0  # OpenSSL's start-up is slow under valgrind


def unfit(path):
    """Why valgrind cannot check this binary, or None: AddressSanitizer
    builds do not run under it, and in a static binary it cannot replace
    malloc, so leaks would go unseen."""
    data = Path(path).read_bytes()
    if b"__asan_init" in data:
        return "sanitizer build"
    if not has_interpreter(data):
        return "static binary"
    return None


def has_interpreter(elf):
    """True when the ELF64 file has a PT_INTERP program header, i.e. is
    dynamically linked."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3
               for i in range(phnum))


def valgrind(log):
    if not shutil.which("valgrind"):
        pytest.skip("valgrind not installed (scripts/install-deps.sh)")
    return ["valgrind", "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            f"--error-exitcode={VALGRIND_RC}", f"--log-file={log}"]


def check_clean(log):
    text = Path(log).read_text()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    assert summary, text[-3000:]
    assert summary.group(1) == "0", text[-6000:]
    for kind in ("definitely", "indirectly"):
        lost = re.search(kind + r" lost: ([\d,]+) bytes", text)
        assert lost is None or lost.group(1) == "0", text[-6000:]


def client_ctx(pki):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False  # the test names hosts by address
    return ctx


def test_smtpd_under_valgrind(smtpd, pki, tmp_path):
    if unfit(smtpd_bin()):
        pytest.skip(unfit(smtpd_bin()))
    log = tmp_path / "valgrind-smtpd.log"
    users = tmp_path / "users"
    users.write_text(f"alice:{sha512_crypt('s3cret')}\n")
    mx_port, sub, imp = free_port(), free_port(), free_port()
    d = smtpd(start=False, auth={"users_file": str(users),
                                 "failure_delay": "100ms"},
              tls={"cert": str(pki / "mx2.test.pem"),
                   "key": str(pki / "mx2.test.key")},
              relay={"domains": ["ours.test"]},
              listen=[f"127.0.0.1:{mx_port}",
                      {"address": f"127.0.0.1:{sub}", "role": "submission"},
                      {"address": f"127.0.0.1:{imp}", "role": "submission",
                       "tls": "implicit"}])
    d.wrapper = valgrind(log)
    d.start(ready_timeout=STARTUP)

    ctx = client_ctx(pki)
    with smtplib.SMTP("127.0.0.1", sub, timeout=30) as c:
        c.starttls(context=ctx)
        c.login("alice", "s3cret")
        c.sendmail("alice@ours.test", ["far@away.test"],
                   b"Subject: one\r\n\r\nover STARTTLS\r\n")
    with smtplib.SMTP_SSL("127.0.0.1", imp, context=ctx, timeout=30) as c:
        c.login("alice", "s3cret")
        c.sendmail("alice@ours.test", ["far@away.test"],
                   b"Subject: two\r\n\r\nover implicit TLS\r\n")
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as c:
        c.starttls(context=ctx)
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login("alice", "wrong")
        assert e.value.smtp_code == 535
    assert len(d.find_logs("msg.accepted")) == 2
    assert d.find_logs("auth.failed")  # smtplib tries PLAIN, then LOGIN

    assert d.stop(timeout=60) == 0
    check_clean(log)


def test_sender_under_valgrind(sender, mx, pki, smtpd,
                               tmp_path):
    if unfit(sender_bin()):
        pytest.skip(unfit(sender_bin()))
    log = tmp_path / "valgrind-sender.log"
    mx_dir = tmp_path / "mx-maildir"
    smtpd(maildir=mx_dir, listen=[f"{HOSTS['mx2.test']}:{mx.port}"],
          tls={"cert": str(pki / "mx2.test.pem"),
               "key": str(pki / "mx2.test.key")},
          relay={"domains": ["two.test"]})
    # one.test's MX (mx1.test) has no server: its mail is deferred and
    # still queued when sender stops.
    s = sender(start=False, retry={"min_backoff": "1h"},
               tls={"mode": "verify", "ca_file": str(pki / "ca.pem")})
    s.drop(["b@two.test"])
    s.drop(["a@one.test"])
    s.wrapper = valgrind(log)
    s.start(timeout=STARTUP)
    s.wait_log("msg.done", timeout=STARTUP)
    s.wait_log("msg.waiting", timeout=STARTUP)
    line = s.wait_log("session.open", mx="mx2.test")
    assert line["tls"] is True and line["tls_verified"] is True, line
    assert final_status(s)["b@two.test"] == "sent"
    assert len(list((mx_dir / "new").iterdir())) == 1

    assert s.stop(timeout=60) == 0
    check_clean(log)
    assert len(s.spool_files()) == 1  # the deferred one, kept
