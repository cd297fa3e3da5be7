"""The DNS zone the sender tests run against (served by dnsmasq, see
conftest.py). Every MX host name has its own loopback address; a sink
for it listens there on the test's port."""

HOSTS = {
    "mx1.test": "127.0.0.2",
    "mx2.test": "127.0.0.3",
    "mx3.test": "127.0.0.4",
    "mx4.test": "127.0.0.5",      # MX of shared-a.test and shared-b.test
    "mx5.test": "127.0.0.6",      # backup of backup.test, MX of five.test
    "mx6.test": "127.0.0.7",      # primary of busy.test
    "mx7.test": "127.0.0.8",      # secondary of busy.test
    "deadmx.test": "127.0.0.30",  # primary of backup.test: nothing listens
    "implicit.test": "127.0.0.10",  # A only, no MX: implicit MX
    "push.test": "127.0.0.40",    # not an MX: the metrics push receiver
}
MX = [
    ("one.test", "mx1.test", 10),
    ("two.test", "mx2.test", 10),
    ("three.test", "mx3.test", 10),
    ("shared-a.test", "mx4.test", 10),
    ("shared-b.test", "mx4.test", 10),
    ("in.shared-a.test", "mx4.test", 10),   # under shared-a.test: tls.policy
    ("backup.test", "deadmx.test", 10),
    ("backup.test", "mx5.test", 20),
    ("five.test", "mx5.test", 10),      # mx5.test as a primary too
    ("busy.test", "mx6.test", 10),
    ("busy.test", "mx7.test", 20),
    ("dead.test", "deadmx.test", 10),   # its only MX refuses connections
]
NULL_MX = "null.test"      # "0 ." (RFC 7505)
NXDOMAIN = "nx.test"       # not in the zone
