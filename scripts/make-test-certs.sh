#!/bin/sh
# Makes what smtpd needs to try STARTTLS and AUTH locally: a test CA, a
# server certificate signed by it and its key, and optionally a users file
# (auth.users_file) with one user. Nothing leaves the machine; only the
# openssl command is used.
#
#   scripts/make-test-certs.sh                       ./run/tls, host localhost
#   scripts/make-test-certs.sh --user alice --password 'secret'
#   scripts/make-test-certs.sh --host mail.example.test --dir /srv/mta/tls
#   echo 'secret' | scripts/make-test-certs.sh --user alice --password -
#
# Writes into the folder (default ./run/tls):
#   ca.pem      the test CA's certificate: what clients must trust
#   ca.key      its private key (0600, never mounted anywhere)
#   server.pem  the server certificate (tls.cert): CN and DNS name = --host,
#               plus localhost, 127.0.0.1 and ::1 as subject alt names
#   server.key  its private key (tls.key)
#   users       "user:$6$..." lines (auth.users_file), SHA-512-crypt
#
# Idempotent: a file that is still right is kept. The CA stays as long as
# it exists; the server certificate is made again only when it is missing,
# not signed by this CA, made for another host, does not match its key or
# expires within 30 days; the user's line is rewritten only when the given
# password does not match it. Other users' lines are kept.
#
# server.key and users are made readable by everyone (0644) so that smtpd
# in its container (UID 10025) can read them through a bind mount: this is
# test material, never a real key or password.
set -eu

DIR=./run/tls
HOST=localhost
USER_NAME=
PASSWORD=
HAVE_PASSWORD=0
CA_DAYS=3650
DAYS=365

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

die() {
	echo "make-test-certs: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	-d | --dir) [ $# -ge 2 ] || die "$1 needs a value"; DIR=$2; shift 2 ;;
	-n | --host) [ $# -ge 2 ] || die "$1 needs a value"; HOST=$2; shift 2 ;;
	-u | --user) [ $# -ge 2 ] || die "$1 needs a value"; USER_NAME=$2; shift 2 ;;
	-p | --password)
		[ $# -ge 2 ] || die "$1 needs a value"
		PASSWORD=$2
		HAVE_PASSWORD=1
		shift 2
		;;
	--days) [ $# -ge 2 ] || die "$1 needs a value"; DAYS=$2; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "make-test-certs: unknown argument: $1" >&2; usage 64 >&2 ;;
	esac
done

command -v openssl >/dev/null || die "the openssl command is missing (Debian package openssl)"

# What goes into an openssl extension file or a users line must not be able
# to add options or lines of its own.
case $HOST in
'' | *[!A-Za-z0-9.:-]*) die "--host: letters, digits, '.', '-' and ':' only: '$HOST'" ;;
esac
case $DAYS in '' | *[!0-9]*) die "--days: a number of days: '$DAYS'" ;; esac
if [ -n "$USER_NAME" ]; then
	case $USER_NAME in
	*[!A-Za-z0-9._@+-]*) die "--user: letters, digits and . _ @ + - only: '$USER_NAME'" ;;
	esac
	if [ "$PASSWORD" = - ]; then
		IFS= read -r PASSWORD || [ -n "$PASSWORD" ] || die "no password on standard input"
	fi
	[ "$HAVE_PASSWORD" = 1 ] && [ -n "$PASSWORD" ] || die "--user needs --password (or --password - to read it from standard input)"
elif [ "$HAVE_PASSWORD" = 1 ]; then
	die "--password needs --user"
fi

mkdir -p "$DIR"
# The folder may be bind-mounted as a whole: let UID 10025 look inside.
chmod 0755 "$DIR"
cd "$DIR"
umask 077

# Started without these files, Docker creates empty folders in their place
# (bind-mount sources); they would swallow the files made below.
for f in server.pem server.key users; do
	if [ -d "$f" ]; then
		rmdir "$f" 2>/dev/null || die "$DIR/$f is a folder that is not empty"
		echo "removed  $DIR/$f/ (an empty folder in place of the file)"
	fi
done

# The host as a subject alt name: an address is an IP entry, a name DNS.
case $HOST in
*:*) SAN_HOST="IP:$HOST" ;;
*[!0-9.]*) SAN_HOST="DNS:$HOST" ;;
*) SAN_HOST="IP:$HOST" ;;
esac
SAN="$SAN_HOST"
[ "$HOST" = localhost ] || SAN="$SAN,DNS:localhost"
[ "$HOST" = 127.0.0.1 ] || SAN="$SAN,IP:127.0.0.1"
[ "$HOST" = ::1 ] || SAN="$SAN,IP:::1"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-test-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

ossl() {
	openssl "$@" >"$tmp/out" 2>&1 || {
		cat "$tmp/out" >&2
		die "openssl $1 failed"
	}
}

