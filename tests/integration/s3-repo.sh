#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A repository that lives in S3 (docs/S3.md, DESIGN.md "Storage"), on a real Ceph
# RGW on 127.0.0.1, the bucket checked with Debian's aws CLI: init, backup and
# restore straight to the bucket; a second host's backup of the same tree uploads
# less than 1% of the first's; each host's `latest`; a no-change backup's
# requests (counted by method in --json and the metrics file); an emptied cache;
# stale locks of dead hosts expire while a live holder's lock is refreshed; a
# server down or going away mid-backup (retries, one line when giving up, no
# snapshot of a failed backup).
. "$(dirname "$0")/lib.sh"

s3_setup
O="$W/o"
SRC="$W/src"
URL="s3://$B/repo"
mkdir -p "$O"
export CAIRN_REPO=$URL CAIRN_CACHE_DIR="$W/cache-a"

# remote_kinds: "count kind" of the objects under repo/, by top-level folder.
remote_kinds() {
	"${AWS[@]}" s3api list-objects-v2 --bucket "$B" --prefix repo/ --query 'Contents[].Key' \
		--output text | tr '\t' '\n' | grep -v '^None$' | cut -d/ -f2 | sort | uniq -c
}
restored_sum() { # SNAP [CAIRN-OPTIONS...]: checksum of $SRC as the snapshot holds it
	local t="$O/restore"
	rm -rf "$t"
	"$CAIRN" restore "$@" --target "$t" > /dev/null || fail "restore of $* failed"
	tree_sum "$t$SRC"
}

# ---- a bucket that is not there is named as such --------------------------
expect_fail 1 "S3 bucket 'no-such-bucket' does not exist" -- env CAIRN_CACHE_DIR="$W/cache-nb" \
	"$CAIRN" -r s3://no-such-bucket/r snapshots
expect_fail 1 "S3 bucket 'no-such-bucket' does not exist" -- env CAIRN_CACHE_DIR="$W/cache-nb" \
	"$CAIRN" -r s3://no-such-bucket/r init --kdf-log2n 10

# ---- init, backup, restore: nothing but the bucket -------------------------
init_repo --chunk-size 64K/128K/512K --pack-size 1M
mkdir -p "$SRC/docs" "$SRC/bin"
for i in $(seq 1 30); do seq 1 $((i * 300)) | sed "s/^/line $i /" > "$SRC/docs/f$i.txt"; done
head -c 4000000 /dev/urandom > "$SRC/bin/random"
# init leaves the config and the key in the cache: the first backup HEADs the
# config and neither lists nor fetches the keys.
CAIRN_S3_TRACE="$O/b1.trace" "$CAIRN" backup --host h1 --json "$SRC" | tail -1 > "$O/b1.json" ||
	fail "backup to S3 failed"
grep -Eq "^(GET /$B/repo/config|GET /$B/repo/keys/|GET /$B\?.*prefix=repo%2Fkeys)" "$O/b1.trace" &&
	fail "the first backup after init fetched the config or the keys: $(head -5 "$O/b1.trace")"
grep -q "^HEAD /$B/repo/config " "$O/b1.trace" || fail "the first backup did not check the config"
up1=$(json_field "$O/b1.json" bytes_uploaded)
[ "$up1" -gt 4000000 ] || fail "the first backup uploaded only $up1 bytes"
sum1=$(tree_sum "$SRC")
remote_kinds > "$O/kinds"
for k in config keys packs indexes snapshots; do
	grep -q " $k$" "$O/kinds" || fail "no $k in the bucket: $(cat "$O/kinds")"
done
! grep -q " locks$" "$O/kinds" || fail "a lock is left in the bucket"
[ "$(du -sb "$W/cache-a" | cut -f1)" -lt 8000000 ] ||
	fail "the cache holds a copy of the data: $(du -sh "$W/cache-a")"
[ "$(restored_sum latest)" = "$sum1" ] || fail "restore from S3 differs"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check --read-data: $(cat "$O/check")"

# ---- a second host: its own cache, the first host's data deduplicated ------
# A read-only command on its new cache notes which key opened it: the backup
# then lists no keys.
CAIRN_CACHE_DIR="$W/cache-b" "$CAIRN" snapshots > /dev/null || fail "snapshots on a new cache"
CAIRN_CACHE_DIR="$W/cache-b" CAIRN_S3_TRACE="$O/b2.trace" "$CAIRN" backup --host h2 --json \
	"$SRC" | tail -1 > "$O/b2.json" || fail "the second host's backup failed"
