"""Command line, exit codes, config validation (FILE:LINE:COL), health,
listen addresses (IPv6 too), defaults and log level."""

import re
import socket

import pytest

from conftest import (HOSTNAME, free_port, have_ipv6_loopback, run_cli,
                      to_yaml)
from mailstore import check_received, read_stored
from smtp_wire import Wire, make_message, send_mail

EX_USAGE, EX_CONFIG = 64, 78

FULL_CONFIG = """\
listen:
  - "127.0.0.1:2525"
  - "[::1]:2525"
  - {{address: "127.0.0.1:2526", role: mx, tls: none}}
  - address: "127.0.0.1:2527"
    role: MX
    tls: STARTTLS
hostname: mx.example.test
maildir: {maildir}
max_message_size: 35M
max_recipients: 100
max_connections: 1000
max_connections_per_ip: 0
max_received_headers: 100
max_errors: 10
bare_lf: reject
relay:
  networks: ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "fd00::/8"]
  domains: ["example.test", "Other.Example"]
timeouts:
  command: 300s
  data: 500ms
  shutdown: 30
log:
  level: debug
"""


def write(tmp_path, text, name="smtpd.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_version_and_help():
    r = run_cli(["--version"])
    assert r.returncode == 0, r
    assert "smtpd" in r.stdout and re.search(r"\d", r.stdout), r.stdout
    r = run_cli(["--help"])
    assert r.returncode == 0, r
    assert "-c" in r.stdout and "--check-config" in r.stdout, r.stdout


@pytest.mark.parametrize("args", [
    ["--bogus"], ["-x"], ["-c"], ["-c", "{cfg}", "extra"],
    ["-c", "{cfg}", "--check-config", "extra"],
], ids=["unknown-long", "unknown-short", "missing-arg", "extra-arg",
        "extra-after-check"])
def test_bad_usage_exits_64(tmp_path, args):
    cfg = write(tmp_path, f"maildir: {tmp_path}/md\n")
    r = run_cli([a.format(cfg=cfg) for a in args])
    assert r.returncode == EX_USAGE, r
    assert r.stderr.strip(), "usage errors are explained on stderr"


def test_check_config_accepts_every_key(tmp_path):
    cfg = write(tmp_path, FULL_CONFIG.format(maildir=tmp_path / "md"))
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert r.returncode == 0, r
    r = run_cli(["-c", str(cfg), "--check-config"])
    assert r.returncode == 0, r


# (id, yaml, line, accepted columns or None for any). Value errors may
# point at the key or at the value; unknown keys point at the key.
BAD_CONFIGS = [
    ("unknown-key", "hostname: mx\nmaildir: /tmp/x\nmax_recipiants: 5\n",
     3, {1}),
    ("unknown-nested-key", "timeouts:\n  command: 5s\n  comand: 5s\n",
     3, {3}),
    ("unknown-relay-key", 'relay:\n  networks: ["10.0.0.0/8"]\n'
     '  domain: ["a.test"]\n', 3, {3}),
    ("uint-not-a-number", "hostname: mx\nmax_recipients: lots\n", 2,
     {1, 17}),
    ("uint-negative", "max_errors: -3\n", 1, {1, 13}),
    ("size-bad-suffix", "max_message_size: 10q\n", 1, {1, 19}),
    ("duration-bad", "timeouts:\n  data: 5 parsecs\n", 2, {3, 9}),
    ("enum-bad", "bare_lf: sometimes\n", 1, {1, 10}),
    ("log-level-bad", "log:\n  level: loud\n", 2, {3, 10}),
    ("list-for-string", "hostname: [a, b]\n", 1, {1, 11}),
    ("map-for-list", "listen:\n  a: b\n", 2, {1, 3}),
    ("bad-cidr", 'relay:\n  networks: ["10.0.0.0/33"]\n', 2, {3, 13, 14}),
    ("bad-listen", 'listen: ["nonsense"]\n', 1, {1, 9, 10}),
    ("bad-listen-port", 'listen: ["127.0.0.1:99999"]\n', 1, {1, 9, 10}),
    # The mapping form of a listen entry: the field's value or name.
    ("listen-bad-role", 'listen:\n  - {address: "127.0.0.1:25", role: '
     'relay}\n', 2, {37}),
    ("listen-bad-tls", 'listen:\n  - address: "127.0.0.1:25"\n'
     '    tls: starttls\n  - {address: "127.0.0.1:26", tls: always}\n',
     4, {36}),
    ("listen-unknown-field", 'listen:\n  - "127.0.0.1:25"\n'
     '  - {adress: "127.0.0.1:26"}\n', 3, {6}),
    ("listen-no-address", "listen:\n  - {role: submission}\n", 2, {5}),
    ("listen-bad-address", 'listen:\n  - {address: "127.0.0.1"}\n', 2,
     {15}),
    # Replaced by listen entries: unknown keys now.
    ("old-submission-listen", 'submission_listen: ["127.0.0.1:587"]\n',
     1, {1}),
    ("old-implicit-listen", "tls:\n  implicit_listen: []\n", 2, {3}),
    ("yaml-unterminated", 'hostname: mx\nmaildir: "unterminated\n', None,
     None),
    ("yaml-tab-indent", "timeouts:\n\tcommand: 5s\n", None, None),
]


@pytest.mark.parametrize("text,line,cols", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_check_config_reports_file_line_col(tmp_path, text, line, cols):
    cfg = write(tmp_path, text)
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert r.returncode == EX_CONFIG, r
    m = re.search(rf"^{re.escape(str(cfg))}:(\d+):(\d+): (\S.*)$",
                  r.stderr, re.M)
    assert m, f"no FILE:LINE:COL: message in stderr: {r.stderr!r}"
    got_line, got_col = int(m.group(1)), int(m.group(2))
    nlines = text.count("\n")
    if line is None:  # YAML syntax errors: somewhere in the file
        assert 1 <= got_line <= nlines + 1 and got_col >= 1, m.group(0)
    else:
        assert got_line == line, m.group(0)
        assert got_col in cols, m.group(0)
    # The same file refuses to start, with the same exit code.
    r2 = run_cli(["-c", str(cfg)])
    assert r2.returncode == EX_CONFIG, r2


# Checks across keys run after the file parsed: they name the file, the
# key, the address and the entry's number. {users} is a users file.
A, B = "127.0.0.1:2601", "127.0.0.1:2602"
LISTEN_ERRORS = [
    ("submission-without-users-file",
     [A, {"address": B, "role": "submission"}], {},
     f"listen: {B} (entry 2): role submission needs auth.users_file"),
    ("implicit-without-cert", [A, {"address": B, "tls": "implicit"}], {},
     f"listen: {B} (entry 2): tls implicit needs tls.cert"),
    ("submission-implicit-without-cert",
     [{"address": B, "role": "submission", "tls": "implicit"}],
     {"auth": {"users_file": "{users}"}},
     f"listen: {B} (entry 1): tls implicit needs tls.cert"),
    ("submission-plaintext-only",
     [A, {"address": B, "role": "submission", "tls": "none"}],
     {"auth": {"users_file": "{users}"}},
     f"listen: {B} (entry 2): role submission with tls none needs "
     "auth.allow_plaintext: true (AUTH is offered only inside TLS)"),
    ("submission-starttls-without-cert",
     [A, {"address": B, "role": "submission"}],
     {"auth": {"users_file": "{users}"}},
     f"listen: {B} (entry 2): role submission needs tls.cert (AUTH is "
     "offered only inside TLS)"),
    ("same-address-twice", [A, B, {"address": A, "role": "mx"}], {},
     f"listen: {A} (entry 3): the same address as entry 1 ({A})"),
    ("same-address-other-spelling", ["[::1]:2601", "[0:0::1]:2601"], {},
     "listen: [0:0::1]:2601 (entry 2): the same address as entry 1 "
     "([::1]:2601)"),
    ("wildcard-overlap", [A, "0.0.0.0:2601"], {},
     f"listen: 0.0.0.0:2601 (entry 2): overlaps entry 1 ({A}): a "
     "wildcard address takes the port on every address"),
    ("too-many", [f"127.0.0.1:{2601 + i}" for i in range(17)], {},
     "listen: more than 16 addresses"),
    ("empty", [], {}, "listen: needs at least one address"),
]


@pytest.mark.parametrize("listen,over,want", [c[1:] for c in LISTEN_ERRORS],
                         ids=[c[0] for c in LISTEN_ERRORS])
def test_listen_errors_name_file_and_key(tmp_path, listen, over, want):
    users = tmp_path / "users"
    users.write_text("alice:$6$salt$hash\n")
    text = to_yaml({"listen": listen, "maildir": str(tmp_path / "md"),
                    **over}) + "\n"
    cfg = write(tmp_path, text.replace("{users}", str(users)))
    for args in (["--check-config", "-c", str(cfg)], ["-c", str(cfg)]):
        r = run_cli(args)
        assert r.returncode == EX_CONFIG, r
        assert r.stderr == f"{cfg}: {want}\n", r.stderr


def test_listen_mixed_forms_accepted(tmp_path):
    """Both [::]:P and 0.0.0.0:P (IPv6 sockets are V6ONLY); a mapping
    alone; a submission port over plaintext when allow_plaintext."""
    users = tmp_path / "users"
    users.write_text("alice:$6$salt$hash\n")
    cfg = write(tmp_path, f"""\
listen:
  - "0.0.0.0:2601"
  - "[::]:2601"
  - {{address: "127.0.0.1:2602", role: submission, tls: none}}
maildir: {tmp_path}/md
auth:
  users_file: {users}
  allow_plaintext: true
""")
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert (r.returncode, r.stderr) == (0, ""), r
    cfg = write(tmp_path, 'listen: {address: "127.0.0.1:2601", tls: none}\n'
                f"maildir: {tmp_path}/md\n")
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert (r.returncode, r.stderr) == (0, ""), r
    # At the limit (one more: LISTEN_ERRORS "too-many").
    cfg = write(tmp_path, to_yaml({
        "listen": [f"127.0.0.1:{2601 + i}" for i in range(16)],
        "maildir": str(tmp_path / "md")}) + "\n")
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert (r.returncode, r.stderr) == (0, ""), r


def test_removed_listen_keys_say_what_replaced_them(tmp_path):
    cfg = write(tmp_path, 'submission_listen: ["127.0.0.1:587"]\n')
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert r.returncode == EX_CONFIG, r
    assert r.stderr == (f"{cfg}:1:1: unknown key 'submission_listen' (now "
                        "an entry of listen: {address: ADDR:PORT, role: "
                        "submission})\n"), r.stderr
    cfg = write(tmp_path, 'tls:\n  implicit_listen: ["127.0.0.1:465"]\n')
    r = run_cli(["--check-config", "-c", str(cfg)])
    assert r.returncode == EX_CONFIG, r
    assert r.stderr.endswith(": unknown key 'tls.implicit_listen' (now an "
                             "entry of listen: {address: ADDR:PORT, tls: "
                             "implicit})\n"), r.stderr


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_config_file(tmp_path, kind):
    path = tmp_path / "nope.yaml"
    if kind == "directory":
        path.mkdir()
    for args in (["--check-config", "-c", str(path)], ["-c", str(path)]):
        r = run_cli(args)
        assert r.returncode == EX_CONFIG, r
        assert str(path) in r.stderr, r.stderr


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"],
                         ids=["empty", "comment", "empty-document"])
def test_empty_config_means_defaults(tmp_path, text):
    r = run_cli(["--check-config", "-c", str(write(tmp_path, text))])
    assert r.returncode == 0, r


def test_maildir_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = write(tmp_path, to_yaml({
        "listen": [f"127.0.0.1:{free_port()}"],
        "maildir": str(blocker / "maildir")}) + "\n")
    r = run_cli(["-c", str(cfg)])
    assert r.returncode == EX_CONFIG, r
    assert r.stderr.strip()


def test_cannot_bind_exits_1(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cfg = write(tmp_path, to_yaml({
            "listen": [f"127.0.0.1:{port}"],
            "maildir": str(tmp_path / "md")}) + "\n")
        r = run_cli(["-c", str(cfg)])
    assert r.returncode == 1, r
    assert r.stderr.strip()


def test_maildir_created_and_size_forms(smtpd, tmp_path):
    for size, octets in (("1024", 1024), ("10k", 10240),
                         ("35M", 36700160)):
        md = tmp_path / f"deep{octets}" / "er" / "maildir"
        srv = smtpd(maildir=md, max_message_size=size)
        for sub in ("tmp", "new", "cur"):
            assert (md / sub).is_dir(), sub
        with srv.connect() as w:
            r = w.cmd("EHLO client.test")
            assert f"SIZE {octets}" in r.lines, (size, r)
        assert srv.stop() == 0


def test_health(smtpd):
    srv = smtpd(max_connections=1)
    r = run_cli(["-c", str(srv.config_path), "health"], timeout=20)
    assert r.returncode == 0, r
    # A full server answers 421, not 220: not healthy.
    with srv.connect():
        r = run_cli(["-c", str(srv.config_path), "health"], timeout=20)
        assert r.returncode == 1, r
    assert srv.stop() == 0
    r = run_cli(["-c", str(srv.config_path), "health"], timeout=20)
    assert r.returncode == 1, r


def test_default_hostname_is_the_host_name(smtpd):
    srv = smtpd(hostname=None)
    assert srv.hostname == socket.gethostname()
    with srv.connect() as w:  # connect() checks "220 <hostname> ESMTP"
        r = w.cmd("EHLO client.test")
        assert r.lines[0] == socket.gethostname(), r


def test_log_level_warn_hides_info(smtpd):
    srv = smtpd(log={"level": "warn"})
    send_mail(srv.host, srv.port, "a@client.test", ["b@ours.test"],
              make_message("quiet", ["x"]))
    assert srv.stop() == 0
    levels = {e["level"] for e in srv.logs()}
    assert levels <= {"warn", "error"}, levels


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_listen(smtpd):
    p4, p6 = free_port(), free_port("::1", socket.AF_INET6)
    srv = smtpd(listen=[f"[::1]:{p6}", f"127.0.0.1:{p4}"])
    assert srv.family == socket.AF_INET6
    msg = make_message("v6", ["over IPv6"])
    # Default relay.networks include ::1/128: relaying is allowed.
    qid = send_mail("::1", p6, "a@client.test", ["x@far.away.test"], msg)
    st = read_stored(srv.maildir, qid)
    check_received(st, "client.test", "::1", HOSTNAME, qid, "ESMTP",
                   rcpt="x@far.away.test")
    with Wire("127.0.0.1", p4) as w:  # the IPv4 address works as well
        w.read_reply().expect(220)
    assert srv.find_logs("smtpd.start")
