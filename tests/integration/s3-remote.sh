#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# S3-backed repositories against a real Ceph RGW on 127.0.0.1: the read commands
# and cairnfs with -r s3://BUCKET/PREFIX (docs/S3.md §5), the disaster-recovery
# path (local repository deleted, `sync --from`, restore and mount), the caches
# (a second browse makes no request, even with the server down), the bound of
# the data cache, a remote forget + prune seen by the cache, and a cache on a
# small, then full, file system.
. "$(dirname "$0")/lib.sh"

# Short retries; the cases that need long ones set their own.
s3_setup
export CAIRN_CACHE_DIR="$W/cache"
T="$W/trace"
URL="s3://$B/r"

# Content, metadata (mode, owner, size, mtime in ns, link target, link count) and
# xattrs of every entry.
listing() {
	(cd "$1" && find . -mindepth 1 ! -type d -printf '%y %m %U %G %s %T@ %l %n %P\n' &&
		find . -mindepth 1 -type d -printf '%y %m %U %G - %T@ %l %n %P\n') | sort
}
xattrs() { (cd "$1" && find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex 2>/dev/null); }
same_tree() { # SRC COPY WHAT
	diff -r --no-dereference "$1" "$2" > "$W/diff" 2>&1 || fail "$3: content differs: $(head "$W/diff")"
	diff <(listing "$1") <(listing "$2") > "$W/diff" || fail "$3: metadata differs: $(head "$W/diff")"
	diff <(xattrs "$1") <(xattrs "$2") > "$W/diff" || fail "$3: xattrs differ: $(head "$W/diff")"
}
gets() { grep -c '^GET .*packs/' "$T" || true; }
blocks_size() { du -sb "$CAIRN_CACHE_DIR"/s3-*/blocks | cut -f1; }

# ---- a repository with two snapshots, pushed to the bucket -------------------
init_repo --chunk-size 64K/128K/512K --pack-size 1M
SRC="$W/src"
mkdir -p "$SRC/docs/deep/er" "$SRC/bin"
for i in $(seq 1 40); do echo "note $i" > "$SRC/docs/n$i.txt"; done
head -c 3000000 /dev/urandom > "$SRC/bin/random"
seq 1 400000 > "$SRC/docs/deep/er/numbers"
ln -s ../docs/n1.txt "$SRC/bin/link"
ln "$SRC/docs/n2.txt" "$SRC/bin/hard"
: > "$SRC/empty"
setfattr -n user.note -v hello "$SRC/docs/n3.txt"
chmod 640 "$SRC/docs/n4.txt"
touch -d '2001-02-03 04:05:06.789' "$SRC/docs/n5.txt"
"$CAIRN" backup "$SRC" > /dev/null
echo changed >> "$SRC/docs/n6.txt"
"$CAIRN" backup "$SRC" > /dev/null
"$CAIRN" sync "$URL" > /dev/null || fail "sync failed"
S="$W/src" # paths inside a snapshot are absolute: $SRC appears under the root

# ---- read commands on s3:// ---------------------------------------------------
R=(-r "$URL")
[ "$("$CAIRN" "${R[@]}" snapshots --json | grep -o '"id"' | wc -l)" = 2 ] ||
	fail "snapshots of $URL: $("$CAIRN" "${R[@]}" snapshots 2>&1)"
"$CAIRN" "${R[@]}" ls latest "$S/docs" > "$W/ls" || fail "ls failed"
grep -q "n40.txt" "$W/ls" || fail "ls lacks n40.txt: $(head -3 "$W/ls")"
"$CAIRN" "${R[@]}" dump latest "$S/docs/deep/er/numbers" | cmp - "$SRC/docs/deep/er/numbers" ||
	fail "dump from $URL differs"
"$CAIRN" "${R[@]}" restore latest --target "$W/restored" > /dev/null || fail "restore failed"
same_tree "$SRC" "$W/restored$SRC" "restore from $URL"
"$CAIRN" "${R[@]}" check --read-data > "$W/check" 2>&1 || fail "check of $URL: $(cat "$W/check")"
[ -n "$(ls "$CAIRN_CACHE_DIR"/s3-*/tails)" ] || fail "no pack headers cached"

