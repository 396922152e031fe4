#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# lib.sh itself: a test that stops on a command that fails without a word (a
# pipeline whose writer got SIGPIPE, a test in a function) prints a FAIL line
# that names it; fail() prints its own line only; a skip (77) prints none.
. "$(dirname "$0")/lib.sh"
LIB="$(cd "$(dirname "$0")" && pwd)/lib.sh"

# child NAME BODY: run BODY as a test script that sources lib.sh; sets rc.
child() {
	printf '. %q\n%s\n' "$LIB" "$2" > "$W/$1.sh"
	rc=0
	bash "$W/$1.sh" > "$W/$1.out" 2> "$W/$1.err" || rc=$?
}

child sigpipe "x=\$(yes | awk '{ print; exit }')
echo not reached"
[ "$rc" = 141 ] || fail "a SIGPIPE'd pipeline: exit $rc, not 141"
out_lacks "$W/sigpipe.out" "not reached"
out_match "$W/sigpipe.err" "^FAIL: exit status 141 at sigpipe.sh:2: x=\$(yes | awk"

child quiet 'check() { [ -e /nonexistent ]; }
check
echo not reached'
[ "$rc" = 1 ] || fail "a failed test in a function: exit $rc, not 1"
out_match "$W/quiet.err" "^FAIL: exit status 1 at quiet.sh:2: \[ -e /nonexistent \]"

child said 'x=$(false) || true
fail "the reason"'
[ "$rc" = 1 ] || fail "fail(): exit $rc"
[ "$(cat "$W/said.err")" = "FAIL: the reason" ] || fail "fail() printed: $(cat "$W/said.err")"

child skip 'exit 77'
[ "$rc" = 77 ] && [ ! -s "$W/skip.err" ] || fail "a skip: exit $rc, said: $(cat "$W/skip.err")"

child pass 'if false; then :; fi
false || true
x=$(false) || true
echo done'
[ "$rc" = 0 ] && [ ! -s "$W/pass.err" ] || fail "a passing test: exit $rc, said: $(cat "$W/pass.err")"
echo ok