grep -q "prefix=repo%2Fkeys" "$O/b2.trace" && fail "the backup listed the keys again"
up2=$(json_field "$O/b2.json" bytes_uploaded)
[ $((up2 * 100)) -lt "$up1" ] || fail "the second host uploaded $up2 of the first's $up1 bytes"

# ---- each host's latest --------------------------------------------------
echo "only on h1" > "$SRC/docs/new.txt"
"$CAIRN" backup --host h1 "$SRC" > /dev/null || fail "second backup of h1"
sum1b=$(tree_sum "$SRC")
[ "$(restored_sum latest --host h2)" = "$sum1" ] || fail "h2's latest is not its own"
[ "$(restored_sum latest --host h1)" = "$sum1b" ] || fail "h1's latest is not its own"
CAIRN_CACHE_DIR="$W/cache-b" "$CAIRN" ls latest --host h2 "$SRC/docs" > "$O/ls" ||
	fail "ls on the second host"
out_lacks "$O/ls" new.txt

# ---- a no-change backup: at most 10 requests besides its snapshot ----------
# A snapshot holds the directories above the path backed up too, and other
# processes change /tmp all the time: the tree is backed up from a private
# tmpfs on /srv, in a mount namespace of its own, twice (as root).
unshare -m bash -c '
	mount --make-rprivate / && mount -t tmpfs cairn-test /srv && cp -a "$1" /srv/src &&
	"$CAIRN" backup --host h3 /srv/src > /dev/null &&
	"$CAIRN" backup --host h3 --json --metrics-file "$2/metrics.prom" /srv/src | tail -1 > "$2/b3.json"
' _ "$SRC" "$O" || fail "the backups in a mount namespace failed"
[ "$(json_field "$O/b3.json" blobs_added)" = 0 ] || fail "a no-change backup stored blobs"
total=$(grep -o '"total":[0-9]*' "$O/b3.json" | cut -d: -f2)
puts=$(grep -o '"PUT":[0-9]*' "$O/b3.json" | cut -d: -f2)
# Its PUTs: the lock and the snapshot (no pack, so no index file).
[ "$puts" = 2 ] || fail "a no-change backup made $puts PUTs: $(cat "$O/b3.json")"
# The issue allows 10; it makes 9 (S3.md §10).
[ $((total - 1)) -le 9 ] || fail "a no-change backup made $total requests: $(cat "$O/b3.json")"
# Its LISTs: index files, snapshots, prune records, and locks once, after its
# own is written (a first try does not look before it writes; the look for
# dead writers reuses that one).
lists=$(grep -o '"LIST":[0-9]*' "$O/b3.json" | cut -d: -f2)
[ "$lists" -le 4 ] || fail "a no-change backup made $lists LISTs: $(cat "$O/b3.json")"
grep -q "^cairn_backup_requests{repo=\"$URL\",method=\"PUT\"} 2$" "$O/metrics.prom" ||
	fail "the metrics lack the requests: $(grep requests "$O/metrics.prom")"
sum=0
for m in GET PUT HEAD LIST DELETE POST; do
	n=$(sed -n "s/^cairn_backup_requests{repo=\"[^\"]*\",method=\"$m\"} //p" "$O/metrics.prom")
	sum=$((sum + n))
done
[ "$sum" = "$total" ] || fail "the metrics count $sum requests, --json $total"
"$CAIRN" backup --host h1 "$SRC" > "$O/b4.txt"
out_match "$O/b4.txt" "^sent [0-9]* requests ("

# ---- an emptied cache fills itself from the bucket -------------------------
"$CAIRN" snapshots > "$O/snaps.before"
rm -rf "$W/cache-a"
"$CAIRN" snapshots > "$O/snaps" || fail "snapshots with an empty cache"
diff "$O/snaps.before" "$O/snaps" || fail "other snapshots once the cache went"
[ "$(restored_sum latest --host h1)" = "$sum1b" ] || fail "restore after the cache went"
"$CAIRN" backup --host h1 --json "$SRC" | tail -1 > "$O/b5.json"
[ "$(json_field "$O/b5.json" bytes_uploaded)" -lt 100000 ] ||
	fail "a backup after the cache went stored data again: $(cat "$O/b5.json")"

