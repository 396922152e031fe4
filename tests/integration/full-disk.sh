#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A repository on a small filesystem: a backup that does not fit fails with one
# clear error and exit 1, leaves the repository intact, and a later backup with
# room succeeds.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to mount a small tmpfs"; exit 77; }
mkdir -p "$W/small"
mount -t tmpfs -o size=24m,mode=0700 cairn-test "$W/small" ||
	{ echo "SKIP: cannot mount tmpfs"; exit 77; }
cleanup_hooks+=("umount -l '$W/small'")
export CAIRN_REPO="$W/small/repo"
init_repo --pack-size 1M

mkdir -p "$W/src"
echo hello > "$W/src/small.txt"
"$CAIRN" backup "$W/src" > /dev/null
head -c 60000000 /dev/urandom > "$W/src/big.bin"   # does not fit in 24 MiB

rc=0
"$CAIRN" backup "$W/src" > "$W/out" 2> "$W/err" || rc=$?
[ "$rc" = 1 ] || fail "full disk: expected exit 1, got $rc"
grep -qi "no space left" "$W/err" || fail "full disk: unclear error: $(cat "$W/err")"
[ "$(grep -c . "$W/err")" -le 2 ] || fail "full disk: too many lines: $(cat "$W/err")"
grep -q "Segmentation\|Aborted\|AddressSanitizer" "$W/err" && fail "crash on full disk"

# Intact: one snapshot, it checks and restores.
[ "$(ls "$CAIRN_REPO/snapshots" | wc -l)" = 1 ] || fail "a failed backup wrote a snapshot"
"$CAIRN" check --read-data > "$W/check" 2>&1 || fail "check after full disk: $(cat "$W/check")"
"$CAIRN" restore latest --target "$W/r1" > /dev/null
cmp "$W/src/small.txt" "$W/r1$W/src/small.txt" || fail "restore after full disk"

# Full to the last byte: check still runs (without a lock), and commands that
# must write a lock first say that the disk is full.
head -c 30000000 /dev/zero > "$W/small/filler" 2> /dev/null || true
"$CAIRN" check > "$W/check" 2>&1 || fail "check on a full disk: $(cat "$W/check")"
out_has "$W/check" "checking without a lock"
expect_fail 1 "cannot take the repository lock, the disk is full" -- "$CAIRN" forget --keep-last 1
# A restore onto it names the target, not only the path in the snapshot.
rc=0
"$CAIRN" restore latest --target "$W/small/rt" > /dev/null 2> "$W/err" || rc=$?
[ "$rc" = 1 ] || fail "restore onto a full disk: exit $rc: $(cat "$W/err")"
grep -q "$W/small/rt" "$W/err" || fail "restore onto a full disk does not name the target: $(cat "$W/err")"
rm "$W/small/filler"
# With room, the same backup succeeds.
mount -o remount,size=200m "$W/small"
"$CAIRN" backup "$W/src" > /dev/null || fail "backup with room failed"
"$CAIRN" restore latest --target "$W/r2" > /dev/null
cmp "$W/src/big.bin" "$W/r2$W/src/big.bin" || fail "big file differs after restore"
echo ok
