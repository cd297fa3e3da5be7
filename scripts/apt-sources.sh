#!/bin/sh
# Prints the machine's enabled Debian archive entries for its own release,
# read from its apt sources (deb822 files in sources.list.d/*.sources and
# one-line sources.list files), one line per suite:
#
#   URI SUITE COMPONENT... [signed-by=FILE]
#
# Only suites of this release (bookworm, bookworm-updates,
# bookworm-security, ...) are printed, so third-party repositories are left
# out. The build scripts use it to fetch from the mirror this machine
# already uses, never from a host named in the tree.
#
#   scripts/apt-sources.sh            all entries of this release
#   scripts/apt-sources.sh --mirror   only the URI of the release itself
set -eu

ETC=${APT_ETC:-/etc/apt}
CODENAME=${CODENAME:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$CODENAME" ] || {
	echo "apt-sources: no VERSION_CODENAME in /etc/os-release" >&2
	exit 1
}

deb822() { # files...
	awk -v code="$CODENAME" '
	function flush(   n, i, u, s, nu, ns, us, ss) {
		if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
			nu = split(uris, us, " ")
			ns = split(suites, ss, " ")
			for (u = 1; u <= nu; u++)
				for (s = 1; s <= ns; s++) {
					if (ss[s] != code && index(ss[s], code "-") != 1)
						continue
					line = us[u] " " ss[s] " " comps
					if (signed ~ /^\//)
						line = line " signed-by=" signed
					print line
				}
		}
		types = uris = suites = comps = signed = enabled = ""
		field = ""
	}
	/^#/ { next }
	/^[ \t]*$/ { flush(); next }
	/^[ \t]/ {	# continuation: only Signed-By (an inline key) uses it
		if (field == "signed-by") signed = "inline"
		next
	}
	{
		field = tolower(substr($0, 1, index($0, ":") - 1))
		value = substr($0, index($0, ":") + 1)
		gsub(/^[ \t]+|[ \t]+$/, "", value)
		gsub(/[ \t]+/, " ", value)
		if (field == "types") types = value
		else if (field == "uris") uris = value
		else if (field == "suites") suites = value
		else if (field == "components") comps = value
		else if (field == "signed-by") signed = value
		else if (field == "enabled") enabled = value
	}
	END { flush() }
	' "$@"
}

oneline() { # files...
	awk -v code="$CODENAME" '
	/^[ \t]*deb[ \t]/ {
		signed = ""
		i = 2
		if ($2 ~ /^\[/) {
			for (; i <= NF; i++) {
				if ($i ~ /^\[?signed-by=/) {
					signed = $i
					sub(/^\[?signed-by=/, "", signed)
					sub(/\]$/, "", signed)
				}
				if ($i ~ /\]$/) break
			}
			i++
		}
		uri = $i
		suite = $(i + 1)
		if (suite != code && index(suite, code "-") != 1)
			next
		line = uri " " suite
		for (j = i + 2; j <= NF && $j !~ /^#/; j++)
			line = line " " $j
		if (signed != "")
			line = line " signed-by=" signed
		print line
	}' "$@"
}

entries() {
	for f in "$ETC"/sources.list.d/*.sources; do
		[ -f "$f" ] && deb822 "$f"
	done
	for f in "$ETC"/sources.list "$ETC"/sources.list.d/*.list; do
		[ -f "$f" ] && oneline "$f"
	done
	return 0
}

if [ "${1:-}" = "--mirror" ]; then
	uri=$(entries | awk -v code="$CODENAME" '$2 == code { print $1; exit }')
	[ -n "$uri" ] || {
		echo "apt-sources: no '$CODENAME' entry in $ETC/sources.list*" >&2
		exit 1
	}
	echo "$uri"
else
	entries | awk '!seen[$0]++'
fi
