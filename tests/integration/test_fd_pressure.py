"""Descriptor pressure: with a low RLIMIT_NOFILE smtpd lowers its own
connection cap so it always keeps descriptors for its listeners, Maildir
and logger; clients past the cap get 421 4.3.2 and the server keeps
serving once others leave."""
import resource

from smtp_wire import send_mail, make_message

FD_LIMIT = 64
RESERVE = 16  # SMTPD_FD_RESERVE in src/smtpd/smtpd_config.h


def _low_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_low_fd_limit_caps_connections_and_recovers(smtpd):
    srv = smtpd(start=False, max_connections=1000, max_connections_per_ip=0)
    srv.preexec = _low_fd_limit
    srv.start()
    cap = FD_LIMIT - RESERVE
    start = srv.wait_log("smtpd.start")
    assert start["max_connections"] == cap

    held = [srv.connect() for _ in range(cap)]
    extra = srv.connect(greet=False)
    extra.read_reply().expect(421, "4.3.2", None)
    extra.expect_closed()
    refused = srv.wait_log("conn.refused")
    assert refused["reason"] == "max_connections"

    # The held sessions still work at the cap.
    held[0].cmd("EHLO client.test").expect(250)
    held[0].cmd("NOOP").expect(250, "2.0.0", None)

    # Freeing some makes room again.
    for w in held[:4]:
        w.cmd("QUIT").expect(221, "2.0.0", None)
        w.close()
    srv.wait_log("conn.close", conn=4)
    qid = send_mail(srv.host, srv.port, "a@example.org", ["b@example.net"],
                    make_message("after pressure"))
    assert qid
    assert len(list((srv.maildir / "new").iterdir())) == 1
    for w in held[4:]:
        w.close()
