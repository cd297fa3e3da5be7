"""docker-compose.tls.yml over the e2e demo: smtpd with a certificate,
key and users file made by scripts/make-test-certs.sh and bind-mounted
from the host, STARTTLS, AUTH and the submission ports 587 (STARTTLS)
and 465 (implicit TLS, RFC 8314), each published on a free port of
127.0.0.1.

A mail client (smtplib) submits with STARTTLS and a password on 587, and
once more with SMTP_SSL on 465; each message is looked for in the MX
container's Maildir volume, where smtpd's Received: header must say
ESMTPSA and name the TLS version. The images are the ones the `images`
fixture built; the overlay builds nothing.
"""

import re
import smtplib
import ssl
import uuid
from email.message import EmailMessage

import pytest

from conftest import COMPOSE_FILES, REPO, Stack, free_port, run, wait_until

SCRIPT = REPO / "scripts" / "make-test-certs.sh"
TLS_FILES = COMPOSE_FILES + ["docker-compose.tls.yml"]
USER = "alice@client.test"
RCPT = "carol@e2e.test"
MADE = ("ca.pem", "ca.key", "server.pem", "server.key", "users")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The script's folder and the user's password. Run twice: the second
    run must keep every file as it is."""
    d = tmp_path_factory.mktemp("tls") / "tls"
    password = "pw " + uuid.uuid4().hex
    args = [str(SCRIPT), "--dir", str(d), "--user", USER,
            "--password", password]
    first = run(args, timeout=60).stdout
    assert re.search(r"^made +.*server\.pem", first, re.M), first
    before = {f: (d / f).read_bytes() for f in MADE}
    again = run(args, timeout=60).stdout
    assert not re.search(r"^(made|wrote) ", again, re.M), again
    assert {f: (d / f).read_bytes() for f in MADE} == before
    # What smtpd reads as UID 10025 through the bind mounts.
    for f in ("server.pem", "server.key", "users"):
        assert (d / f).stat().st_mode & 0o004, f
    return d, password


@pytest.fixture(scope="module")
def tls_stack(images, certs):
    d, password = certs
    sub_port, smtps_port = free_port(), free_port()
    s = Stack(images, files=TLS_FILES, prefix="mtatlstest", env={
        "SMTPD_SUBMISSION_PUBLISH": f"127.0.0.1:{sub_port}",
        "SMTPD_SUBMISSIONS_PUBLISH": f"127.0.0.1:{smtps_port}",
        "SMTPD_TLS_CERT": str(d / "server.pem"),
        "SMTPD_TLS_KEY": str(d / "server.key"),
        "SMTPD_USERS_FILE": str(d / "users"),
    })
    s.submission_port = sub_port
    s.submissions_port = smtps_port
    s.password = password
    s.ca = d / "ca.pem"
    try:
        s.compose("up", "-d", "--no-build", timeout=300)
        # The published port answers before smtpd listens behind it.
        wait_until(lambda: smtpd_started(s), 60,
                   "smtpd started with the TLS config", s)
        yield s
    finally:
        s.down()


def smtpd_started(stack):
    """True once smtpd logged its start; fails at once when it exited
    (a file it could not read: exit 78, then restarted by compose)."""
    for cid in stack.containers("smtpd"):
        logs = stack.logs(cid)
        if '"smtpd.start"' in logs:
            return True
        st = stack.inspect(cid)["State"]
        if st["Restarting"] or st["ExitCode"] != 0 or \
                stack.inspect(cid)["RestartCount"] > 0:
            raise AssertionError(f"smtpd did not start: {st}\n{logs[-2000:]}")
    return False


def client_context(stack):
    """Verifies the chain against the test CA and 127.0.0.1 against the
    certificate's subject alt names."""
    ctx = ssl.create_default_context(cafile=str(stack.ca))
    ctx.check_hostname = True
    return ctx


def mx_file_with(stack, mid):
    """The text of the MX's stored message with that Message-ID, or ''."""
    return stack.read_volume(
        "mx-mail", f"cd /x/maildir/new && f=$(grep -l '<{mid}>' * "
        "2>/dev/null | head -n 1) && [ -n \"$f\" ] && cat \"$f\"; true")


def message(mid, subject="submitted over STARTTLS"):
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = RCPT
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{mid}>"
    msg.set_content("hello over TLS\n")
    return msg


def test_submission_starttls_login_reaches_mx_as_esmtpsa(tls_stack):
    mid = f"{uuid.uuid4().hex[:12]}@client.test"
    with smtplib.SMTP("127.0.0.1", tls_stack.submission_port,
                      timeout=60) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), s.esmtp_features
        # The submission port wants AUTH before MAIL.
        code, reply = s.mail(USER)
        assert code == 530, reply
        s.rset()
        s.starttls(context=client_context(tls_stack))
        s.ehlo("client.test")
        assert "PLAIN" in s.esmtp_features.get("auth", "").split()
        # One wrong password (login() would try each mechanism in turn).
        s.user, s.password = USER, tls_stack.password + "x"
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            s.auth("PLAIN", s.auth_plain)
        assert bad.value.smtp_code == 535
        s.login(USER, tls_stack.password)
        assert s.send_message(message(mid), from_addr=USER,
                              to_addrs=[RCPT]) == {}

    check_delivered_esmtpsa(tls_stack, mid)


def check_delivered_esmtpsa(stack, mid):
    """The message reached the MX; smtpd's Received: says ESMTPSA and TLS,
    and its msg.accepted line names the user. Returns smtpd's log."""
    text = wait_until(lambda: mx_file_with(stack, mid), 60,
                      "the message in the MX's Maildir", stack)
    received = [h for h in re.findall(r"^Received:.*(?:\n\t.*)*", text,
                                      re.M) if "ESMTPSA" in h]
    assert len(received) == 1, text
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+", received[0]), \
        received[0]
    [smtpd] = stack.containers("smtpd")
    logs = stack.logs(smtpd)
    assert re.search(r'"event":"msg\.accepted".*"auth_user":"'
                     + re.escape(USER) + '"', logs)
    return logs


def test_implicit_tls_submission_on_465(tls_stack):
    """Port 465 (RFC 8314): TLS from the first byte, no STARTTLS, MAIL
    only after AUTH."""
    mid = f"{uuid.uuid4().hex[:12]}@client.test"
    with smtplib.SMTP_SSL("127.0.0.1", tls_stack.submissions_port,
                          timeout=60,
                          context=client_context(tls_stack)) as s:
        s.ehlo("client.test")
        assert not s.has_extn("starttls"), s.esmtp_features
        assert "PLAIN" in s.esmtp_features.get("auth", "").split()
        code, reply = s.mail(USER)
        assert (code, reply) == (530, b"5.7.0 Authentication required")
        s.rset()
        s.login(USER, tls_stack.password)
        assert s.send_message(message(mid, "submitted over port 465"),
                              from_addr=USER, to_addrs=[RCPT]) == {}
    logs = check_delivered_esmtpsa(tls_stack, mid)
    assert re.search(r'"event":"conn\.open".*"listener":"0\.0\.0\.0:465",'
                     r'"role":"submission","tls":"implicit"', logs), logs


def test_mx_port_relays_only_after_auth(tls_stack):
    # Host clients arrive from the bridge gateway, outside relay.networks
    # in config/smtpd-docker-tls.yaml: no relaying without a password.
    with smtplib.SMTP("127.0.0.1", tls_stack.port, timeout=60) as s:
        s.ehlo("client.test")
        assert s.mail(USER)[0] == 250
        code, reply = s.rcpt(RCPT)
        assert code == 554 and b"Relay access denied" in reply, reply
