#!/bin/sh
# Builds fully static, stripped `smtpd` and `sender` with c-ares, libyaml,
# libcurl and OpenSSL linked in.
#
# Debian's libcurl.a cannot be linked statically (its Kerberos, LDAP and
# other dependencies ship no static libraries), so a minimal libcurl is
# built first from Debian's own curl source package (`apt-get source curl`
# from the deb-src twins of this machine's apt entries): HTTP and HTTPS
# only, c-ares as resolver (no resolver thread), OpenSSL for TLS, nothing
# else. It is kept under the build folder, so later runs reuse it without
# the network.
#
#   scripts/build-static.sh              -> build-static/smtpd, build-static/sender
#   scripts/build-static.sh --deps-only  only the minimal libcurl
#   BUILD_DIR=/path scripts/build-static.sh
#
# Needs what scripts/install-deps.sh installs. The first run fetches the
# curl source with apt-get, using a private package list under the build
# folder (the machine's apt setup is left alone; root is not needed).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${BUILD_DIR:-$ROOT/build-static}
JOBS=$(nproc 2>/dev/null || echo 2)
CURL_DIR=$OUT/curl
PREFIX=$CURL_DIR/prefix

# Everything the minimal libcurl does not need is switched off; unknown
# switches only warn, so the list also fits newer curl releases.
CURL_CONFIGURE="--disable-shared --enable-static --with-pic
--with-openssl --enable-ares --disable-threaded-resolver
--enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps
--disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3
--disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt
--disable-manual --disable-docs --disable-ntlm-wb --disable-unix-sockets
--disable-netrc
--without-zlib --without-brotli --without-zstd --without-libidn2
--without-libpsl --without-nghttp2 --without-nghttp3 --without-ngtcp2
--without-libssh2 --without-libssh --without-librtmp --without-gssapi
--without-hyper --without-libgsasl
--with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --without-ca-path"

say() { printf 'build-static: %s\n' "$*"; }
die() {
	printf 'build-static: %s\n' "$*" >&2
	exit 1
}

check_tools() {
	for t in gcc make cmake pkg-config strip; do
		command -v "$t" >/dev/null || die "$t is missing (scripts/install-deps.sh)"
	done
	for lib in c cares yaml ssl crypto crypt; do
		gcc -print-file-name="lib$lib.a" | grep -q / ||
			die "lib$lib.a is missing (scripts/install-deps.sh)"
	done
}

# apt-get with a private source list and package lists: deb-src entries
# for the mirror this machine uses, without touching its apt setup.
apt_private() {
	apt-get -q -o Dir::Etc::SourceList="$CURL_DIR/apt/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$CURL_DIR/apt/lists" \
		-o Dir::Cache="$CURL_DIR/apt/cache" \
		-o APT::Sandbox::User="$(id -un)" "$@"
}

fetch_curl_source() {
	command -v dpkg-source >/dev/null || die "dpkg-source is missing (dpkg-dev)"
	rm -rf "$CURL_DIR/apt" "$CURL_DIR/src"
	mkdir -p "$CURL_DIR/apt/lists/partial" \
		"$CURL_DIR/apt/cache/archives/partial" "$CURL_DIR/src"
	scripts/apt-sources.sh | while read -r uri suite rest; do
		opts="" comps=""
		for w in $rest; do
			case $w in
			signed-by=*) opts="[$w] " ;;
			*) comps="$comps $w" ;;
			esac
		done
		echo "deb-src $opts$uri $suite$comps"
	done >"$CURL_DIR/apt/sources.list"
	[ -s "$CURL_DIR/apt/sources.list" ] ||
		die "no Debian entries in this machine's apt sources"
	say "fetching Debian's curl source package"
	apt_private update >"$CURL_DIR/apt/update.log" 2>&1 || {
		cat "$CURL_DIR/apt/update.log" >&2
		die "apt-get update (deb-src) failed"
	}
	(cd "$CURL_DIR/src" && apt_private source curl) \
		>"$CURL_DIR/apt/source.log" 2>&1 || {
		cat "$CURL_DIR/apt/source.log" >&2
		die "apt-get source curl failed"
	}
}

