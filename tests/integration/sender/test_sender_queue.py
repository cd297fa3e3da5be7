"""`sender queue`: what is waiting, per MX host, read-only, while senders
run: attempts, next try and each waiting recipient's last reply, from
the journals."""
import json
import os
import subprocess
import time

from .conftest import sender_bin

FAR_MS = 4102444800000   # 2100-01-01T00:00:00Z
PAST_MS = 1600000000000  # 2020-09-13T12:26:40Z
T0 = 1795680000          # arrival of the first message


def queue(s, *args):
    r = subprocess.run([sender_bin(), "-c", str(s.config_path), "queue",
                        *args], capture_output=True, timeout=30)
    assert r.returncode == 0, r
    return r.stdout.decode()


def queue_json(s):
    return [json.loads(line) for line in queue(s, "--json").splitlines()]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def claimed(s, qid, journal):
    """Moves a dropped message into the instance folder with a journal,
    as a sender that worked on it and stopped leaves it."""
    name = f"{qid}.test"
    inst = s.spool / s.cfg["instance"]
    inst.mkdir(parents=True, exist_ok=True)
    os.rename(s.maildir / "new" / name, inst / name)
    (inst / f".{name}.journal").write_text(journal)
    return inst / name


def test_queue_shows_unclaimed_and_deferred(sender, mx):
    mx.sink("mx1.test")
    s = sender(start=False)
    waiting = s.drop(["a@one.test", "b@one.test"])
    text = queue(s)
    lines = text.splitlines()
    assert lines[0] == "one.test (not tried yet)"
    assert lines[1].startswith(f"  {waiting}  ")
    assert lines[1].endswith("  <alice@example.org>")
    assert "    folder new, attempts 0, next try now\n" in text
    assert "    a@one.test: waiting\n    b@one.test: waiting\n" in text
    assert text.endswith("-- 1 message, 2 recipients waiting\n")
    (obj,) = queue_json(s)
    assert obj["queue_id"] == waiting and obj["folder"] == "new"
    assert obj["sender"] == "alice@example.org"
    assert obj["attempts"] == 0 and obj["next_try"] is None
    assert obj["recipients"] == [
        {"address": a, "status": "waiting", "mx": None, "dsn": None,
         "reply": None} for a in ("a@one.test", "b@one.test")]

    s.start()
    s.wait_log("msg.done", queue_id=waiting)
    deferred = s.drop(["c@one.test", "v@dead.test"])
    w = s.wait_log("msg.waiting", queue_id=deferred)
    failed = s.find_logs("delivery.deferred", queue_id=deferred)[0]
    objs = queue_json(s)
    assert [o["queue_id"] for o in objs] == [deferred]
    o = objs[0]
    assert o["folder"] == s.cfg["instance"] and o["attempts"] == 1
    # The wait is the default 5 minutes from the attempt.
    assert o["next_try"] > iso(time.time() + w["next_try_in"] - 60)
    assert {r["address"]: r["status"] for r in o["recipients"]} == {
        "c@one.test": "sent", "v@dead.test": "deferred"}
    v = o["recipients"][1]
    assert (v["mx"], v["dsn"], v["reply"]) == (
        "deadmx.test", failed["dsn"], failed["reply"])
    assert o["recipients"][0]["reply"] is None
    text = queue(s)
    lines = text.splitlines()
    assert lines[0] == "deadmx.test"
    assert lines[1].startswith(f"  {deferred}  ")
    assert lines[2] == (f"    folder {s.cfg['instance']}, attempts 1, "
                        f"next try {o['next_try']}")
    assert lines[3] == f"    v@dead.test: deferred, {failed['reply']}"
    assert "c@one.test" not in text  # delivered: not waiting
    assert lines[4:] == ["-- 1 message, 1 recipient waiting"]


