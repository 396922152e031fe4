#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# An S3 repository reached through a proxy that damages replies on the way
# (tests/integration/fault-proxy.py) in front of a private Ceph RGW: what came over a bad
# network must not be taken for damage in the bucket, nor stay in the cache.
. "$(dirname "$0")/lib.sh"

s3_setup
RGW_URL=$AWS_ENDPOINT_URL
fault_proxy
O="$W/o"
mkdir -p "$O" "$W/s1" "$W/s2"
head -c 3000000 /dev/urandom > "$W/s1/f1"
head -c 3000000 /dev/urandom > "$W/s2/f2"
# new_repo BUCKET: a repository s3://BUCKET/r with a snapshot of s1 and one of s2
new_repo() {
	"${AWS[@]}" s3api create-bucket --bucket "$1" > /dev/null
	export CAIRN_REPO="s3://$1/r" CAIRN_CACHE_DIR="$W/cache-$1"
	init_repo
	"$CAIRN" backup "$W/s1" > /dev/null
	"$CAIRN" backup "$W/s2" > /dev/null
}
pack_of() { # BUCKET N: the key (under r/) of the N-th largest pack
	"${AWS[@]}" s3api list-objects-v2 --bucket "$1" --prefix r/packs/ \
		--query 'Contents[].[Size,Key]' --output text | sort -rn | sed -n "${2}p" |
		cut -f2 | sed 's#^r/##'
}

# check --read-data over a network that flips a bit in every reply from one
# pack: an error that run (the copy fetched twice did not verify, it says
# where), but neither the cache nor this host's index keeps the damage: the
# next checks on a healthy network are clean, and restore is whole.
new_repo bchk
big=$(pack_of bchk 1)
rm -rf "$CAIRN_CACHE_DIR"
"$CAIRN" snapshots > /dev/null
rules "[{\"m\":\"GET\",\"p\":\"/bchk/r/$big\",\"a\":\"corrupt\"}]"
rc=0
"$CAIRN" check --read-data > "$O/chk1" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "check over a damaging network: rc $rc: $(cat "$O/chk1")"
out_has "$O/chk1" "fetched twice from s3://bchk/r"
rules '[]'
for i in 1 2; do
	"$CAIRN" check --read-data > "$O/chk2" 2>&1 ||
		fail "healthy check $i after a damaging run: $(cat "$O/chk2")"
	out_has "$O/chk2" "0 errors"
done
"$CAIRN" restore latest --target "$W/rr" > /dev/null 2>&1 || fail "restore after the damaging check"
cmp "$W/s2/f2" "$W/rr$W/s2/f2" || fail "restored file differs"

# Damaged blocks in the cache (as a bad network leaves them): check --read-data
# fetches the pack again rather than report the bucket damaged.
for f in "$CAIRN_CACHE_DIR"/*/blocks/*/*; do
	printf '\x55' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
done
"$CAIRN" check --read-data > "$O/chk3" 2>&1 || fail "check over damaged cache blocks: $(cat "$O/chk3")"
out_has "$O/chk3" "fetched again, it does"

# prune whose first two pack GETs are damaged: it stops that run, but its
# next run on the same cache, over a healthy network, succeeds.
new_repo bpz
s1=$("$CAIRN" snapshots | awk '/\/s1/ {print $1}')
"$CAIRN" forget "$s1" > /dev/null
rm -rf "$CAIRN_CACHE_DIR"
"$CAIRN" snapshots > /dev/null
rules '[{"m":"GET","p":"/bpz/r/packs/","a":"corrupt","n":2}]'
"$CAIRN" prune > "$O/pz1" 2>&1 && fail "prune over 2 damaged replies did not stop"
out_has "$O/pz1" "did not verify"
rules '[]'
"$CAIRN" prune > "$O/pz2" 2>&1 || fail "prune after 2 damaged replies: $(cat "$O/pz2")"
"$CAIRN" check --read-data > "$O/pz3" 2>&1 || fail "check after prune: $(cat "$O/pz3")"

# sync --from a bucket whose listing of packs/ leaves one out.
export CAIRN_REPO="s3://bchk/r" CAIRN_CACHE_DIR="$W/cache-sync"
hid=$(basename "$big")
"$CAIRN" sync --from s3://bchk/r -r "$W/copy" > /dev/null
hide_pack="{\"m\":\"GET\",\"p\":\"list-type=2.*prefix=r%2Fpacks\",\"a\":\"hide\",\"k\":\"$hid\"}"
rules "[$hide_pack]"
# Into a new directory: the index file copied names a pack that was not: exit
# 1, one line, and the copy stays marked unfinished; run again, it completes.
expect_fail 1 "listing lacks pack $hid that index file .* names: the copy is incomplete" -- \
	"$CAIRN" sync --from s3://bchk/r -r "$W/copy2"
[ -e "$W/copy2/incomplete" ] || fail "an incomplete copy is not marked unfinished"
# --delete into a good copy: nothing is deleted.
expect_fail 1 "listing lacks pack $hid" -- "$CAIRN" sync --from s3://bchk/r -r "$W/copy" --delete
[ -f "$W/copy/$big" ] || fail "sync --delete deleted a pack the listing left out"
# The index files hidden too: --delete keeps the pack that DEST's index file names.
rules "[{\"m\":\"GET\",\"p\":\"list-type=2.*prefix=r%2F(packs|indexes)\",\"a\":\"hide\",\"k\":\"($hid|[0-9a-f]{64})\"}]"
"$CAIRN" sync --from s3://bchk/r -r "$W/copy" --delete > "$O/del" 2>&1 ||
	fail "sync --delete: $(cat "$O/del")"
