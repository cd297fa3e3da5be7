#!/bin/sh
# Installs what building and testing needs, from Debian's packages.
# As root it runs apt-get; otherwise it only reports what is missing.
set -eu

PACKAGES="gcc make cmake pkg-config libc-ares-dev libyaml-dev
libcurl4-openssl-dev python3 python3-pytest python3-aiosmtpd swaks clang
clang-format libclang-rt-14-dev dnsmasq-base strace libssl-dev dpkg-dev file
ca-certificates debootstrap openssl libnet-ssleay-perl libcrypt-dev valgrind"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "run as root: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
