#!/bin/sh
# bench/postfix_relay_setup.sh: a private, throw-away Postfix instance that
# relays to smtp-sink MX hosts, the reference point for
# bench/sender_drain.py. Same approach as bench/postfix_setup.sh (which
# discards everything and is left untouched); this one delivers with smtp(8).
#
# Owns: everything under PFRELAY_DIR (default /tmp/pfrelay): etc/ (main.cf,
# master.cf, transport), queue/ (queue_directory), data/ (data_directory)
# and postfix.log (maillog_file).
# Invariants:
#   * The system instance (/etc/postfix, /var/spool/postfix) is never
#     started, stopped or reconfigured; every postfix, postsuper and
#     postqueue command here runs with "-c $PFRELAY_DIR/etc".
#   * At most one master process serves this directory: "start" stops a
#     previous master of the same directory first.
#   * Every message accepted on the injection port goes to the hold queue
#     (smtpd_data_restrictions = check_client_access static:HOLD), so
#     nothing is delivered until "release" + "flush"; delivery itself runs
#     with Postfix's default smtp(8) and qmgr(8) settings.
#   * Recipient domain dN.test goes to smtp:[127.0.0.(N+1)]:SINK_PORT
#     through transport_maps: no DNS look-up on the delivery side.
#
# Usage: postfix_relay_setup.sh start PORT SINK_PORT HOSTS | stop | status
#                               | queue | hold | release | flush
#   start    write the config, create the queue, start master listening
#            on 127.0.0.1:PORT, relaying d1.test..dHOSTS.test to the sinks
#   stop     stop this instance (postfix -c DIR stop); no-op when not running
#   status   exit 0 when this instance runs
#   queue    print the number of queue files not yet delivered (any queue)
#   hold     print the number of queue files on hold
#   release  move every held message to the deferred queue (postsuper -H)
#   flush    ask qmgr to deliver everything queued now (postqueue -f)
set -eu

DIR=${PFRELAY_DIR:-/tmp/pfrelay}
ETC=$DIR/etc

die() {
	echo "postfix_relay_setup.sh: $*" >&2
	exit 1
}

write_main_cf() {
	cat >"$ETC/main.cf" <<EOF
# Private benchmark instance written by bench/postfix_relay_setup.sh.
compatibility_level = 3.6
queue_directory = $DIR/queue
data_directory = $DIR/data
maillog_file = $DIR/postfix.log
maillog_file_prefixes = $DIR
myhostname = pfrelay.test
mydomain = pfrelay.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
# Injection side (not timed): accept relay mail from localhost and put
# every message on hold; no flow control (held mail never feeds qmgr's
# in_flow_delay tokens, so the default 1s would stall every message);
# no per-client limits for the parallel injecting sessions.
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_data_restrictions = check_client_access static:HOLD
in_flow_delay = 0s
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
# Delivery side (timed): each dN.test to its sink, everything else default.
transport_maps = texthash:$ETC/transport
EOF
}

write_transport() {
	: >"$ETC/transport"
	n=1
	while [ "$n" -le "$HOSTS" ]; do
		echo "d$n.test smtp:[127.0.0.$((n + 1))]:$SINK_PORT" >>"$ETC/transport"
		n=$((n + 1))
	done
}

write_master_cf() {
	# Debian's master.cf services with chroot off (nothing from /etc has to
	# be copied under the private queue), plus smtp/relay for delivery,
	# minus the pipe-based transports nothing here uses.
	cat >"$ETC/master.cf" <<EOF
# service  type  private unpriv chroot wakeup maxproc command
127.0.0.1:$PORT inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
}

is_running() {
	postfix -c "$ETC" status >/dev/null 2>&1
}

count_in() {
	n=0
	for d in "$@"; do
		if [ -d "$DIR/queue/$d" ]; then
			c=$(find "$DIR/queue/$d" -type f | wc -l)
			n=$((n + c))
		fi
	done
	echo "$n"
}

port_open() {
	/usr/bin/python3 - "$PORT" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.close()
EOF
}

cmd_start() {
	command -v postfix >/dev/null || die "postfix is not installed"
	case "$PORT$SINK_PORT$HOSTS" in
	*[!0-9]* | "") die "start needs numeric PORT SINK_PORT HOSTS" ;;
	esac
	[ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 200 ] || die "HOSTS must be 1..200"
	if is_running; then
		echo "postfix_relay_setup.sh: stopping the previous instance" >&2
		postfix -c "$ETC" stop
	fi
	# A fresh queue every time: nothing left from an earlier run.
	rm -rf "$DIR/queue"
	mkdir -p "$ETC" "$DIR/queue"
	# data_directory must belong to mail_owner (master.lock, caches).
	install -d -o postfix -g postfix -m 0700 "$DIR/data"
	write_main_cf
	write_transport
	write_master_cf
	: >"$DIR/postfix.log"
	postfix -c "$ETC" check
	postfix -c "$ETC" start
	i=0
	while ! is_running || ! port_open; do
		i=$((i + 1))
		[ "$i" -le 100 ] || die "postfix did not come up; see $DIR/postfix.log"
		sleep 0.1
	done
	echo "postfix_relay_setup.sh: listening on 127.0.0.1:$PORT, relaying" \
		"d1..d$HOSTS.test to 127.0.0.2..:$SINK_PORT (config $ETC)" >&2
}

cmd_stop() {
	if [ -d "$ETC" ] && is_running; then
		postfix -c "$ETC" stop
	fi
}

PORT=${2:-}
SINK_PORT=${3:-}
HOSTS=${4:-}
case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) is_running ;;
queue) count_in maildrop incoming active deferred hold ;;
hold) count_in hold ;;
release) postsuper -c "$ETC" -H ALL ;;
flush) postqueue -c "$ETC" -f ;;
*)
	echo "usage: $0 start PORT SINK_PORT HOSTS | stop | status | queue" \
		"| hold | release | flush" >&2
	exit 64
	;;
esac
