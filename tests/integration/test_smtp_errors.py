"""Every error reply of the contract, one connection per case, plus the
rule that every reply after EHLO carries an enhanced status code."""

import pytest

from mailstore import new_files, read_stored
from smtp_wire import queue_id_of

# Where a case starts: the commands run (and answered 2xx) before it.
SETUP = {
    "none": [],
    "helo": ["EHLO client.test"],
    "mail": ["EHLO client.test", "MAIL FROM:<a@client.test>"],
    "rcpt": ["EHLO client.test", "MAIL FROM:<a@client.test>",
             "RCPT TO:<b@ours.test>"],
}

SEND_HELO_FIRST = (503, "5.5.1", "Error: send HELO/EHLO first")
BAD_SENDER = (501, "5.1.7", "Bad sender address syntax")
BAD_RCPT = (501, "5.1.3", "Bad recipient address syntax")
BAD_VALUE = (501, "5.5.4", "Bad parameter value")
UNKNOWN = (500, "5.5.2", "Error: command not recognized")

CASES = [
    # (state, command, code, enhanced code, exact text or None)
    ("none", "MAIL FROM:<a@client.test>", *SEND_HELO_FIRST),
    ("none", "RCPT TO:<b@ours.test>", *SEND_HELO_FIRST),
    ("none", "DATA", *SEND_HELO_FIRST),
    ("none", "EHLO", 501, "5.5.4", "Syntax: EHLO hostname"),
    ("none", "HELO", 501, "5.5.4", None),
    ("mail", "MAIL FROM:<a2@client.test>", 503, "5.5.1",
     "Error: nested MAIL command"),
    ("rcpt", "MAIL FROM:<a2@client.test>", 503, "5.5.1",
     "Error: nested MAIL command"),
    ("helo", "RCPT TO:<b@ours.test>", 503, "5.5.1",
     "Error: need MAIL command"),
    ("mail", "DATA", 503, "5.5.1", "Error: need RCPT command"),
    ("helo", "DATA", 503, "5.5.1", None),
    ("helo", "MAIL FROM:bob", *BAD_SENDER),
    ("helo", "MAIL FROM:bob@client.test", *BAD_SENDER),
    ("helo", "MAIL TO:<a@client.test>", *BAD_SENDER),
    ("helo", "MAIL FROM:<a b@client.test>", *BAD_SENDER),
    ("helo", "MAIL FROM:<a@client.test", *BAD_SENDER),
    ("helo", "MAIL FROM:<a@@client.test>", *BAD_SENDER),
    ("helo", "MAIL FROM:", *BAD_SENDER),
    ("helo", "MAIL", *BAD_SENDER),
    ("mail", "RCPT TO:bob", *BAD_RCPT),
    ("mail", "RCPT TO:bob@ours.test", *BAD_RCPT),
    ("mail", "RCPT FROM:<b@ours.test>", *BAD_RCPT),
    ("mail", "RCPT TO:<b c@ours.test>", *BAD_RCPT),
    ("mail", "RCPT TO:<>", *BAD_RCPT),
    ("mail", "RCPT TO:<b@ours.test", *BAD_RCPT),
    ("mail", "RCPT", *BAD_RCPT),
    ("rcpt", "DATA x", 501, "5.5.4", "Syntax: DATA"),
    ("helo", "RSET x", 501, "5.5.4", "Syntax: RSET"),
    ("none", "QUIT x", 501, "5.5.4", "Syntax: QUIT"),
    ("helo", "MAIL FROM:<a@client.test> FOO=bar", 555, "5.5.4",
     "Unsupported option: FOO"),
    ("helo", "MAIL FROM:<a@client.test> XYZZY", 555, "5.5.4",
     "Unsupported option: XYZZY"),
    ("mail", "RCPT TO:<b@ours.test> FOO=1", 555, "5.5.4",
     "Unsupported option: FOO"),
    ("helo", "MAIL FROM:<a@client.test> BODY=FOO", *BAD_VALUE),
    ("helo", "MAIL FROM:<a@client.test> SIZE=abc", *BAD_VALUE),
    ("helo", "MAIL FROM:<a@client.test> SIZE=-1", *BAD_VALUE),
    ("helo", "MAIL FROM:<j\u00f6rg@client.test>", 553, "5.6.7",
     "Address needs SMTPUTF8"),
    ("helo", "MAIL FROM:<a@client.test> SIZE=999999999999", 552, "5.3.4",
     "Message size exceeds fixed limit"),
    ("none", "FOO", *UNKNOWN),
    ("helo", "MAILFROM:<a@client.test>", *UNKNOWN),
    ("helo", "XYZZY plugh", *UNKNOWN),
]