# ---- a pack deleted behind cairn's back --------------------------------------
# A new cache finds it missing (its listing of packs/ lacks it) and leaves it
# out of the index: the backup uploads its blobs again, and every snapshot is
# whole again. A warm cache learns it from check, which drops it.
lost=$("${AWS[@]}" s3 ls --recursive "s3://$B/repo/packs/" | sort -k3 -n | tail -1 | awk '{print $4}')
"${AWS[@]}" s3 rm --quiet "s3://$B/$lost" || fail "cannot remove $lost"
CAIRN_CACHE_DIR="$W/cache-lost" "$CAIRN" backup --host h1 "$SRC" > /dev/null 2> "$O/lost.err" ||
	fail "backup with a pack gone: $(cat "$O/lost.err")"
out_has "$O/lost.err" "pack $(basename "$lost") is missing from"
CAIRN_CACHE_DIR="$W/cache-lost" "$CAIRN" check --read-data > "$O/check" 2>&1 ||
	fail "check after the lost pack's blobs came back: $(cat "$O/check")"
rc=0
"$CAIRN" check > "$O/check" 2>&1 || rc=$?
[ "$rc" = 0 ] || out_has "$O/check" "left this host's index"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "a warm cache after check: $(cat "$O/check")"
[ "$(restored_sum latest --host h2)" = "$sum1" ] || fail "h2's snapshot after the lost pack"

# ---- a pack truncated in the bucket: check names it and goes on --------------
tp=$("${AWS[@]}" s3 ls --recursive "s3://$B/repo/packs/" | sort -k3 -n | tail -1 | awk '{print $4}')
"${AWS[@]}" s3 cp --quiet "s3://$B/$tp" "$O/whole-pack" || fail "cannot fetch $tp"
head -c 1000 "$O/whole-pack" > "$O/short-pack"
"${AWS[@]}" s3 cp --quiet "$O/short-pack" "s3://$B/$tp" || fail "cannot truncate $tp"
rc=0
CAIRN_CACHE_DIR="$W/cache-trunc" "$CAIRN" check > "$O/check" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "check of a truncated pack exited $rc: $(cat "$O/check")"
grep -q "$(basename "$tp" | cut -c1-8)" "$O/check" || fail "the truncated pack is not named: $(cat "$O/check")"
out_has "$O/check" "check found"
"${AWS[@]}" s3 cp --quiet "$O/whole-pack" "s3://$B/$tp" || fail "cannot put $tp back"

# ---- an index file deleted behind cairn's back -------------------------------
# A warm cache that had loaded it lists the packs, as a cold open does, and
# adopts those no index file names any more: nothing looks damaged, no pack
# looks unused, and its next backup names them again for the other hosts.
idx=$("${AWS[@]}" s3 ls "s3://$B/repo/indexes/" | sort -k3 -n | tail -1 | awk '{print $4}')
"${AWS[@]}" s3 rm --quiet "s3://$B/repo/indexes/$idx" || fail "cannot remove index file $idx"
"$CAIRN" check > "$O/check" 2>&1 || fail "check after an index file went: $(cat "$O/check")"
out_lacks "$O/check" "hold no indexed blob"
[ "$(restored_sum latest --host h2)" = "$sum1" ] || fail "h2's snapshot after an index file went"
"$CAIRN" backup -q --host h1 "$SRC" || fail "backup after an index file went"
CAIRN_CACHE_DIR="$W/cache-idx" "$CAIRN" check > "$O/check" 2>&1 ||
	fail "a new cache after an index file went: $(cat "$O/check")"

# ---- a new repository where another was: no cache of the old one is used --
# init empties the cache it makes for this place; another host's cache of the
# old repository is dropped, with a warning, when it first meets the new one.
OLD="s3://$B/anew"
CAIRN_CACHE_DIR="$W/cache-n" "$CAIRN" -r "$OLD" init -q --kdf-log2n 10 || fail "init of anew"
for c in n o; do
	CAIRN_CACHE_DIR="$W/cache-$c" "$CAIRN" -r "$OLD" backup -q --host old "$SRC/docs" ||
		fail "backup to anew with cache $c"