# Cached now: another read makes two listings, HEADs of the config and the key,
# and no pack request.
: > "$T"
CAIRN_S3_TRACE="$T" "$CAIRN" "${R[@]}" dump latest "$S/bin/random" | cmp - "$SRC/bin/random" ||
	fail "second dump differs"
[ "$(gets)" = 0 ] || fail "second dump fetched packs: $(cat "$T")"
[ "$(wc -l < "$T")" -le 4 ] || fail "second dump made $(wc -l < "$T") requests: $(cat "$T")"

# Damaged cache files fail the blobs' authentication: dropped and fetched again.
for blk in $(find "$CAIRN_CACHE_DIR"/s3-*/blocks "$CAIRN_CACHE_DIR"/s3-*/meta -type f | head -50); do
	printf 'XXXX' | dd of="$blk" bs=1 seek=100 conv=notrunc status=none
done
"$CAIRN" "${R[@]}" restore latest --target "$W/r-bad" > /dev/null 2> "$W/err" ||
	fail "restore over a damaged cache: $(cat "$W/err")"
grep -q "damaged cache block was dropped" "$W/err" || fail "no warning for a damaged cache block"
same_tree "$SRC" "$W/r-bad$SRC" "restore over a damaged cache"
rm -rf "$W/r-bad"

# ---- bad input gets one line ------------------------------------------------------
expect_fail 1 "already holds a repository" -- "$CAIRN" "${R[@]}" init
expect_fail 1 "wrong password" -- env CAIRN_PASSWORD=nope CAIRN_PASSWORD_FILE= \
	"$CAIRN" "${R[@]}" snapshots
expect_fail 1 "no repository at .s3://$B/nothing-here. (no config)" -- "$CAIRN" -r "s3://$B/nothing-here" snapshots
expect_fail 1 "S3 authentication failed" -- env AWS_SECRET_ACCESS_KEY=wrong \
	"$CAIRN" --cache-dir "$W/cache2" -r "$URL" snapshots
# A clock more than 15 minutes off makes every signature fail: said as such,
# with and without a cached config (a HEAD's refusal has no body).
skewed() { # CACHE OFFSET
	env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		faketime "$2" "$CAIRN" --cache-dir "$1" -r "$URL" snapshots
}
expect_fail 1 "clock is 60 minutes ahead of the server's" -- skewed "$W/cache3" "+1 hour"
expect_fail 1 "clock is 120 minutes behind the server's" -- skewed "$W/cache" "-2 hours"

# CAIRN_CACHE_SIZE takes K, M, G as -o disk_cache does, and refuses what does
# not parse rather than growing the cache to the default (1 GiB).
expect_fail 1 "CAIRN_CACHE_SIZE: '2X' is not a size" -- env CAIRN_CACHE_SIZE=2X "$CAIRN" "${R[@]}" snapshots
rm -rf "$CAIRN_CACHE_DIR"/s3-*/blocks
CAIRN_CACHE_SIZE=1M "$CAIRN" "${R[@]}" restore latest --target "$W/restored-1m" > /dev/null ||
	fail "restore with CAIRN_CACHE_SIZE=1M failed"
[ "$(blocks_size)" -le $((2 << 20)) ] || fail "data cache holds $(blocks_size) bytes, CAIRN_CACHE_SIZE=1M"

# ---- cairnfs straight from S3 ------------------------------------------------------
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse for the mount part"; exit 77; }
MNT="$W/mnt"
mkdir -p "$MNT"
fspid=
mount_s3() { # extra cairnfs options...
	CAIRN_S3_TRACE="$T" "$CAIRNFS" -f "$@" "$URL" "$MNT" > "$W/fs.log" 2>&1 &
	fspid=$!
	local i
	for i in $(seq 1 200); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
	fail "s3 mount did not come up: $(cat "$W/fs.log")"
}
umount_s3() {
	fusermount3 -u "$MNT"
	wait "$fspid" || true
}
cleanup_hooks+=("fusermount3 -u '$MNT' 2>/dev/null || true")

