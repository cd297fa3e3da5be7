#!/bin/sh
# Creates the Docker image debian:bookworm-slim locally when the engine
# does not have it, for machines that cannot pull from a registry: a
# minimal Debian (debootstrap --variant=minbase) from the mirror this
# machine's apt sources name, imported with `docker import`. Its apt
# sources are this machine's entries for bookworm, so builds inside it use
# the same mirror. Needs root and debootstrap (scripts/install-deps.sh).
#
#   scripts/make-base-image.sh           create it unless present
#   scripts/make-base-image.sh --force   create it again
#   BASE_IMAGE=name:tag scripts/make-base-image.sh   another tag
set -eu
cd "$(dirname "$0")/.."

SUITE=bookworm
IMAGE=${BASE_IMAGE:-debian:$SUITE-slim}

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "make-base-image: $IMAGE is present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "make-base-image: $IMAGE is missing; run as root to create it" >&2
	exit 1
fi
command -v debootstrap >/dev/null || {
	echo "make-base-image: debootstrap is missing (scripts/install-deps.sh)" >&2
	exit 1
}

entries=$(CODENAME=$SUITE scripts/apt-sources.sh)
mirror=$(echo "$entries" | awk -v s=$SUITE '$2 == s { print $1; exit }')
[ -n "$mirror" ] || {
	echo "make-base-image: no '$SUITE' entry in this machine's apt sources" >&2
	exit 1
}
keyring=$(echo "$entries" | awk -v s=$SUITE '$2 == s {
	for (i = 3; i <= NF; i++) if ($i ~ /^signed-by=/) print substr($i, 11)
	exit }')

work=$(mktemp -d /var/tmp/mta-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs

echo "make-base-image: debootstrap $SUITE from the machine's mirror"
debootstrap --variant=minbase ${keyring:+--keyring="$keyring"} \
	"$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
	tail -30 "$work/debootstrap.log" >&2
	tail -30 "$root/debootstrap/debootstrap.log" 2>/dev/null >&2
	echo "make-base-image: debootstrap failed" >&2
	exit 1
}

# The machine's own entries for this release, as deb822, and their keys.
rm -f "$root/etc/apt/sources.list"
echo "$entries" | while read -r uri suite rest; do
	comps="" key=""
	for w in $rest; do
		case $w in
		signed-by=*) key=${w#signed-by=} ;;
		*) comps="$comps $w" ;;
		esac
	done
	printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents:%s\n' \
		"$uri" "$suite" "$comps"
	if [ -n "$key" ]; then
		printf 'Signed-By: %s\n' "$key"
		if [ ! -e "$root$key" ]; then
			mkdir -p "$root$(dirname "$key")"
			cp "$key" "$root$key"
		fi
	fi
	echo
done >"$root/etc/apt/sources.list.d/debian.sources"

# Slim like the published image: no documentation, no apt caches.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
find "$root/usr/share/man" "$root/usr/share/info" -mindepth 1 -delete
find "$root/usr/share/locale" -mindepth 1 ! -name locale.alias -delete
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
	"$root"/var/log/* "$root"/tmp/* "$root"/debootstrap
# The engine provides these per container.
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

tar --numeric-owner -C "$root" -c . | docker import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["bash"]' \
	--message "debootstrap --variant=minbase $SUITE" - "$IMAGE" >/dev/null
echo "make-base-image: created $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