done
"${AWS[@]}" s3 rm --recursive --quiet "s3://$B/anew" || fail "cannot empty anew"
CAIRN_CACHE_DIR="$W/cache-n" "$CAIRN" -r "$OLD" init -q --kdf-log2n 10 || fail "init anew again"
[ -z "$(find "$W/cache-n" -path '*/snapshots/*' -type f)" ] || fail "init kept the old snapshots"
for c in n o; do
	CAIRN_CACHE_DIR="$W/cache-$c" "$CAIRN" -r "$OLD" snapshots --json > "$O/anew.$c" 2> "$O/anew.$c.err" ||
		fail "snapshots of the new anew with cache $c: $(cat "$O/anew.$c.err")"
	[ "$(cat "$O/anew.$c")" = "[]" ] || fail "cache $c shows the old snapshots: $(cat "$O/anew.$c")"
done
out_lacks "$O/anew.n.err" "another repository"
out_has "$O/anew.o.err" "holds another repository now"
CAIRN_CACHE_DIR="$W/cache-n" "$CAIRN" -r "$OLD" backup -q --host new "$SRC/docs" ||
	fail "backup to the new anew"
CAIRN_CACHE_DIR="$W/cache-o" "$CAIRN" -r "$OLD" check --read-data > "$O/check" 2>&1 ||
	fail "check of the new anew: $(cat "$O/check")"

# ---- a cold restore reads each pack in one GET, nearly ----------------------
# Parallel workers interleave files in several packs, and write each pack out of
# tree order: the read ahead gathers a pack's blobs into one range anyway, the
# reader starts once it is 64 MiB ahead, and a reader that gets to a pack first
# takes the range known so far. A quarter more GETs than packs are allowed: a
# range can still grow after a reader took it. (A range for each run of blobs
# in tree order, in 4 MiB pieces, made 62 to 64 GETs of these 13 packs; without
# the head start and with one plan a pack, 15 to 21; now 13 or 14, quiet or
# under ASan.)
BIG="$W/big"
mkdir -p "$BIG/a" "$BIG/b"
head -c 100000000 /dev/urandom | split -a 4 -b 83000 - "$BIG/a/f"
head -c 100000000 /dev/urandom | split -a 4 -b 67000 - "$BIG/b/g"
export CAIRN_CACHE_DIR="$W/cache-big"
"$CAIRN" -r "s3://$B/big" init -q --kdf-log2n 10 --chunk-size 64K/128K/512K --pack-size 16M ||
	fail "init of the second repository"
"$CAIRN" -r "s3://$B/big" backup -q "$BIG" || fail "backup of 200 MB"
npacks=$("${AWS[@]}" s3 ls --recursive "s3://$B/big/packs/" | grep -c .)
[ "$npacks" -ge 12 ] || fail "the backup made $npacks packs, not 12 or more"
rm -rf "$W/cache-big" "$O/big"
CAIRN_S3_TRACE="$O/big.trace" "$CAIRN" -r "s3://$B/big" restore -q latest --target "$O/big" ||
	fail "cold restore of 200 MB"
[ "$(tree_sum "$O/big$BIG")" = "$(tree_sum "$BIG")" ] || fail "the cold restore differs"
gets=$(grep -c '^GET /[^?]*/packs/' "$O/big.trace")
echo "cold restore: $gets GETs of $npacks packs"
[ "$gets" -le $((npacks + npacks / 4)) ] || fail "a cold restore of $npacks packs made $gets GETs of them"
# dump -a tar reads ahead the same way (it made 4 MiB GETs one at a time: 85
# for the 20 packs of a copy of /usr/share).
rm -rf "$W/cache-big" "$O/big"
mkdir "$O/big"
CAIRN_S3_TRACE="$O/tar.trace" "$CAIRN" -r "s3://$B/big" dump -a tar latest "$BIG" |
	tar -x -C "$O/big" || fail "dump -a tar from a cold cache"
[ "$(tree_sum "$O/big$BIG")" = "$(tree_sum "$BIG")" ] || fail "the tar from a cold cache differs"
gets=$(grep -c '^GET /[^?]*/packs/' "$O/tar.trace")
echo "cold dump -a tar: $gets GETs of $npacks packs"
[ "$gets" -le $((npacks + npacks / 4)) ] || fail "a cold dump -a tar of $npacks packs made $gets GETs of them"
rm -rf "$BIG" "$O/big" "$W/cache-big"
export CAIRN_CACHE_DIR="$W/cache-a"

# ---- locks: a dead host's lock expires, a live holder's is refreshed -------
export CAIRN_TEST_LOCK_STALE_SECONDS=6
printf 'cairn-lock 1\nkind = exclusive\ncommand = sync\nhost = gone-host\npid = 4242\nstart = %s\n' \
	"$(date +%s)" > "$O/lock"
