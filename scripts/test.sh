#!/bin/bash
# Install, build and run the whole cairn test suite: a normal build, an ASan+UBSan
# build, the core unit tests under valgrind, libFuzzer targets, and the
# clang-format check. The ASan and fuzz trees compile (niced) while the normal
# build's tests run.
# Prints one final line "N passed, N failed, N skipped" summed over every run.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test || { echo "cairn: dependency installation failed"; exit 1; }

passed=0 failed=0 skipped=0 status=0
# Sum meson's "Ok: / Fail: / Skipped: / Timeout:" summary of one run into the totals.
tally() {
	local log=$1 ok fail skip tmo xpass
	ok=$(awk '/^Ok:/{print $2}' "$log" | tail -1)
	fail=$(awk '/^Fail:/{print $2}' "$log" | tail -1)
	skip=$(awk '/^Skipped:/{print $2}' "$log" | tail -1)
	tmo=$(awk '/^Timeout:/{print $2}' "$log" | tail -1)
	xpass=$(awk '/^Unexpected Pass:/{print $3}' "$log" | tail -1)
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-0} + ${tmo:-0} + ${xpass:-0}))
	skipped=$((skipped + ${skip:-0}))
	[ -n "$ok" ] || { failed=$((failed + 1)); echo "cairn: no test summary in $log"; }
}

run() { # name, then the command
	local name=$1; shift
	echo "=== $name: $*"
	"$@" 2>&1 | tee "/tmp/cairn-ci-$name.log"
	local rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || status=1
	return "$rc"
}

build() { # dir, then meson options
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" --werror "$@" || return 1
	fi
	ninja -C "$dir"
}

# libFuzzer: every tests/fuzz/fuzz-*.c target is built with clang in an ASan+UBSan
# tree and runs for FUZZ_SECONDS (default 20) from its seed corpus; a crash, leak
# or timeout, a failed build, a target that was not built, or no clang at all
# (install-deps installs it) fails. FUZZ_SECONDS=0 leaves fuzzing out.
fuzz_seconds=${FUZZ_SECONDS:-20}
fuzz_fail() { echo "cairn: $*"; failed=$((failed + 1)); status=1; }
fuzz_setup() { # a tree from an older run gets today's options too
	local opts=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
		-Dc_args=-fno-sanitize-recover=all)
	if [ -f build-fuzz/build.ninja ]; then
		meson configure build-fuzz "${opts[@]}"
	else
		CC=clang meson setup build-fuzz "${opts[@]}"
	fi
}
asan_opts=(-Db_sanitize=address,undefined -Dc_args=-fno-sanitize-recover=all)
if build build; then
	# The sanitizer and fuzz trees compile meanwhile, at the lowest priority:
	# the tests wait on servers, mounts and polls for much of their time, and
	# the compiles take that time instead of a few minutes of their own later.
	# Their logs are looked at (and the builds finished) where they are used.
	prebuild_log=/tmp/cairn-ci-prebuild.log
	(
		renice -n 19 -p "$BASHPID" >/dev/null
		build build-asan "${asan_opts[@]}"
		if [ "$fuzz_seconds" -gt 0 ] && command -v clang >/dev/null; then
			fuzz_setup && ninja -C build-fuzz
		fi
	) </dev/null >"$prebuild_log" 2>&1 &
	prebuild_pid=$!
	run normal meson test -C build --print-errorlogs --num-processes 2
	tally /tmp/cairn-ci-normal.log
else
	echo "cairn: build failed"; failed=$((failed + 1)); status=1
fi

# A failure of the early compile shows again, with its messages, here.
[ -z "${prebuild_pid:-}" ] || wait "$prebuild_pid" || true
if build build-asan "${asan_opts[@]}"; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1 \
		run asan meson test -C build-asan --print-errorlogs --num-processes 2
	tally /tmp/cairn-ci-asan.log
else
	echo "cairn: sanitizer build failed"; failed=$((failed + 1)); status=1
fi

if [ -f build/build.ninja ]; then
	run valgrind meson test -C build --setup=valgrind --suite unit --print-errorlogs \
		--num-processes 2
	tally /tmp/cairn-ci-valgrind.log
fi

# fuzz_one NAME: run one target from its seed corpus; NAME.ok marks success (a
# crash, leak or timeout, or no executed unit, leaves it out).
fuzz_one() {
	local name=$1 scratch
	scratch=$(mktemp -d)
	rm -f "/tmp/cairn-fuzz-$name.ok"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1 \
		"build-fuzz/tests/fuzz/fuzz-$name" -max_total_time="$fuzz_seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$scratch" "tests/fuzz/corpus/$name" \
		>"/tmp/cairn-fuzz-$name.log" 2>&1 &&
		grep -q '^stat::number_of_executed_units: *[1-9]' "/tmp/cairn-fuzz-$name.log" &&
		touch "/tmp/cairn-fuzz-$name.ok"
	rm -rf "$scratch"
}
if [ "$fuzz_seconds" -gt 0 ]; then
	fuzz_ok=true
	if ! command -v clang >/dev/null; then
		fuzz_fail "clang is not installed: cannot build the fuzz targets"
		fuzz_ok=false
	elif ! fuzz_setup >/tmp/cairn-fuzz-setup.log 2>&1; then
		tail -20 /tmp/cairn-fuzz-setup.log
		fuzz_fail "fuzz build setup failed"
		fuzz_ok=false
	elif ! ninja -C build-fuzz >/tmp/cairn-fuzz-build.log 2>&1; then
		tail -30 /tmp/cairn-fuzz-build.log
		fuzz_fail "fuzz build failed"
		fuzz_ok=false
	fi
	# One target per core at a time: each is single-threaded.
	jobs_max=$(nproc 2>/dev/null || echo 2)
	names=()
	for src in tests/fuzz/fuzz-*.c; do
		$fuzz_ok || break
		name=$(basename "$src" .c)
		name=${name#fuzz-}
		if [ ! -x "build-fuzz/tests/fuzz/fuzz-$name" ]; then
			fuzz_fail "fuzz target fuzz-$name was not built (missing from tests/fuzz/meson.build?)"
		elif [ ! -d "tests/fuzz/corpus/$name" ]; then
			fuzz_fail "fuzz target fuzz-$name has no seed corpus tests/fuzz/corpus/$name"
		else
			while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
			echo "=== fuzz $name (${fuzz_seconds}s)"
			fuzz_one "$name" &
			names+=("$name")
		fi
	done
	wait
	for name in "${names[@]}"; do
		if [ -e "/tmp/cairn-fuzz-$name.ok" ]; then
			passed=$((passed + 1))
		else
			echo "fuzz-$name FAILED:"; tail -30 "/tmp/cairn-fuzz-$name.log"
			failed=$((failed + 1)); status=1
		fi
	done
fi

if command -v clang-format >/dev/null; then
	bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c warning || true)
	if [ "$bad" -gt 0 ]; then
		echo "clang-format: $bad formatting differences"
		git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep warning | head -20
		failed=$((failed + 1)); status=1
	else
		passed=$((passed + 1))
	fi
fi

[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