out_has "$O/del" "not deleting pack $hid"
[ -f "$W/copy/$big" ] || fail "sync --delete deleted a pack an index file names"
rules '[]'
"$CAIRN" sync --from s3://bchk/r -r "$W/copy2" > /dev/null || fail "sync again"
for d in copy copy2; do
	[ ! -e "$W/$d/incomplete" ] || fail "$d still marked unfinished"
	"$CAIRN" -r "$W/$d" check --read-data > "$O/c-$d" 2>&1 || fail "$d: $(cat "$O/c-$d")"
done

# Credentials that expire, or a bucket deleted, in the middle of a restore: it
# stops with one line, exit 1, rather than warn about every file.
mkdir -p "$W/many"
for i in $(seq 20); do head -c 50000 /dev/urandom > "$W/many/f$i"; done
export CAIRN_REPO="s3://bchk/r" CAIRN_CACHE_DIR="$W/cache-many"
"$CAIRN" backup "$W/many" > /dev/null
for why in "403 ExpiredToken" "404 NoSuchBucket"; do
	set -- $why
	rm -rf "$CAIRN_CACHE_DIR" "$W/rm"
	"$CAIRN" snapshots > /dev/null
	rules "[{\"m\":\"GET\",\"p\":\"/bchk/r/packs/\",\"a\":\"status\",\"code\":$1,\"xml\":\"$2\",\"after\":1}]"
	expect_fail 1 "$2\|does not exist" -- "$CAIRN" restore latest --target "$W/rm"
	rules '[]'
done

# A PUT answered 200 without an ETag, and nothing stored: the backup fails
# rather than report a snapshot saved whose packs are not there.
new_repo bput
rules '[{"m":"PUT","p":"/bput/r/packs/","a":"fake200"}]'
expect_fail 1 "answered no ETag and does not hold the object" -- "$CAIRN" backup "$W/many"
# A PUT whose reply has a wrong ETag, though the object landed: the backup
# succeeds (a HEAD finds the object as sent), with one snapshot.
rules '[{"m":"PUT","p":"/bput/r/snapshots/","a":"badetag","n":1}]'
"$CAIRN" backup "$W/many" > "$O/be" 2>&1 || fail "backup with a wrong ETag reply: $(cat "$O/be")"
rules '[]'
[ "$("$CAIRN" snapshots | grep -c /many)" = 1 ] || fail "expected one snapshot of many"
"$CAIRN" check > "$O/bc" 2>&1 || fail "check after the PUT faults: $(cat "$O/bc")"

# A server that accepts a mount's reads and never answers: the read fails with
# EIO after 2 low-speed windows (shortened here to 2 s), not after 8 attempts.
if [ -c /dev/fuse ]; then
	MNT="$W/mnt"
	mkdir -p "$MNT"
	export CAIRN_REPO="s3://bchk/r" CAIRN_CACHE_DIR="$W/cache-mnt"
	CAIRN_S3_STALL_SECONDS=2 CAIRN_S3_RETRIES=8 "$CAIRNFS" -f "$CAIRN_REPO" "$MNT" \
		> "$W/fs.log" 2>&1 &
	fspid=$!
	cleanup_hooks+=('fusermount3 -u -z "$MNT" 2>/dev/null; kill $fspid 2>/dev/null')
	for _ in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.05; done
	mountpoint -q "$MNT" || fail "mount did not come up: $(tail -5 "$W/fs.log")"
	f=$(find "$MNT/snapshots/" -type f -name f1 -path '*many*' | head -1)
	[ -n "$f" ] || fail "no file f1 in the mount"
	rules '[{"m":"GET","p":"/bchk/r/packs/","a":"stall","s":600}]'
	# (timeout only guards against a hang: the check is the number of attempts)
	rc=0
	timeout 120 cat "$f" > /dev/null 2> "$O/cat.err" || rc=$?
	rules '[]'
	[ "$rc" = 1 ] && grep -q "Input/output error" "$O/cat.err" ||
		fail "read from a stalled server: rc $rc $(cat "$O/cat.err")"
	out_has "$W/fs.log" "giving up after 2 attempts: "
	fusermount3 -u "$MNT" || fail "cannot unmount"
	wait $fspid || fail "cairnfs exited with an error: $(tail -3 "$W/fs.log")"
fi

# One damaged reply during a pull (a flipped bit, then a truncated body) is
# fetched again: the sync succeeds, and the copy is whole.
for how in corrupt trunc; do
	rules "[{\"m\":\"GET\",\"p\":\"^/bchk/r/packs/\",\"a\":\"$how\",\"n\":1}]"
	"$CAIRN" sync --from s3://bchk/r -r "$W/copy-$how" > "$O/pull" 2>&1 ||
		fail "pull with one $how reply: $(cat "$O/pull")"
	rules '[]'
	"$CAIRN" -r "$W/copy-$how" check --read-data > "$O/pc" 2>&1 ||
		fail "check of the pull with one $how reply: $(cat "$O/pc")"
done

# A pull with nothing new copies nothing (not even the config and keys).
"$CAIRN" sync --from s3://bchk/r -r "$W/copy" > /dev/null
"$CAIRN" sync --from s3://bchk/r -r "$W/copy" > "$O/pull2"
out_has "$O/pull2" ": 0 objects copied (0 B), "