"${AWS[@]}" s3 cp --quiet "$O/lock" "s3://$B/repo/locks/0123456789abcdef0123456789abcdef"
expect_fail 1 "locked exclusively by sync on host gone-host" -- "$CAIRN" backup "$SRC"
sleep 7 # not written for longer than the stale period: expired
"$CAIRN" backup "$SRC" > /dev/null || fail "a stale lock still blocks"
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "removed exclusive lock 0123456789abcdef0123456789abcdef: sync on host gone-host"
# A backup reading a slow stdin holds its lock for longer than the stale period:
# it writes it again meanwhile, so another command sees it live.
mkfifo "$W/slow"
"$CAIRN" backup --stdin --stdin-filename slow.txt < "$W/slow" > "$O/slow" 2>&1 &
bk=$!
exec 7> "$W/slow"
echo start >&7
sleep 9
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "1 lock of a running command was kept"
"$CAIRN" unlock --list > "$O/locks"
out_match "$O/locks" "shared lock .*: backup"
echo end >&7
exec 7>&-
wait "$bk" || fail "the slow backup failed: $(cat "$O/slow")"
"$CAIRN" unlock --list > "$O/locks"
out_lacks "$O/locks" "shared"
unset CAIRN_TEST_LOCK_STALE_SECONDS

# ---- S3 errors: retries, one line when giving up, nothing half-written -------
# The server is down: a backup gives up with one line and writes nothing.
"$CAIRN" snapshots --json > "$O/snaps.before"
mkdir -p "$W/src-err"
head -c 6000000 /dev/urandom > "$W/src-err/big"
rgw_gw_stop
expect_fail 1 "giving up after 2 attempts" -- env CAIRN_S3_RETRIES=2 CAIRN_S3_RETRY_CAP_MS=200 \
	"$CAIRN" backup --host h3 "$W/src-err"
rgw_gw_start || fail "radosgw did not restart"
# The server goes away while packs are being uploaded: with few retries the
# backup gives up, and what it uploaded is not referenced by any snapshot.
T="$W/trace"
: > "$T"
CAIRN_S3_TRACE="$T" CAIRN_S3_RETRIES=2 CAIRN_S3_RETRY_CAP_MS=200 \
	"$CAIRN" backup --host h3 "$W/src-err" > "$O/gaveup.out" 2>&1 &
pid=$!
for _ in $(seq 1 500); do
	grep -q '^PUT .*packs/' "$T" && break
	sleep 0.02
done
kill -STOP "$pid" || fail "the backup ended before the outage"
rgw_gw_stop
kill -CONT "$pid"
rc=0
wait "$pid" || rc=$?
rgw_gw_start || fail "radosgw did not restart"
[ "$rc" -eq 1 ] || fail "a backup across an outage exited $rc: $(cat "$O/gaveup.out")"
out_has "$O/gaveup.out" "giving up after 2 attempts"
[ "$(grep -c . "$O/gaveup.out")" -le 2 ] || fail "more than one error line: $(cat "$O/gaveup.out")"
"$CAIRN" snapshots --json > "$O/snaps.after"
diff "$O/snaps.before" "$O/snaps.after" > /dev/null || fail "a failed backup wrote a snapshot"
"$CAIRN" check > "$O/check" 2>&1 || fail "check after a failed backup: $(cat "$O/check")"
# With the usual retries a backup rides out the same outage, and its snapshot
# restores identical.
: > "$T"
CAIRN_S3_TRACE="$T" CAIRN_S3_RETRIES=60 CAIRN_S3_RETRY_CAP_MS=500 \
	"$CAIRN" backup --host h3 "$W/src-err" > "$O/outage.out" 2>&1 &
pid=$!
# Stopped after its first request (the repository's config, before the key's
# derivation): every later one meets the outage.
for _ in $(seq 1 500); do
	[ -s "$T" ] && break
	sleep 0.01
done
kill -STOP "$pid" || fail "the backup ended before the restart"
rgw_gw_stop
kill -CONT "$pid" 2> /dev/null
sleep 1
rgw_gw_start || fail "radosgw did not restart"
wait "$pid" || fail "a backup across a server restart failed: $(cat "$O/outage.out")"
grep -q "transport-error" "$T" || fail "the backup never saw the server go away"
rm -rf "$O/err-r"
"$CAIRN" restore latest --host h3 --target "$O/err-r" > /dev/null || fail "restore of h3"
cmp "$W/src-err/big" "$O/err-r$W/src-err/big" || fail "h3's file differs after the outage"


