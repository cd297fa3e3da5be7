"""`sender queue`: what is waiting, read-only, while senders run."""
import json
import subprocess

from .conftest import sender_bin


def queue(s, *args):
    r = subprocess.run([sender_bin(), "-c", str(s.config_path), "queue",
                        *args], capture_output=True, timeout=30)
    assert r.returncode == 0, r
    return r.stdout.decode()


def test_queue_shows_unclaimed_and_deferred(sender, mx):
    mx.sink("mx1.test")
    s = sender(start=False)
    waiting = s.drop(["a@one.test", "b@one.test"])
    text = queue(s)
    assert waiting in text and "a@one.test" in text
    assert text.rstrip().endswith("-- 1 message, 2 recipients waiting")
    (obj,) = [json.loads(line) for line in queue(s, "--json").splitlines()]
    assert obj["queue_id"] == waiting and obj["folder"] == "new"
    assert obj["sender"] == "alice@example.org"
    assert [r["status"] for r in obj["recipients"]] == ["waiting"] * 2

    s.start()
    s.wait_log("msg.done", queue_id=waiting)
    deferred = s.drop(["c@one.test", "v@dead.test"])
    s.wait_log("msg.waiting", queue_id=deferred)
    objs = [json.loads(line) for line in queue(s, "--json").splitlines()]
    assert [o["queue_id"] for o in objs] == [deferred]
    o = objs[0]
    assert o["folder"] == s.cfg["instance"] and o["attempts"] == 1
    assert {r["address"]: r["status"] for r in o["recipients"]} == {
        "c@one.test": "sent", "v@dead.test": "deferred"}
    assert "-- 1 message, 1 recipient waiting" in queue(s)


def test_json_needs_a_command():
    r = subprocess.run([sender_bin(), "--json"], capture_output=True)
    assert r.returncode == 64
