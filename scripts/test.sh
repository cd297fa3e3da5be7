#!/bin/sh
# Installs the test dependencies, then builds and runs every test twice:
# a normal build and an AddressSanitizer + UBSan build, then a short
# libFuzzer run of each fuzz target. Then it builds the static binaries
# (scripts/build-static.sh), runs the integration tests once more against
# them, and runs the container tests (images, docker compose, the e2e
# overlay; they need a Docker engine). Ends with a formatting check.
#
#   scripts/test.sh            everything
#   SKIP_SANITIZE=1 scripts/test.sh   normal build only (faster)
#   SKIP_STATIC=1 SKIP_CONTAINERS=1 scripts/test.sh   without those stages
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)
PYTEST="/usr/bin/python3 -m pytest -q -p no:cacheprovider"

scripts/install-deps.sh

STEP_START=$(date +%s)
step() {
	now=$(date +%s)
	printf '\n=== %s (previous step: %ss)\n' "$*" $((now - STEP_START))
	STEP_START=$now
}

run_suite() { # build dir, extra cmake args...
	dir=$1
	shift
	step "build $dir"
	cmake -B "$dir" -S . "$@" >/dev/null
	cmake --build "$dir" -j"$JOBS"
	step "unit tests ($dir)"
	(cd "$dir" && ctest --output-on-failure -j"$JOBS")
	step "integration tests ($dir)"
	SMTPD_BIN="$ROOT/$dir/smtpd" SENDER_BIN="$ROOT/$dir/sender" \
		$PYTEST tests/integration
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [ -z "${SKIP_SANITIZE:-}" ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DMTA_SANITIZE=ON

	step "fuzz (short runs)"
	CC=clang cmake -B build-fuzz -S . -DMTA_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-fuzz -j"$JOBS"
	for f in build-fuzz/fuzz_*; do
		name=$(basename "$f")
		work=$(mktemp -d)
		cp tests/fuzz/corpus/"$name"/* "$work"/
		"$f" -max_total_time="${FUZZ_SECONDS:-20}" -print_final_stats=0 \
			-artifact_prefix="$ROOT/build-fuzz/" \
			"$work" 2>"$work.log" || {
			tail -50 "$work.log"
			echo "fuzz target $name failed" >&2
			exit 1
		}
		echo "$name: $(grep -c '' "$work.log") log lines, no crash"
		rm -rf "$work" "$work.log"
	done
fi

if [ -z "${SKIP_STATIC:-}" ]; then
	step "static build"
	scripts/build-static.sh
	step "integration tests (static binaries)"
	SMTPD_BIN="$ROOT/build-static/smtpd" SENDER_BIN="$ROOT/build-static/sender" \
		$PYTEST tests/integration
fi

if [ -z "${SKIP_CONTAINERS:-}" ]; then
	step "container tests"
	# With a Docker client here, an engine that does not answer fails the
	# run instead of skipping these tests.
	if command -v docker >/dev/null; then
		export MTA_REQUIRE_DOCKER=1
	fi
	$PYTEST -rs tests/container
fi

step "format"
find src tests -name '*.[ch]' -print0 |
	xargs -0 clang-format --dry-run -Werror
echo "all tests passed"
