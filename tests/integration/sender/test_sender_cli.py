"""The command line: --version, --help, --check-config, exit codes
(0 ok, 64 usage, 78 configuration), the FQDN warning."""

import os
import re
import shutil
import subprocess

import pytest

from .conftest import sender_bin
from .sinks import wait_for

# The "sender" fixture is used for its config writer (and for the
# binary-present check).


def run(*args, timeout=15):
    return subprocess.run([sender_bin(), *args], capture_output=True,
                          text=True, timeout=timeout)


def test_version_and_help(sender):
    v = run("--version")
    assert v.returncode == 0 and re.search(r"\d+\.\d+", v.stdout), v
    h = run("--help")
    assert h.returncode == 0, h
    assert "-c" in h.stdout and "--check-config" in h.stdout, h.stdout


def test_usage_errors_exit_64(sender):
    for args in (["--no-such-option"], ["-c"], ["extra", "words"]):
        r = run(*args)
        assert r.returncode == 64, (args, r)


def test_check_config(sender):
    s = sender(start=False)
    ok = run("-c", str(s.config_path), "--check-config")
    assert ok.returncode == 0, ok
    bad = s.workdir / "bad.yaml"
    bad.write_text(s.config_path.read_text() + "remote_port: 70000\n")
    r = run("-c", str(bad), "--check-config")
    assert r.returncode == 78, r
    line = len(bad.read_text().splitlines())
    assert re.search(rf"{re.escape(str(bad))}:{line}:\d+: ", r.stderr), \
        r.stderr
    unknown = s.workdir / "unknown.yaml"
    unknown.write_text(s.config_path.read_text() + "no_such_key: 1\n")
    assert run("-c", str(unknown), "--check-config").returncode == 78
    missing = run("-c", str(s.workdir / "missing.yaml"), "--check-config")
    assert missing.returncode in (1, 78), missing


def test_hostname_not_fqdn_warns(sender, mx):
    s = sender(hostname="sender")
    wait_for(lambda: [e for e in s.logs() if e.get("level") == "warn" and
                      ("hostname" in str(e).lower() or
                       "fqdn" in str(e).lower())], 5,
             lambda: f"a warning about the hostname: {s.tail()}")


def test_spool_on_another_filesystem_refused(sender, tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == \
            os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    spool = os.path.join(shm, f"sender-test-{os.getpid()}")
    os.makedirs(spool, exist_ok=True)
    try:
        s = sender(start=False, spool=spool)
        r = run("-c", str(s.config_path), timeout=10)
        assert r.returncode == 78, r
        assert "filesystem" in r.stderr and spool in r.stderr, r.stderr
    finally:
        shutil.rmtree(spool, ignore_errors=True)