# ---- an index file a prune replaced, put back, is not counted on --------------
# Anyone who may write to the bucket can put back an old index file, naming
# packs that prune deleted: a cache that saw it replaced must not load it again
# (a new cache lists packs/ and is not fooled either).
RP="s3://$B/replay"
mkdir -p "$W/rp"
echo keep > "$W/rp/keep"
rp() { CAIRN_CACHE_DIR="$W/cache-rp" "$CAIRN" -r "$RP" "$@"; }
rp init --kdf-log2n 10 --chunk-size 64K/128K/512K --pack-size 1M > /dev/null
rp backup --host h1 "$W/rp" > /dev/null
head -c 300000 /dev/urandom > "$W/rp/big"
rp backup --host h1 "$W/rp" > /dev/null
"${AWS[@]}" s3 cp --quiet --recursive "$RP/indexes/" "$O/idx-saved/"
rp forget latest > /dev/null
rp prune > "$O/rp-prune" || fail "prune: $(cat "$O/rp-prune")"
"${AWS[@]}" s3 cp --quiet --recursive "$O/idx-saved/" "$RP/indexes/"
cp "$W/rp/big" "$W/rp/big2"
rp backup --host h1 "$W/rp" > "$O/rp-backup" 2>&1 || fail "backup: $(cat "$O/rp-backup")"
out_has "$O/rp-backup" "skipping index file"
rp check > "$O/rp-check" 2>&1 || fail "a put-back index file spoiled a backup: $(cat "$O/rp-check")"
# The next prune replaces the put-back files again rather than merging them.
rp prune > "$O/rp-prune" 2>&1 || fail "prune after the put-back: $(cat "$O/rp-prune")"
rp check > "$O/rp-check" 2>&1 || fail "check after the second prune: $(cat "$O/rp-check")"
CAIRN_CACHE_DIR="$W/cache-rp2" "$CAIRN" -r "$RP" check > "$O/rp-check" 2>&1 ||
	fail "a new cache after the second prune: $(cat "$O/rp-check")"
# ---- a key removed on one host stops opening on every other ------------------
# The key file cached on host X is confirmed in the bucket at each open: once
# host Y removed it, X's password is refused there too, and names why.
KR="s3://$B/keyrm"
printf 'second secret\n' > "$W/kpw2"
kx() { CAIRN_CACHE_DIR="$W/cache-kx" "$CAIRN" -r "$KR" "$@"; }
ky() { CAIRN_CACHE_DIR="$W/cache-ky" "$CAIRN" -r "$KR" --password-file "$W/kpw2" "$@"; }
kx init --kdf-log2n 10 > /dev/null
kx backup --host h1 "$W/rp" > /dev/null
kx key add --new-password-file "$W/kpw2" > /dev/null
ka=$(kx key list | awk '$1=="*"{print $2}')
kb=$(ky key list | awk '$1=="*"{print $2}')
kx snapshots > /dev/null
ky key remove "$ka" | grep -q removed
expect_fail 1 "wrong password: key file '$ka' of this password was removed" -- kx snapshots
expect_fail 1 "wrong password" -- kx key remove "$kb"
"${AWS[@]}" s3 ls "$KR/keys/" | grep -q "$kb" || fail "the last full key was removed"
ky snapshots > /dev/null
ky check > "$O/ky-check" 2>&1 || fail "check: $(cat "$O/ky-check")"
# A key file damaged on its way into the cache (one flipped bit) is not taken
# for another password's: the copy differs from the bucket's, so it is read
# again, and the open works (it said "wrong password" for good).
kc=$(find "$W/cache-ky" -path "*/keys/$kb" -type f)
[ -n "$kc" ] || fail "no cached key file $kb in $(find "$W/cache-ky" -path '*keys*')"
flip_byte "$kc" 60
for h in "" h; do # through the hint, then through the listing
	ky snapshots > "$O/ky-snap" 2>&1 || fail "a damaged cached key file (hint '$h'): $(cat "$O/ky-snap")"
	cmp -s "$kc" <("${AWS[@]}" s3 cp "$KR/keys/$kb" -) || fail "the damaged cached key file stays"
	flip_byte "$kc" 60
	rm -f "$(dirname "$(dirname "$kc")")"/index/last-key*
done
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "final check: $(cat "$O/check")"
echo ok
