#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A pack write that fails in the middle of a backup (injected after N bytes):
# the backup exits 1 with one error, writes no snapshot, and what it left
# behind passes check --read-data.
. "$(dirname "$0")/lib.sh"

init_repo --pack-size 1M
mkdir -p "$W/src"
echo first > "$W/src/first.txt"
"$CAIRN" backup "$W/src" > /dev/null
for i in $(seq 40); do head -c 300000 /dev/urandom > "$W/src/f$i"; done

rc=0
CAIRN_TEST_PACK_WRITE_FAIL_AFTER=3000000 "$CAIRN" backup "$W/src" > "$W/out" 2> "$W/err" || rc=$?
[ "$rc" = 1 ] || fail "failed write: expected exit 1, got $rc ($(cat "$W/err"))"
grep -q "cannot write pack" "$W/err" || fail "failed write: unclear error: $(cat "$W/err")"
[ "$(grep -c . "$W/err")" -le 2 ] || fail "failed write: too many lines: $(cat "$W/err")"
[ "$(ls "$CAIRN_REPO/snapshots" | wc -l)" = 1 ] || fail "a failed backup wrote a snapshot"
"$CAIRN" check --read-data > "$W/check" 2>&1 || fail "check after a failed write: $(cat "$W/check")"

# Without the fault, the same backup succeeds and restores.
"$CAIRN" backup "$W/src" > /dev/null || fail "backup without the fault failed"
"$CAIRN" restore latest --target "$W/r" > /dev/null
diff -r "$W/src" "$W/r$W/src" || fail "restore after a failed write differs"
echo ok