rm -rf "$CAIRN_CACHE_DIR"/s3-*/blocks "$CAIRN_CACHE_DIR"/s3-*/meta # start cold
: > "$T"
mount_s3 -o disk_cache=2M
cp -a --sparse=always "$MNT/latest$SRC" "$W/cp1" || fail "cp -a from the s3 mount failed"
same_tree "$SRC" "$W/cp1" "cp -a from the s3 mount"
[ "$(gets)" -gt 0 ] || fail "the mount read no pack from S3"
umount_s3
# The data cache stays near its bound (one GET may add a few blocks past it).
[ "$(blocks_size)" -le $((8 << 20)) ] || fail "data cache holds $(blocks_size) bytes, bound 2M"

# A relative cache directory is the caller's, as for every cairn command (the
# daemon changes to '/'): through CAIRN_CACHE_DIR and -o cache_dir.
rel="relcache-${W##*/}"
for how in env opt; do
	if [ $how = env ]; then set -- env CAIRN_CACHE_DIR="$rel-$how" "$CAIRNFS" -f; else
		set -- "$CAIRNFS" -f -o cache_dir="$rel-$how"; fi
	(cd "$W" && exec "$@" "$URL" "$MNT") >> "$W/fs.log" 2>&1 &
	fspid=$!
	for _ in $(seq 1 200); do mountpoint -q "$MNT" && break; sleep 0.1; done
	ls "$MNT/latest$SRC/docs" > /dev/null || fail "$how: relative cache dir: $(tail -3 "$W/fs.log")"
	umount_s3
	[ ! -e "/$rel-$how" ] || { rm -rf "/$rel-$how"; fail "$how: the cache went to /$rel-$how"; }
	[ -n "$(ls "$W/$rel-$how")" ] || fail "$how: nothing cached in $W/$rel-$how"
done

# Second browse with the server down: all from the caches (listing fails fast).
# The 2M bound above may have evicted the file read offline: read it once more.
"$CAIRN" -r "$URL" dump latest "$S/docs/n10.txt" > /dev/null || fail "dump before going offline"
rgw_gw_stop
: > "$T"
mount_s3 -o disk_cache=64M
grep -q "using the cached copy" "$W/fs.log" || fail "no offline warning: $(cat "$W/fs.log")"
find "$MNT/snapshots" > /dev/null
ls "$MNT/latest$SRC/docs" > /dev/null || fail "offline listing failed"
cmp "$MNT/latest$SRC/docs/n10.txt" "$SRC/docs/n10.txt" || fail "offline read failed"
umount_s3
[ "$(gets)" = 0 ] || fail "offline mount fetched packs"
# A restore that needs data the cache lacks stops at the first request that
# gets no reply after its retries (every other file would wait as long): exit
# 1 with one line, not a warning and a retry cycle for each file.
rm -rf "$CAIRN_CACHE_DIR"/s3-*/blocks
: > "$T"
rc=0
CAIRN_S3_TRACE="$T" "$CAIRN" "${R[@]}" restore latest --target "$W/offline" > /dev/null \
	2> "$W/offline.err" || rc=$?
[ "$rc" = 1 ] || fail "a restore from a server that is down exited $rc: $(tail -3 "$W/offline.err")"
grep -q "giving up after .*attempt" "$W/offline.err" || fail "no reason given: $(cat "$W/offline.err")"
[ "$(grep -vc "using the cached copy" "$W/offline.err")" -le 4 ] ||
	fail "a line for each file: $(cat "$W/offline.err")"
[ "$(wc -l < "$T")" -le 16 ] || fail "$(wc -l < "$T") requests to a server that is down"
rgw_gw_start || fail "radosgw did not restart"

