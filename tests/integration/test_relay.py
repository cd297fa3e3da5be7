"""Relay policy. The tests connect from 127.0.0.1; to be a non-relay
client the server is configured with relay.networks that exclude it and
relay.domains ["ours.test"]. The server's hostname is "ours.test" too, so
nmap's "srvname" (taken from the greeting) is an accepted domain, as it
is on a real MX."""

import pytest

from mailstore import all_stored, wait_until
from smtp_wire import queue_id_of

OURS = "ours.test"
FOREIGN = "other.test"
IP = "127.0.0.1"
FROM, TO = "antispam", "relaytest"

# nmap scripts/smtp-open-relay.nse, its 16 tests (domain = FOREIGN,
# srvname = OURS, ip = IP). valid: the address is syntactically valid, so
# the only right answer is the relay refusal itself.
NMAP_CASES = [
    ("", f"{TO}@{FOREIGN}", True),
    (f"{FROM}@{FOREIGN}", f"{TO}@{FOREIGN}", True),
    (f"{FROM}@{OURS}", f"{TO}@{FOREIGN}", True),
    (f"{FROM}@[{IP}]", f"{TO}@{FOREIGN}", True),
    (f"{FROM}@[{IP}]", f"{TO}%{FOREIGN}@[{IP}]", True),
    (f"{FROM}@[{IP}]", f"{TO}%{FOREIGN}@{OURS}", True),
    (f"{FROM}@[{IP}]", f'"{TO}@{FOREIGN}"', False),
    (f"{FROM}@[{IP}]", f'"{TO}%{FOREIGN}"', False),
    (f"{FROM}@[{IP}]", f"{TO}@{FOREIGN}@[{IP}]", False),
    (f"{FROM}@[{IP}]", f'"{TO}@{FOREIGN}"@[{IP}]', True),
    (f"{FROM}@[{IP}]", f"{TO}@{FOREIGN}@{OURS}", False),
    # RFC 5321 4.1.2: At-domain is "@" Domain, no address literal.
    (f"{FROM}@[{IP}]", f"@[{IP}]:{TO}@{FOREIGN}", False),
    (f"{FROM}@[{IP}]", f"@{OURS}:{TO}@{FOREIGN}", True),
    (f"{FROM}@[{IP}]", f"{FOREIGN}!{TO}", False),
    (f"{FROM}@[{IP}]", f"{FOREIGN}!{TO}@[{IP}]", True),
    (f"{FROM}@[{IP}]", f"{FOREIGN}!{TO}@{OURS}", True),
]


@pytest.fixture(scope="module")
def srv(smtpd_module):
    return smtpd_module(hostname=OURS,
                        relay={"networks": ["10.255.255.0/24"],
                               "domains": [OURS]})


def no_foreign_recipient_stored(srv):
    for st in all_stored(srv.maildir):
        for r in st.rcpts:
            assert r.lower() == "postmaster" or \
                r.lower().endswith("@" + OURS), (st.path.name, st.rcpts)


@pytest.mark.parametrize("sender,rcpt,valid", NMAP_CASES,
                         ids=[f"{i + 1:02d}:{c[1]}"
                              for i, c in enumerate(NMAP_CASES)])
def test_nmap_open_relay_case(srv, sender, rcpt, valid):
    with srv.connect() as w:
        w.cmd(f"EHLO {FOREIGN}").expect(250)
        w.cmd("RSET").expect(250, "2.0.0", "Ok")
        w.cmd(f"MAIL FROM:<{sender}>").expect(250, "2.1.0", "Ok")
        r = w.cmd(f"RCPT TO:<{rcpt}>")
        assert r.code != 250, f"open relay: RCPT TO:<{rcpt}> got {r.raw!r}"
        if valid:
            r.expect(554, "5.7.1")
            assert r.message.startswith("<") and \
                r.message.endswith(">: Relay access denied"), r
        else:
            assert (r.code, r.enh) in ((501, "5.1.3"), (554, "5.7.1")), r
        # Nothing accepted, so there is no transaction to send.
        w.cmd("DATA").expect(503, "5.5.1", "Error: need RCPT command")
        w.cmd("QUIT").expect(221)
    no_foreign_recipient_stored(srv)


