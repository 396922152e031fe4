#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGINT, SIGTERM and SIGHUP stop a restore or a prune cleanly: one line, exit
# status 1, no temp file left, no lock left. A restore run again after one was
# killed with -9 removes the temp files that one left, and nothing else.
#
# CAIRN_TEST_STOP_POINT=STEP stops the command (SIGSTOP) at STEP: restore-file
# (tools/restorer.c) once a file's temp copy exists; after-mark (tools/maint.c)
# once prune has read the snapshots, before it writes anything. The signal is
# sent while it is stopped and acts once it goes on (SIGCONT).
. "$(dirname "$0")/lib.sh"

R=$(realpath "$W")
O="$R/o"
SRC="$R/src"
T="$R/t"
mkdir -p "$O" "$SRC/d"
init_repo --chunk-size 64K/128K/512K --pack-size 1M
head -c 3000000 /dev/urandom > "$SRC/d/big"
echo small > "$SRC/d/small"
"$CAIRN" backup "$SRC" > /dev/null

temps() { find "$T" -name '.cairn-tmp.*'; }
# signal_stopped PID SIG: send SIG to the stopped PID, let it go on, and set rc
# to its exit status.
signal_stopped() {
	rc=0
	kill -"$2" "$1"
	kill -CONT "$1"
	wait "$1" || rc=$?
}

# ---- restore: a signal ------------------------------------------------------
for sig in INT TERM HUP; do
	rm -rf "$T"
	CAIRN_TEST_STOP_POINT=restore-file "$CAIRN" restore latest --target "$T" \
		> "$O/out" 2> "$O/err" &
	p=$!
	wait_stopped "$p" "the restore"
	[ -n "$(temps)" ] || fail "no temp file in the stopped restore's target"
	signal_stopped "$p" "$sig"
	[ "$rc" = 1 ] || fail "restore stopped by SIG$sig exited $rc: $(cat "$O/err")"
	[ "$(cat "$O/err")" = "cairn: restore interrupted" ] ||
		fail "restore stopped by SIG$sig said: $(cat "$O/err")"
	[ -z "$(temps)" ] || fail "restore stopped by SIG$sig left $(temps)"
done

# ---- restore: kill -9, then again --------------------------------------------
rm -rf "$T"
CAIRN_TEST_STOP_POINT=restore-file "$CAIRN" restore latest --target "$T" > /dev/null 2>&1 &
p=$!
wait_stopped "$p" "the restore"
kill -KILL "$p"
{ wait "$p" || true; } 2> /dev/null
left=$(temps)
[ -n "$left" ] || fail "the killed restore left no temp file"
d=$(dirname "$left")
# Names that are not a temp file of a restore that is gone stay: a user's, one
# of a running process (this shell), one of this format's look-alikes.
keep=(".cairn-tmp.notes" ".cairn-tmp.12.3x" ".cairn-tmp.$$.1" ".cairn-tmp..1" ".cairn-tmp.1")
for k in "${keep[@]}"; do echo mine > "$d/$k"; done
"$CAIRN" restore latest --target "$T" > "$O/out" 2>&1 || fail "restore again: $(cat "$O/out")"
[ ! -e "$left" ] || fail "the rerun left the killed restore's $left"
for k in "${keep[@]}"; do
	[ "$(cat "$d/$k")" = mine ] || fail "the rerun removed or changed $d/$k"
	rm "$d/$k"
done
diff -r --no-dereference "$SRC" "$T$SRC" || fail "the rerun restored something else"

# ---- prune: a signal ----------------------------------------------------------
# Packs of a and b both, after b is gone: prune --max-unused 0 repacks them.
head -c 1500000 /dev/urandom > "$SRC/d/a"
head -c 1500000 /dev/urandom > "$SRC/d/b"
"$CAIRN" backup "$SRC" > /dev/null
rm "$SRC/d/b" "$SRC/d/big"
"$CAIRN" backup "$SRC" > /dev/null
"$CAIRN" forget --keep-last 1 > /dev/null
leftovers() { find "$CAIRN_REPO/locks" "$CAIRN_REPO/tmp" -type f 2> /dev/null; }
for step in after-mark:INT mid-repack:TERM; do
	CAIRN_TEST_STOP_POINT=${step%:*} "$CAIRN" prune --max-unused 0 > "$O/out" 2> "$O/err" &
	p=$!
	wait_stopped "$p" "the prune (${step%:*})"
	[ -n "$(find "$CAIRN_REPO/locks" -type f)" ] || fail "the stopped prune holds no lock"
	signal_stopped "$p" "${step#*:}"
	[ "$rc" = 1 ] || fail "prune stopped by SIG${step#*:} at ${step%:*} exited $rc: $(cat "$O/err")"
	[ "$(cat "$O/err")" = "cairn: prune interrupted" ] ||
		fail "prune stopped by SIG${step#*:} said: $(cat "$O/err")"
	[ -z "$(leftovers)" ] || fail "prune stopped by SIG${step#*:} left $(leftovers)"
	"$CAIRN" check > "$O/check" 2>&1 || fail "check after the prune stopped: $(cat "$O/check")"
done
"$CAIRN" prune --max-unused 0 > "$O/out" 2>&1 || fail "prune after those: $(cat "$O/out")"
rm -rf "$T"
"$CAIRN" restore latest --target "$T" > /dev/null
diff -r --no-dereference "$SRC" "$T$SRC" || fail "the snapshot after the prunes differs"
echo ok
