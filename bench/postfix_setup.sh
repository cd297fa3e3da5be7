#!/bin/sh
# bench/postfix_setup.sh: a private, throw-away Postfix instance used as the
# reference point for bench/smtpd_accept.py.
#
# Owns: everything under PFBENCH_DIR (default /tmp/pfbench): etc/ (main.cf,
# master.cf), queue/ (queue_directory), data/ (data_directory) and
# postfix.log (maillog_file).
# Invariants:
#   * The system instance (/etc/postfix, /var/spool/postfix) is never read
#     for writing, started, stopped or reconfigured; every postfix command
#     here is run with "-c $PFBENCH_DIR/etc".
#   * At most one master process serves this directory: "start" stops a
#     previous bench master of the same directory first.
#   * Postfix's durability is left at its defaults: cleanup(8) fsyncs the
#     queue file before smtpd(8) sends 250. Only the delivery side is made
#     cheap (every transport is discard(8)) and the per-client limits are
#     lifted so 50 parallel sessions from 127.0.0.1 are served.
#
# Usage: postfix_setup.sh start [PORT] | stop | status | queue | drain [SECS]
#   start   write the config, create the queue, start master on
#           127.0.0.1:PORT (default 2526)
#   stop    stop this instance (postfix -c DIR stop); no-op when not running
#   status  exit 0 when this instance runs
#   queue   print the number of queue files not yet delivered
#   drain   wait until the queue is empty (default at most 120 s)
set -eu

DIR=${PFBENCH_DIR:-/tmp/pfbench}
ETC=$DIR/etc
PORT=${2:-2526}

die() {
	echo "postfix_setup.sh: $*" >&2
	exit 1
}

write_main_cf() {
	cat >"$ETC/main.cf" <<EOF
# Private benchmark instance written by bench/postfix_setup.sh.
compatibility_level = 3.6
queue_directory = $DIR/queue
data_directory = $DIR/data
maillog_file = $DIR/postfix.log
maillog_file_prefixes = $DIR
myhostname = pfbench.test
mydomain = pfbench.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# Accept everything from localhost as relay mail and throw it away on
# delivery: we measure accepting into the fsync'd queue, not delivery.
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
local_transport = discard
virtual_transport = discard
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
# Enough processes and no per-client limits for 50 sessions from one IP.
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
EOF
}

write_master_cf() {
	# Same services as Debian's master.cf, minus chroot (so no copy of
	# /etc files is needed under the private queue) and minus the
	# pipe-based transports nothing here uses.
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

queue_count() {
	# Messages accepted but not yet delivered (or deferred).
	n=0
	for d in maildrop incoming active deferred hold; do
		if [ -d "$DIR/queue/$d" ]; then
			c=$(find "$DIR/queue/$d" -type f | wc -l)
			n=$((n + c))
		fi
	done
	echo "$n"
}

cmd_start() {
	command -v postfix >/dev/null || die "postfix is not installed"
	if is_running; then
		echo "postfix_setup.sh: stopping the previous bench instance" >&2
		postfix -c "$ETC" stop
	fi
	mkdir -p "$ETC" "$DIR/queue"
	# data_directory must belong to mail_owner (master.lock, caches).
	install -d -o postfix -g postfix -m 0700 "$DIR/data"
	write_main_cf
	write_master_cf
	: >"$DIR/postfix.log"
	postfix -c "$ETC" check
	postfix -c "$ETC" start
	# master forks; wait until it answers on the port.
	i=0
	while ! is_running || ! port_open; do
		i=$((i + 1))
		[ "$i" -le 100 ] || die "bench postfix did not come up; see $DIR/postfix.log"
		sleep 0.1
	done
	echo "postfix_setup.sh: bench postfix listening on 127.0.0.1:$PORT (config $ETC)" >&2
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

cmd_stop() {
	if [ -d "$ETC" ] && is_running; then
		postfix -c "$ETC" stop
	fi
}

cmd_drain() {
	limit=${1:-120}
	start=$(date +%s)
	while [ "$(queue_count)" -ne 0 ]; do
		if [ $(($(date +%s) - start)) -ge "$limit" ]; then
			die "queue still holds $(queue_count) files after ${limit}s"
		fi
		sleep 0.2
	done
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) is_running ;;
queue) queue_count ;;
drain) cmd_drain "${2:-120}" ;;
*)
	echo "usage: $0 start [PORT] | stop | status | queue | drain [SECS]" >&2
	exit 64
	;;
esac