@pytest.mark.parametrize("rcpt", [
    f"{TO}%{FOREIGN}@{OURS}",           # percent hack
    f"{FOREIGN}!{TO}@{OURS}",           # bang path
    f'"{TO}@{FOREIGN}"@{OURS}',         # quoted @ in the local part
    f"{TO}@{FOREIGN}",
    f"{TO}@sub.{OURS}",                 # exact domain match only
    f"{TO}@{OURS}.{FOREIGN}",
    f"postmaster@{FOREIGN}",
    f"{TO}@[{IP}]",
])
def test_relay_tricks_denied_with_exact_reply(srv, rcpt):
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{rcpt}>").expect(
            554, "5.7.1", f"<{rcpt}>: Relay access denied")


def test_local_domains_accepted_and_mixed_message(srv):
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@elsewhere.test>").expect(250, "2.1.0")
        w.cmd(f"RCPT TO:<bob@{OURS}>").expect(250, "2.1.5")
        w.cmd("RCPT TO:<Carol@OURS.TEST>").expect(250, "2.1.5")
        w.cmd(f"RCPT TO:<x@{FOREIGN}>").expect(
            554, "5.7.1", f"<x@{FOREIGN}>: Relay access denied")
        w.cmd("RCPT TO:<postmaster>").expect(250, "2.1.5")
        w.cmd(f"RCPT TO:<@{FOREIGN}:dave@{OURS}>").expect(250, "2.1.5")
        w.cmd(f"RCPT TO:<@{OURS}:x@{FOREIGN}>").expect(554, "5.7.1")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: mixed\r\n\r\nbody\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    st = [s for s in all_stored(srv.maildir)
          if s.path.name.startswith(qid + ".")]
    assert len(st) == 1
    assert st[0].rcpts == [f"bob@{OURS}", "Carol@OURS.TEST", "postmaster",
                           f"dave@{OURS}"]
    no_foreign_recipient_stored(srv)


def test_rejections_are_logged(srv):
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd("RCPT TO:<logged@other.test>").expect(554, "5.7.1")
    # Not in the contract's event list by name, so only check that some
    # line mentions the refused recipient and that all lines are JSON.
    wait_until(lambda: any("logged@other.test" in str(e)
                           for e in srv.logs()), 5,
               what="a log line naming the refused recipient")


def test_relay_network_client_may_send_anywhere(smtpd):
    """Default relay.networks include 127.0.0.0/8: relaying is allowed."""
    srv = smtpd(relay={"domains": [OURS]})
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd(f"RCPT TO:<x@{FOREIGN}>").expect(250, "2.1.5", "Ok")
        w.cmd(f"RCPT TO:<{TO}%{FOREIGN}@{OURS}>").expect(250, "2.1.5")
        w.cmd("DATA").expect(354)
        w.send(b"Subject: relay\r\n\r\nok\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    (st,) = all_stored(srv.maildir)
    assert st.path.name.startswith(qid + ".")
    assert st.rcpts == [f"x@{FOREIGN}", f"{TO}%{FOREIGN}@{OURS}"]


def test_client_outside_networks_with_no_domains_gets_nothing(smtpd):
    srv = smtpd(relay={"networks": ["10.255.255.0/24"], "domains": []})
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd(f"RCPT TO:<bob@{OURS}>").expect(554, "5.7.1")
        w.cmd("RCPT TO:<postmaster>").expect(250, "2.1.5")


@pytest.mark.parametrize("rcpt", ['"bob"@ours.test', '"bob smith"@ours.test',
                                  "bob+tag@ours.test", "b.o.b@Ours.Test"])
def test_plain_local_parts_of_our_domain_accepted(srv, rcpt):
    """Quoting or odd but harmless characters are not relay tricks."""
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<a@client.test>").expect(250)
        w.cmd(f"RCPT TO:<{rcpt}>").expect(250, "2.1.5", "Ok")
