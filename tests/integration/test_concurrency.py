"""Many sessions at once on the single worker thread: every message is
stored whole, once, under its own queue id."""

import smtplib
import threading

from mailstore import new_files, read_stored
from smtp_wire import make_message, queue_id_of


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # reported below, with the client
            errors.append(f"client {i}: {e!r}")
    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "clients hung"
    assert not errors, "\n".join(errors[:20])


def test_200_concurrent_clients(smtpd):
    srv = smtpd(max_connections_per_ip=0, timeouts={"command": "60s",
                                                    "data": "60s"})
    n = 200
    barrier = threading.Barrier(n, timeout=60)
    results = [None] * n

    def client(i):
        token = f"c{i:03d}"
        body = [f"body of {token}", f".{token} starts with a dot",
                "y" * (i * 37 % 3000)]
        msg = make_message(token, body)
        with smtplib.SMTP(srv.host, srv.port, local_hostname="client.test",
                          timeout=60) as c:
            barrier.wait()  # all 200 sessions are open at this point
            assert c.ehlo("client.test")[0] == 250
            assert c.mail(f"{token}@client.test")[0] == 250
            assert c.rcpt(f"{token}@ours.test")[0] == 250
            assert c.rcpt(f"{token}-2@ours.test")[0] == 250
            code, resp = c.data(msg)
            assert code == 250, resp
            results[i] = (resp.decode().split()[-1], token, msg)
            c.quit()

    run_threads(n, client)
    qids = [r[0] for r in results]
    assert len(set(qids)) == n, "queue ids must be distinct"
    assert len(new_files(srv.maildir)) == n
    for qid, token, msg in results:
        st = read_stored(srv.maildir, qid)
        assert st.sender == f"{token}@client.test"
        assert st.rcpts == [f"{token}@ours.test", f"{token}-2@ours.test"]
        assert st.message == msg.replace(b"\r\n", b"\n")
    opens = srv.find_logs("conn.open")
    assert len(opens) >= n + 1  # the readiness probe is one more


def test_interleaved_pipelined_sessions(smtpd):
    """50 clients, each pipelining 4 messages in one send(), all at once."""
    srv = smtpd(max_connections_per_ip=0)
    n, per = 50, 4
    barrier = threading.Barrier(n, timeout=60)
    got = {}
    lock = threading.Lock()

    def client(i):
        w = srv.connect(timeout=20)
        with w:
            w.cmd("EHLO client.test").expect(250)
            blob = b""
            for k in range(per):
                blob += (b"MAIL FROM:<p%d@client.test>\r\n"
                         b"RCPT TO:<r%d.%d@ours.test>\r\nDATA\r\n"
                         b"Subject: %d.%d\r\n\r\n" % (i, i, k, i, k) +
                         b"line of client %d message %d\r\n" % (i, k) *
                         (10 + i * k) + b".\r\n")
            barrier.wait()
            w.send(blob + b"QUIT\r\n")
            for k in range(per):
                w.read_reply().expect(250, "2.1.0")
                w.read_reply().expect(250, "2.1.5")
                w.read_reply().expect(354)
                qid = queue_id_of(w.read_reply())
                with lock:
                    got[qid] = (i, k)
            w.read_reply().expect(221)
            w.expect_closed()

    run_threads(n, client)
    assert len(got) == n * per
    assert len(new_files(srv.maildir)) == n * per
    for qid, (i, k) in got.items():
        st = read_stored(srv.maildir, qid)
        assert st.rcpts == [f"r{i}.{k}@ours.test"]
        assert st.message == (b"Subject: %d.%d\n\n" % (i, k) +
                              b"line of client %d message %d\n" % (i, k) *
                              (10 + i * k))
