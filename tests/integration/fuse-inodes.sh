#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Inode numbers of the mount: two different files that the source reported with
# the same (dev, ino), size and mtime -- a file system whose inode numbers are
# not unique, or a file deleted during the backup whose number a new one took --
# stay two files with their own content; real hard links still share one inode.
. "$(dirname "$0")/lib.sh"
: "${SAMEINO_SHIM:?SAMEINO_SHIM must point to the test shim}"
fuse_setup
init_repo

T="$W/src"
mkdir -p "$T/a" "$T/z"
printf AAAAAAAAAA > "$T/a/sameino-victim"
printf BBBBBBBBBB > "$T/z/sameino-new"
touch -d @1580608922 "$T/a/sameino-victim" "$T/z/sameino-new"
printf CCCCCCCCCC > "$T/a/samelink-old"
touch -d @1580608922 "$T/a/samelink-old"
sleep 0.05 # the new file's ctime is later (the kernel's clock for it is coarse)
printf DDDDDDDDDD > "$T/z/samelink-new"
touch -d @1580608922 "$T/z/samelink-new"
echo linked > "$T/a/hard1"
ln "$T/a/hard1" "$T/z/hard2"
# The shim needs no ASan runtime ahead of it.
LD_PRELOAD=$SAMEINO_SHIM ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	"$CAIRN" backup -q "$T" || fail "backup with the shim"
"$CAIRN" ls --json latest "$T/z/sameino-new" > "$W/ls.json"
out_has "$W/ls.json" '"inode":77777'

mount_fs
M="$MNT/latest$T"
[ "$(cat "$M/a/sameino-victim")" = AAAAAAAAAA ] || fail "victim: $(cat "$M/a/sameino-victim")"
[ "$(cat "$M/z/sameino-new")" = BBBBBBBBBB ] || fail "the new file shows another's data: $(cat "$M/z/sameino-new")"
[ "$(stat -c %i "$M/a/sameino-victim")" != "$(stat -c %i "$M/z/sameino-new")" ] ||
	fail "two different files share an inode"
[ "$(cat "$M/a/samelink-old")" = CCCCCCCCCC ] || fail "samelink: $(cat "$M/a/samelink-old")"
[ "$(cat "$M/z/samelink-new")" = DDDDDDDDDD ] || fail "samelink: $(cat "$M/z/samelink-new")"
[ "$(stat -c %i "$M/a/hard1")" = "$(stat -c %i "$M/z/hard2")" ] || fail "hard links: two inodes"
# readdir's numbers are the lookups'.
[ "$(ls -i "$M/z" | awk '$2 == "sameino-new" { print $1 }')" = "$(stat -c %i "$M/z/sameino-new")" ] ||
	fail "readdir and lookup disagree: $(ls -i "$M/z")"
cp -a "$M" "$W/copy" || fail "cp -a from the mount"
cmp "$W/copy/z/sameino-new" "$T/z/sameino-new" || fail "cp -a copied the wrong content"
[ "$(stat -c %i "$W/copy/a/hard1")" = "$(stat -c %i "$W/copy/z/hard2")" ] || fail "cp -a: hard link lost"
umount_fs

# restore and dump make no hard link of them either.
"$CAIRN" restore -q latest --target "$W/r" || fail "restore"
for f in a/sameino-victim z/sameino-new a/samelink-old z/samelink-new; do
	cmp "$W/r$T/$f" "$T/$f" || fail "restore: $f differs"
done
[ "$(stat -c %i "$W/r$T/a/hard1")" = "$(stat -c %i "$W/r$T/z/hard2")" ] || fail "restore: hard link lost"
mkdir "$W/x"
"$CAIRN" dump -a tar latest "$T" | tar -x -C "$W/x" || fail "dump | tar"
for f in a/sameino-victim z/sameino-new a/samelink-old z/samelink-new; do
	cmp "$W/x$T/$f" "$T/$f" || fail "dump: $f differs"
done
echo ok