@pytest.fixture(scope="module")
def srv(smtpd_module):
    return smtpd_module()


@pytest.mark.parametrize("state,command,code,enh,text", CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_error_reply(srv, state, command, code, enh, text):
    with srv.connect() as w:
        for line in SETUP[state]:
            assert w.cmd(line).code == 250, line
        r = w.cmd(command)
        r.expect(code, enh, text)
        if text is None:
            assert r.message.strip(), r
        # An error never ends the session by itself.
        w.cmd("NOOP").expect(250, "2.0.0", "Ok")
        w.cmd("QUIT").expect(221, "2.0.0", "Bye")
        w.expect_closed()


def test_helo_without_argument_names_the_verb(srv):
    with srv.connect() as w:
        r = w.cmd("HELO")
        assert r.message.startswith("Syntax:"), r


def test_errors_keep_the_transaction(srv):
    """Rejected RCPTs and a bad DATA line leave MAIL and the good RCPTs
    in place; the message goes to the accepted recipients only."""
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<keep@client.test>").expect(250, "2.1.0")
        w.cmd("RCPT TO:<bad address@ours.test>").expect(501, "5.1.3")
        w.cmd("RCPT TO:<good1@ours.test>").expect(250, "2.1.5")
        w.cmd("RCPT TO:<good2@ours.test> FOO=1").expect(555, "5.5.4")
        w.cmd("RCPT TO:<good3@ours.test>").expect(250, "2.1.5")
        w.cmd("DATA now").expect(501, "5.5.4", "Syntax: DATA")
        w.cmd("HELP").expect(214)
        w.cmd("DATA").expect(354)
        w.send(b"Subject: kept\r\n\r\nbody\r\n.\r\n")
        qid = queue_id_of(w.read_reply())
    st = read_stored(srv.maildir, qid)
    assert st.sender == "keep@client.test"
    assert st.rcpts == ["good1@ours.test", "good3@ours.test"]


def test_ehlo_resets_the_transaction(srv):
    """RFC 5321 4.1.4: EHLO in a transaction clears it."""
    before = len(new_files(srv.maildir))
    with srv.connect() as w:
        w.cmd("EHLO client.test").expect(250)
        w.cmd("MAIL FROM:<x@client.test>").expect(250, "2.1.0")
        w.cmd("RCPT TO:<y@ours.test>").expect(250, "2.1.5")
        w.cmd("EHLO client.test").expect(250)
        w.cmd("DATA").expect(503, "5.5.1")
        w.cmd("RCPT TO:<y@ours.test>").expect(503, "5.5.1",
                                              "Error: need MAIL command")
        w.cmd("MAIL FROM:<x@client.test>").expect(250, "2.1.0")
    assert len(new_files(srv.maildir)) == before


def test_enhanced_codes_on_every_reply_after_ehlo(srv):
    """RFC 2034: every reply but the greeting and EHLO/HELO's (and 354,
    which has no enhanced class) carries a code of the reply's class."""
    script = [
        "NOOP", "FOO", "RCPT TO:<b@ours.test>", "HELO client.test",
        "EHLO client.test", "VRFY bob", "HELP", "RSET x",
        "MAIL FROM:<a@client.test> BODY=BAD", "MAIL FROM:<a@client.test>",
        "MAIL FROM:<a@client.test>", "RCPT TO:<b c>", "RCPT TO:<b@ours.test>",
        "RCPT TO:<c@ours.test> NOPE=1", "RSET",
        "MAIL FROM:<a@client.test>", "RCPT TO:<b@ours.test>", "DATA",
    ]
    with srv.connect() as w:
        replies = [(line, w.cmd(line)) for line in script]
        w.send(b"Subject: e\r\n\r\nx\r\n.\r\n")
        replies.append(("<end of data>", w.read_reply()))
        replies.append(("QUIT", w.cmd("QUIT")))
    errors = sum(1 for _, r in replies if r.code >= 400)
    assert errors == 7, replies  # stays below max_errors (default 10)
    for line, r in replies:
        verb = line.split(" ", 1)[0]
        if verb in ("EHLO", "HELO") or r.code == 354:
            assert r.enh is None, (line, r)
            continue
        assert r.enh is not None, f"{line!r} got {r.raw!r}"
        assert r.enh[0] == str(r.code)[0], f"{line!r} got {r.raw!r}"
        for text in r.lines:
            assert text.startswith(r.enh + " "), f"{line!r} got {r.raw!r}"