# EC P-256 keys: quick to make, taken by every current mail client.
make_key() {
	ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

make_ca() {
	if [ -s ca.pem ] && [ -s ca.key ] &&
		openssl x509 -in ca.pem -noout -checkend 2592000 >/dev/null 2>&1; then
		echo "kept     $DIR/ca.pem (test CA)"
		return
	fi
	make_key "$tmp/ca.key"
	cat >"$tmp/ca.ext" <<-EOF
		[req]
		distinguished_name = dn
		x509_extensions = v3_ca
		prompt = no
		[dn]
		CN = mta test CA $(date -u +%Y-%m-%dT%H:%M:%SZ)
		[v3_ca]
		basicConstraints = critical, CA:TRUE, pathlen:0
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
	EOF
	ossl req -x509 -new -key "$tmp/ca.key" -config "$tmp/ca.ext" \
		-days "$CA_DAYS" -sha256 -out "$tmp/ca.pem"
	mv "$tmp/ca.key" ca.key
	chmod 0644 "$tmp/ca.pem"
	mv "$tmp/ca.pem" ca.pem
	# A new CA invalidates the server certificate signed by the old one.
	rm -f server.pem
	echo "made     $DIR/ca.pem (test CA; its key ca.key stays here, 0600)"
}

server_is_good() {
	[ -s server.pem ] && [ -s server.key ] || return 1
	openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1 || return 1
	# Made for another --host: the subject differs (the other alt names
	# are the same for every host).
	subject=$(openssl x509 -in server.pem -noout -subject -nameopt RFC2253 2>/dev/null)
	[ "$subject" = "subject=CN=$HOST" ] || return 1
	openssl x509 -in server.pem -noout -checkend 2592000 >/dev/null 2>&1 || return 1
	case $SAN_HOST in
	IP:*) check="-checkip $HOST" ;;
	*) check="-checkhost $HOST" ;;
	esac
	# shellcheck disable=SC2086
	openssl x509 -in server.pem -noout $check 2>/dev/null | grep -q 'does match' || return 1
	a=$(openssl x509 -in server.pem -noout -pubkey 2>/dev/null) || return 1
	b=$(openssl pkey -in server.key -pubout 2>/dev/null) || return 1
	[ "$a" = "$b" ]
}

make_server() {
	if server_is_good; then
		echo "kept     $DIR/server.pem (CN=$HOST, $SAN)"
		return
	fi
	make_key "$tmp/server.key"
	cat >"$tmp/server.ext" <<-EOF
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = serverAuth
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
		subjectAltName = $SAN
	EOF
	ossl req -new -key "$tmp/server.key" -subj "/CN=$HOST" -out "$tmp/server.csr"
	ossl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey ca.key \
		-set_serial "0x$(openssl rand -hex 12)" -days "$DAYS" -sha256 \
		-extfile "$tmp/server.ext" -out "$tmp/server.pem"
	chmod 0644 "$tmp/server.pem" "$tmp/server.key"
	mv "$tmp/server.key" server.key
	mv "$tmp/server.pem" server.pem
	echo "made     $DIR/server.pem (CN=$HOST, $SAN; $DAYS days)"
}

hash_password() { # [salt]: reads the password on stdin, never from argv
	if [ $# -gt 0 ]; then
		printf '%s\n' "$PASSWORD" | openssl passwd -6 -salt "$1" -stdin
	else
		printf '%s\n' "$PASSWORD" | openssl passwd -6 -stdin
	fi
}

make_users() {
	[ -n "$USER_NAME" ] || return 0
	old=
	[ -f users ] && old=$(awk -F: -v u="$USER_NAME" '$1 == u { sub(/^[^:]*:/, ""); print; exit }' users)
	case $old in
	'$6$'*)
		salt=$(echo "$old" | cut -d'$' -f3)
		if [ "$(hash_password "$salt")" = "$old" ]; then
			chmod 0644 users
			echo "kept     $DIR/users (user $USER_NAME, password unchanged)"
			return
		fi
		;;
	esac
	h=$(hash_password) || die "openssl passwd -6 failed"
	case $h in '$6$'*) ;; *) die "openssl passwd -6 gave no SHA-512-crypt hash" ;; esac
	{
		[ -f users ] && awk -F: -v u="$USER_NAME" '$1 != u' users
		printf '%s:%s\n' "$USER_NAME" "$h"
	} >"$tmp/users"
	chmod 0644 "$tmp/users"
	mv "$tmp/users" users
	echo "wrote    $DIR/users (user $USER_NAME, SHA-512-crypt)"
}

make_ca
make_server
make_users

cat <<EOF

smtpd:    tls.cert server.pem, tls.key server.key${USER_NAME:+, auth.users_file users}
clients:  trust ca.pem, or accept the certificate once (it is self-made)
try it:   docker-compose -f docker-compose.yml -f docker-compose.tls.yml up -d
          swaks --server 127.0.0.1:587 --tls --auth PLAIN --auth-user ${USER_NAME:-USER} \\
            --auth-password '...' --from you@example.org --to someone@example.net
EOF