# With the server up and a warm cache, a full copy makes no pack request.
mount_s3 -o disk_cache=64M
cp -a "$MNT/latest$SRC" "$W/cp2" > /dev/null
: > "$T"
cp -a "$MNT/latest$SRC" "$W/cp3" || fail "second cp -a failed"
same_tree "$SRC" "$W/cp3" "second cp -a from the s3 mount"
[ "$(wc -l < "$T")" = 0 ] || fail "a warm browse made requests: $(head -3 "$T")"
umount_s3

# ---- a remote forget + prune, seen on the next open ---------------------------------
"$CAIRN" forget --keep-last 1 --prune --max-unused 0 > /dev/null || fail "forget --prune failed"
"$CAIRN" sync --delete "$URL" > /dev/null || fail "sync --delete failed"
[ "$("$CAIRN" "${R[@]}" snapshots --json | grep -o '"id"' | wc -l)" = 1 ] ||
	fail "the forgotten snapshot is still listed from the cache"
"$CAIRN" "${R[@]}" restore latest --target "$W/after-prune" > /dev/null || fail "restore after prune"
same_tree "$SRC" "$W/after-prune$SRC" "restore after a remote prune"

# ---- disaster recovery: the local repository is gone --------------------------------
rm -rf "$CAIRN_REPO"
"$CAIRN" sync --from "$URL" -r "$W/recovered" > /dev/null || fail "sync --from failed"
"$CAIRN" -r "$W/recovered" check --read-data > /dev/null || fail "recovered repository fails check"
"$CAIRN" -r "$W/recovered" restore latest --target "$W/rec" > /dev/null || fail "restore of recovery"
same_tree "$SRC" "$W/rec$SRC" "restore of the recovered repository"
"$CAIRNFS" -f "$W/recovered" "$MNT" > "$W/fs.log" 2>&1 &
fspid=$!
for _ in $(seq 1 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || fail "mount of the recovered repository: $(cat "$W/fs.log")"
same_tree "$SRC" "$MNT/latest$SRC" "mount of the recovered repository"
umount_s3

# ---- the cache's file system is small, then full -----------------------------------
# A backup needs room for the packs in flight, never for a copy of the data; with
# none left it fails with one clear line and writes no snapshot. A restore needs
# no room: the cache is only a cache.
mkdir -p "$W/small"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=8m,mode=0700 cairn-test "$W/small" 2> /dev/null; then
	cleanup_hooks+=("umount -l '$W/small'")
	SC=(env CAIRN_CACHE_DIR="$W/small/cache")
	mkdir -p "$W/bigsrc"
	head -c 20000000 /dev/urandom > "$W/bigsrc/data"
	"${SC[@]}" "$CAIRN" "${R[@]}" backup "$W/bigsrc" > "$W/small.out" 2>&1 ||
		fail "a backup with an 8 MiB cache failed: $(cat "$W/small.out")"
	snaps() { "$CAIRN" "${R[@]}" snapshots --json | grep -o '"id"' | wc -l; }
	n=$(snaps)
	head -c 9000000 /dev/zero > "$W/small/fill" 2> /dev/null || true
	head -c 3000000 /dev/urandom > "$W/bigsrc/more"
	expect_fail 1 "no space left on device" -- "${SC[@]}" "$CAIRN" "${R[@]}" backup "$W/bigsrc"
	[ "$(snaps)" = "$n" ] || fail "a backup that ran out of cache space wrote a snapshot"
	"${SC[@]}" "$CAIRN" "${R[@]}" restore latest --target "$W/small-rest" > "$W/small.out" 2>&1 ||
		fail "a restore with a full cache failed: $(cat "$W/small.out")"
	cmp "$W/bigsrc/data" "$W/small-rest$W/bigsrc/data" || fail "restore with a full cache differs"
	rm "$W/small/fill"
	"${SC[@]}" "$CAIRN" "${R[@]}" backup "$W/bigsrc" > /dev/null || fail "a backup with room again"
	"$CAIRN" "${R[@]}" check --read-data > "$W/small.out" 2>&1 ||
		fail "check after a full cache: $(cat "$W/small.out")"
fi
echo ok