build_curl() {
	fetch_curl_source
	dsc=$(ls "$CURL_DIR"/src/curl_*.dsc)
	srcdir=$(find "$CURL_DIR/src" -mindepth 1 -maxdepth 1 -type d -name 'curl-*')
	[ -n "$srcdir" ] && [ -x "$srcdir/configure" ] ||
		die "unpacked curl source not found under $CURL_DIR/src"
	say "building minimal libcurl from $(basename "$dsc" .dsc)"
	# Debian's patches touch autotools inputs; keep the shipped configure
	# and Makefiles (regenerating them needs autoconf and automake).
	touch "$srcdir/aclocal.m4"
	touch "$srcdir/configure" "$srcdir/lib/curl_config.h.in"
	find "$srcdir" -name Makefile.in -exec touch {} +
	rm -rf "$CURL_DIR/build" "$PREFIX.tmp"
	mkdir -p "$CURL_DIR/build"
	# shellcheck disable=SC2086
	(cd "$CURL_DIR/build" &&
		"$srcdir/configure" --prefix="$PREFIX.tmp" $CURL_CONFIGURE \
			CFLAGS="-O2 -ffunction-sections -fdata-sections" &&
		make -C lib -j"$JOBS" &&
		make -C lib install && make -C include install &&
		make install-pkgconfigDATA install-binSCRIPTS) \
		>"$CURL_DIR/build.log" 2>&1 || {
		tail -40 "$CURL_DIR/build.log" >&2
		die "libcurl build failed (log: $CURL_DIR/build.log)"
	}
	basename "$dsc" .dsc >"$PREFIX.tmp/SOURCE"
	echo $CURL_CONFIGURE >"$PREFIX.tmp/CONFIGURE"
	rm -f "$PREFIX.tmp"/lib/*.la
	rm -rf "$PREFIX"
	mv "$PREFIX.tmp" "$PREFIX"
	# The prefix is moved after install: point the .pc file at its place.
	sed -i "s|$PREFIX.tmp|$PREFIX|g" "$PREFIX/lib/pkgconfig/libcurl.pc" \
		"$PREFIX/bin/curl-config"
	rm -rf "$CURL_DIR/build" "$CURL_DIR/src" "$CURL_DIR/apt"
}

ensure_curl() {
	# Reused only when built with the switches above.
	if [ -f "$PREFIX/lib/libcurl.a" ] && [ -f "$PREFIX/SOURCE" ] &&
		[ "$(cat "$PREFIX/CONFIGURE" 2>/dev/null)" = "$(echo $CURL_CONFIGURE)" ]; then
		say "reusing libcurl from $(cat "$PREFIX/SOURCE") ($PREFIX)"
		return
	fi
	build_curl
	say "libcurl features: $("$PREFIX/bin/curl-config" --protocols | tr '\n' ' ')"
}

build_binaries() {
	say "building static smtpd and sender"
	PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
		cmake -S "$ROOT" -B "$OUT/cmake" -DMTA_STATIC=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/cmake.log" 2>&1 || {
		cat "$OUT/cmake.log" >&2
		die "cmake failed"
	}
	cmake --build "$OUT/cmake" -j"$JOBS" --target smtpd sender >"$OUT/make.log" 2>&1 || {
		tail -40 "$OUT/make.log" >&2
		die "build failed (log: $OUT/make.log)"
	}
	for b in smtpd sender; do
		strip -o "$OUT/$b" "$OUT/cmake/$b"
		if ldd "$OUT/$b" >/dev/null 2>&1; then
			die "$OUT/$b is dynamically linked"
		fi
		if command -v file >/dev/null; then
			file -b "$OUT/$b" | grep -q 'statically linked' ||
				die "$OUT/$b: $(file -b "$OUT/$b")"
		fi
		"$OUT/$b" --version >/dev/null || die "$OUT/$b --version failed"
	done
}

check_tools
mkdir -p "$OUT"
ensure_curl
[ "${1:-}" = "--deps-only" ] && exit 0
build_binaries
for b in smtpd sender; do
	say "$OUT/$b: $(wc -c <"$OUT/$b") bytes, static, stripped"
done