def test_grouped_by_host_from_the_journals(sender, mx):
    """Recipients under the host of their last attempt (a host never
    tried: their domain), each message with its attempts, next try and
    the last replies; old journal lines without a reason still count."""
    s = sender(start=False)
    a = s.drop(["a@one.test", "b@two.test", "c@one.test"], mtime=T0)
    b = s.drop(["d@one.test", "f@null.test"], mtime=T0 + 60)
    c = s.drop(["g@one.test"], mtime=T0 + 120)
    d = s.drop(["e@two.test"], mtime=T0 + 180)
    e = s.drop(["h@one.test"], mtime=T0 + 240)
    claimed(s, a, "0 D 4.2.1 mx1.test 451 4.2.1 <a@one.test>: greylisted\n"
                  f"2 S\nretry 1 {FAR_MS}\n")
    claimed(s, b, "1 B 5.1.10 null.test recipient domain accepts no mail "
                  "(null MX)\n"
                  "0 D 4.4.1 mx1.test connect to mx1.test[127.0.0.2]:25: "
                  f"Connection refused\nretry 3 {PAST_MS}\n")
    claimed(s, c, "0 D\n0 D\n")
    path_e = claimed(s, e, "0 B 5.1.1 mx1.test 550 5.1.1 no such user\n")
    inst = s.cfg["instance"]

    def head(qid, mtime, folder, attempts, next_try):
        name = f"{qid}.test"
        p = path_e if qid == e else (
            s.maildir / "new" / name if folder == "new" else
            s.spool / inst / name)
        size = p.stat().st_size
        return [f"  {qid}  {size} bytes  {iso(mtime)}  <alice@example.org>",
                f"    folder {folder}, attempts {attempts}, "
                f"next try {next_try}"]

    far, past = iso(FAR_MS / 1000), iso(PAST_MS / 1000)
    assert queue(s).splitlines() == [
        "mx1.test",
        *head(a, T0, inst, 1, far),
        "    a@one.test: deferred, 451 4.2.1 <a@one.test>: greylisted",
        *head(b, T0 + 60, inst, 3, "now"),
        "    d@one.test: deferred, connect to mx1.test[127.0.0.2]:25: "
        "Connection refused",
        "one.test",
        *head(c, T0 + 120, inst, 2, "now"),
        "    g@one.test: deferred",
        "two.test (not tried yet)",
        *head(a, T0, inst, 1, far),
        "    b@two.test: waiting",
        *head(d, T0 + 180, "new", 0, "now"),
        "    e@two.test: waiting",
        "(no recipient waiting)",
        *head(e, T0 + 240, inst, 0, "now"),
        "-- 5 messages, 5 recipients waiting",
    ]

    objs = {o["queue_id"]: o for o in queue_json(s)}
    assert set(objs) == {a, b, c, d, e}
    assert objs[a]["next_try"] == far and objs[a]["attempts"] == 1
    assert objs[a]["arrival_time"] == iso(T0)
    assert objs[a]["recipients"] == [
        {"address": "a@one.test", "status": "deferred", "mx": "mx1.test",
         "dsn": "4.2.1", "reply": "451 4.2.1 <a@one.test>: greylisted"},
        {"address": "b@two.test", "status": "waiting", "mx": None,
         "dsn": None, "reply": None},
        {"address": "c@one.test", "status": "sent", "mx": None,
         "dsn": None, "reply": None}]
    # A wait that is over still shows when it was due.
    assert objs[b]["next_try"] == past and objs[b]["attempts"] == 3
    assert objs[b]["recipients"][1] == {
        "address": "f@null.test", "status": "bounced", "mx": "null.test",
        "dsn": "5.1.10",
        "reply": "recipient domain accepts no mail (null MX)"}
    assert objs[c]["attempts"] == 2 and objs[c]["next_try"] is None
    assert objs[c]["recipients"][0]["dsn"] is None
    assert objs[e]["next_try"] is None
    assert objs[e]["recipients"][0]["status"] == "bounced"


def test_empty_queue(sender):
    s = sender(start=False)
    assert queue(s) == "-- 0 messages, 0 recipients waiting\n"
    assert queue_json(s) == []


def test_json_needs_a_command():
    r = subprocess.run([sender_bin(), "--json"], capture_output=True)
    assert r.returncode == 64
