#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs: history/ of a directory of a few thousand entries. Its listing (one
# name, path and inode hash per entry) is built once and kept with the history
# directory, not once for each READDIR page, which made one listing quadratic.
# The daemon counts the listings it builds (-v -v: at debug level, at exit).
. "$(dirname "$0")/lib.sh"
fuse_setup
export LC_ALL=C

init_repo
BIG="$W/big"
mkdir -p "$BIG"
pad=$(printf '%0150d' 0 | tr 0 x)
for i in $(seq -w 3000); do
	echo "$i" > "$BIG/f${i}_$pad"
done
"$CAIRN" backup "$BIG" > /dev/null
echo changed > "$BIG/f0001_$pad"
"$CAIRN" backup "$BIG" > /dev/null

# built: the listings the last daemon built, from its exit line.
built() {
	sed -n 's/.*history: \([0-9]*\) listings built.*/\1/p' "$W/fs.log" | tail -1
}

# One directory: about 130 READDIR pages of 4 KiB, read twice.
mount_fs -v -v -o cache_size=1M
for pass in 1 2; do
	n=$(ls -f "$MNT/history$BIG" | grep -c "^f.*_$pad\$")
	[ "$n" = 3000 ] || fail "ls -f history$BIG lists $n files, expected 3000 (pass $pass)"
done
[ "$(ls "$MNT/history$BIG/f0001_$pad" | wc -l)" = 2 ] || fail "f0001 has not 2 versions"
[ "$(ls "$MNT/history$BIG/f0002_$pad" | wc -l)" = 1 ] || fail "f0002 has not 1 version"
umount_fs
b=$(built)
[ -n "$b" ] || fail "cairnfs -v -v did not report the history listings it built"
# history$BIG, f0001 and f0002: one listing each.
[ "$b" -le 3 ] || fail "$b history listings built for 3 directories"
