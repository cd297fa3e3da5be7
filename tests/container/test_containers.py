"""The shipped form: two static images, docker-compose.yml and its e2e
overlay (a DNS server with MX records for e2e.test and a second smtpd as
that domain's MX), tested through the published port and the volumes.

Mail is submitted with smtplib to smtpd's published port on 127.0.0.1 and
looked for in the MX container's Maildir volume; nothing leaves the
machine.
"""

import collections
import re
import smtplib
import time
import uuid
from email.message import EmailMessage

from conftest import IMAGE_USER, IMAGES, run, wait_until

MAX_IMAGE_BYTES = 10_000_000
RCPT = "bob@e2e.test"
MSGID = re.compile(r"^Message-ID:\s*<([^>]+)>", re.I | re.M)


def submit(port, count, tag):
    """Sends count messages in one session; returns their Message-IDs."""
    ids = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        for i in range(count):
            msg = EmailMessage()
            msg["From"] = "alice@client.test"
            msg["To"] = RCPT
            msg["Subject"] = f"container test {tag} {i}"
            msg["Message-ID"] = f"<{tag}.{i}@client.test>"
            msg.set_content(f"message {i} of {count}\n")
            refused = s.send_message(msg, from_addr="alice@client.test",
                                     to_addrs=[RCPT])
            assert refused == {}
            ids.append(f"{tag}.{i}@client.test")
    return ids


def mx_message_ids(stack):
    """Counter of Message-IDs of the files in the MX's Maildir new/."""
    out = stack.read_volume(
        "mx-mail", "cd /x/maildir/new && "
        "find . -type f -exec grep -hi '^Message-ID:' {} +; true")
    return collections.Counter(MSGID.findall(out))


def queue_counts(stack):
    """Messages in the shared queue: {'new': n, <instance>: n, ...}."""
    out = stack.read_volume(
        "queue", "cd /x && echo new $(ls maildir/new | wc -l) && "
        "for d in spool/*/; do [ -d \"$d\" ] && "
        "echo $(basename \"$d\") $(ls \"$d\" | wc -l); done; true")
    return {k: int(v) for k, v in (ln.split() for ln in out.splitlines())}


def running(stack, service):
    return [c for c in stack.containers(service)
            if stack.inspect(c)["State"]["Running"]]


def test_images_are_small_static_and_run_as_non_root(stack):
    for name, image in IMAGES.items():
        info = stack.inspect(image)
        assert info["Size"] < MAX_IMAGE_BYTES, (image, info["Size"])
        assert info["Config"]["User"] == IMAGE_USER, image
        assert info["Config"]["Healthcheck"]["Test"][-1] == "health", image
        print(f"\n{image}: {info['Size']} bytes")
        # Nothing but the binary and its files: not even a shell.
        p = run(["docker", "run", "--rm", "--network", "none",
                 "--entrypoint", "/bin/sh", image, "-c", "true"],
                check=False)
        assert p.returncode != 0, (image, p.stdout, p.stderr)
    assert "2525/tcp" in stack.inspect(IMAGES["smtpd"])["Config"]["ExposedPorts"]
    for service in ("smtpd", "sender", "mx"):
        for cid in running(stack, service):
            pid = stack.inspect(cid)["State"]["Pid"]
            with open(f"/proc/{pid}/status") as f:
                ids = dict(ln.split(":", 1) for ln in f if ":" in ln)
            uids = ids["Uid"].split()
            gids = ids["Gid"].split()
            assert uids == ["10025"] * 4, (service, uids)
            assert gids == ["10025"] * 4, (service, gids)


def test_message_travels_from_client_to_mx(stack):
    tag = uuid.uuid4().hex[:8]
    [mid] = submit(stack.port, 1, tag)
    got = wait_until(lambda: mx_message_ids(stack).get(mid), 60,
                     "the message in the MX's Maildir", stack)
    assert got == 1
    # The sender finished it: moved to cur/ with the "passed" flag.
    out = stack.read_volume(
        "queue", f"grep -l '<{mid}>' /x/maildir/cur/* || true")
    assert re.search(r":2,P$", out.strip(), re.M), out


def test_three_senders_one_killed_each_message_arrives_once(stack):
    stack.compose("up", "-d", "--no-build", "--no-recreate",
                  "--scale", "sender=3")
    senders = wait_until(
        lambda: (lambda r: r if len(r) == 3 and all(
            '"sender.start"' in stack.logs(c) for c in r) else None)(
            running(stack, "sender")),
        60, "three running senders", stack)
    instance = {c: stack.inspect(c)["Config"]["Hostname"] for c in senders}

    # The MX holds still while the mail is claimed, so the killed sender
    # dies holding messages it has not begun to send.
    [mx] = running(stack, "mx")
    stack.pause(mx)
    tag = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    ids = submit(stack.port, 300, tag)
    print(f"\n300 messages submitted in {time.monotonic() - t0:.1f} s")

    def all_claimed():
        q = queue_counts(stack)
        held = sum(q.get(i, 0) for i in instance.values())
        return q if q["new"] == 0 and held == 300 else None

    q = wait_until(all_claimed, 60, "all 300 messages claimed", stack)
    victim = max(senders, key=lambda c: q.get(instance[c], 0))
    held = q[instance[victim]]
    assert held > 0, q
    print(f"claimed per instance: {q}; killing {instance[victim]} ({held})")
    run(["docker", "kill", victim])
    stack.unpause(mx)

    want = set(ids)

    def delivered():
        got = mx_message_ids(stack)
        return got if want <= set(got) else None

    wait_until(delivered, 120, "all 300 messages at the MX", stack, 1)

    def drained():
        q = queue_counts(stack)
        return q if sum(q.values()) == 0 else None

    wait_until(drained, 60, "an empty queue", stack, 1)
    got = mx_message_ids(stack)
    mine = {k: v for k, v in got.items() if k.startswith(tag + ".")}
    assert set(mine) == want
    twice = {k: v for k, v in mine.items() if v != 1}
    assert twice == {}, f"delivered more than once: {twice}"
    # The killed sender stayed dead: another instance adopted its mail.
    assert not stack.inspect(victim)["State"]["Running"]


def test_health_checks_report_healthy(stack):
    def statuses():
        st = {}
        for service in ("smtpd", "sender", "mx"):
            for cid in running(stack, service):
                st[cid[:12]] = stack.inspect(cid)["State"]["Health"]["Status"]
        return st

    # The first check runs one interval (30 s) after a container starts.
    wait_until(lambda: set(statuses().values()) == {"healthy"}, 120,
               "every smtpd and sender container healthy", stack)
