#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn sync against a real S3 server: a private Ceph RGW on 127.0.0.1
# (tests/s3/rgw-launch.sh), results checked with Debian's aws CLI. Covers: wrong
# credentials, push, a no-change push (request count), incremental push, --verify
# repairing a damaged remote, pull + restore identical to the source, a corrupt
# pack refused on pull, kill -9 mid-upload then re-run (multipart, no leftovers),
# a pack corrupt on disk refused on push (whole and multipart), a server that
# comes up late (retries), a server that stays down, --delete,
# virtual-hosted addressing, a bucket without prefix, and Object Lock.
. "$(dirname "$0")/lib.sh"

# Short retries; the cases that need long ones set their own.
s3_setup
T="$W/trace"
O="$W/o"
mkdir -p "$O"

# remote_list PREFIX: "size key-relative-to-prefix" lines, sorted
remote_list() {
	"${AWS[@]}" s3api list-objects-v2 --bucket "${2:-$B}" --prefix "$1/" \
		--query 'Contents[].[Size,Key]' --output text |
		grep -v '^None$' | sed "s#\t$1/# #" | sort || true
}
# local_list REPO: the same for the files sync uploads
local_list() {
	(cd "$1" && find config keys packs indexes snapshots -type f -printf '%s %p\n' 2>/dev/null |
		sort)
}
same_lists() { # REPO PREFIX [BUCKET]: the repository's objects (locks are not copied)
	local_list "$1" > "$O/local.list"
	remote_list "$2" "${3:-}" | grep -v ' locks/' > "$O/remote.list"
	diff "$O/local.list" "$O/remote.list" >&2 || fail "remote s3://${3:-$B}/$2 differs from $1"
}
no_uploads() { # PREFIX: no multipart upload left behind
	local n
	n=$("${AWS[@]}" s3api list-multipart-uploads --bucket "$B" --prefix "$1/" \
		--query 'length(Uploads || `[]`)' --output text)
	[ "$n" = 0 ] || fail "$n multipart uploads left under $1/"
}
requests() { wc -l < "$T"; }
sync_traced() { : > "$T"; CAIRN_S3_TRACE="$T" "$CAIRN" sync "$@"; }

init_repo
SRC="$W/src"
mkdir -p "$SRC/d"
for i in $(seq 1 20); do echo "file $i" > "$SRC/d/f$i"; done
head -c 3000000 /dev/urandom > "$SRC/big.bin"
ln -s d/f1 "$SRC/link"
"$CAIRN" backup "$SRC" > /dev/null

# Wrong credentials: one clear line, exit 1, nothing uploaded.
expect_fail 1 "S3 authentication failed: SignatureDoesNotMatch" -- \
	env AWS_SECRET_ACCESS_KEY=wrong "$CAIRN" sync "s3://$B/repo"
expect_fail 1 "S3 authentication failed: InvalidAccessKeyId" -- \
	env AWS_ACCESS_KEY_ID=NOSUCHKEY "$CAIRN" sync "s3://$B/repo"
expect_fail 1 "no S3 credentials" -- \
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$CAIRN" sync "s3://$B/repo"
expect_fail 2 "only s3:// URLs and directories" -- "$CAIRN" sync "ftp://$B/repo"
expect_fail 2 "s3-connections" -- "$CAIRN" sync --s3-connections 0 "s3://$B/repo"
[ -z "$(remote_list repo)" ] || fail "a refused sync uploaded something"

# First push: the remote holds exactly the repository's files.
sync_traced "s3://$B/repo" > "$O/push1.out"
grep -q "^synced to s3://$B/repo: " "$O/push1.out" || fail "no summary: $(cat "$O/push1.out")"
same_lists "$CAIRN_REPO" repo
cfg_md5=$(md5sum < "$CAIRN_REPO/config" | cut -d' ' -f1)
etag=$("${AWS[@]}" s3api head-object --bucket "$B" --key repo/config --query ETag --output text)
[ "$etag" = "\"$cfg_md5\"" ] || fail "config ETag $etag is not its MD5 $cfg_md5"
pack=$(cd "$CAIRN_REPO" && find packs -type f | head -1)
"${AWS[@]}" s3 cp --no-progress "s3://$B/repo/$pack" "$O/pack" > /dev/null
[ "$(sha256sum < "$O/pack" | cut -d' ' -f1)" = "$(basename "$pack")" ] ||
	fail "downloaded pack does not hash to its name"

# No change: a handful of requests (the lock: its PUT, a listing of locks/, its
# DELETE; ListMultipartUploads, HEAD config), no listing of the repository.
sync_traced "s3://$B/repo" > /dev/null
n=$(requests)
echo "no-change sync: $n requests"
[ "$n" -le 5 ] || fail "no-change sync made $n requests: $(cat "$T")"
grep "list-type=2" "$T" | grep -qv "prefix=repo%2Flocks%2F" && fail "no-change sync listed the bucket"

# Incremental: only the new pack(s), their index file and the new snapshot go up.
head -c 2000000 /dev/urandom > "$SRC/new.bin"
"$CAIRN" backup "$SRC" > /dev/null
sync_traced "s3://$B/repo" > /dev/null
same_lists "$CAIRN_REPO" repo
puts=$(grep '^PUT ' "$T" | grep -vc /locks/)
new=$(grep '^PUT ' "$T" | grep -c -e /packs/ -e /indexes/ -e /snapshots/)
[ "$puts" = "$new" ] && [ "$new" -ge 3 ] && [ "$new" -le 5 ] ||
	fail "incremental sync uploaded $puts objects ($new packs/snapshots): $(cat "$T")"

# Damage the remote: one pack deleted, another replaced by garbage of the same size.
# --verify lists, compares sizes and MD5s, and uploads both again.
packs=($(cd "$CAIRN_REPO" && find packs -type f | sort))
[ "${#packs[@]}" -ge 2 ] || fail "expected two packs"
"${AWS[@]}" s3 rm --quiet "s3://$B/repo/${packs[0]}"
head -c "$(stat -c %s "$CAIRN_REPO/${packs[1]}")" /dev/urandom > "$O/garbage"
"${AWS[@]}" s3 cp --no-progress "$O/garbage" "s3://$B/repo/${packs[1]}" > /dev/null
"$CAIRN" sync --verify "s3://$B/repo" > /dev/null 2>&1
same_lists "$CAIRN_REPO" repo
"${AWS[@]}" s3 cp --no-progress "s3://$B/repo/${packs[1]}" "$O/pack" > /dev/null
cmp -s "$O/pack" "$CAIRN_REPO/${packs[1]}" || fail "--verify did not repair ${packs[1]}"
# Everything matches now: --verify and --delete list and compare, and upload nothing.
for opt in --verify --delete; do
	sync_traced $opt "s3://$B/repo" > "$O/again.out"
	puts=$(grep '^PUT ' "$T" | grep -vc /locks/ || true)
	[ "$puts" = 0 ] || fail "sync $opt of an unchanged copy uploaded $puts objects: $(cat "$T")"
	grep -q " 0 objects copied (0 B), " "$O/again.out" || fail "sync $opt: $(cat "$O/again.out")"
done

# Disaster recovery: a new repository from the bucket alone, then restore.
sync_traced --from "s3://$B/repo" -r "$W/pulled" > "$O/pull.out"
grep -q "^pulled from s3://$B/repo: " "$O/pull.out" || fail "no pull summary"
for d in config keys packs snapshots; do
	diff -r "$CAIRN_REPO/$d" "$W/pulled/$d" || fail "pulled $d differs"
done
[ -f "$W/pulled/index/data.mdb" ] || fail "pull did not rebuild the index"
[ -z "$(ls "$W/pulled/tmp")" ] || fail "pull left temp files"
"$CAIRN" -r "$W/pulled" snapshots > "$O/snaps.pulled"
"$CAIRN" snapshots > "$O/snaps.orig"
diff "$O/snaps.orig" "$O/snaps.pulled" || fail "snapshot lists differ"
"$CAIRN" -r "$W/pulled" restore latest --target "$W/restored" > /dev/null
diff -r --no-dereference "$SRC" "$W/restored$SRC" || fail "restore from the pulled repository differs"
# A pull places what it fetches durably (issue 14 point 4): packs/xx/ synced
# into packs/ before a pack is renamed into it, each directory synced after.
placed_durably "$W/pulled2" -- "$CAIRN" sync --from "s3://$B/repo" -r "$W/pulled2"
diff -r "$CAIRN_REPO/packs" "$W/pulled2/packs" || fail "the traced pull differs"
# A push from the pulled copy knows what the bucket holds already.
sync_traced -r "$W/pulled" "s3://$B/repo" > /dev/null
[ "$(requests)" -le 5 ] || fail "push after pull made $(requests) requests: $(cat "$T")"
# A pull into a directory holding another repository is refused.
mkdir "$W/other"
"$CAIRN" -r "$W/other" init --kdf-log2n 10 > /dev/null
expect_fail 1 "another repository" -- "$CAIRN" sync --from "s3://$B/repo" -r "$W/other"
expect_fail 1 "holds no cairn repository" -- "$CAIRN" sync --from "s3://$B/nothing" -r "$W/p2"

# A corrupt pack in the bucket is refused on pull.
"${AWS[@]}" s3 sync --no-progress --quiet "s3://$B/repo" "s3://$B/corrupt"
"${AWS[@]}" s3 cp --no-progress "$O/garbage" "s3://$B/corrupt/${packs[1]}" > /dev/null
expect_fail 1 "is corrupt" -- "$CAIRN" sync --from "s3://$B/corrupt" -r "$W/corrupt"
# What the failed pull left holds a config and keys, and would pass for a
# repository with fewer snapshots: every command refuses it, so that no backup
# goes into it and no `sync --delete` from it empties another copy.
[ -f "$W/corrupt/config" ] || fail "the failed pull left no config: the test proves nothing"
n_remote=$("${AWS[@]}" s3 ls "s3://$B/repo/snapshots/" | wc -l)
expect_fail 1 "unfinished copy" -- "$CAIRN" -r "$W/corrupt" snapshots
expect_fail 1 "unfinished copy" -- "$CAIRN" -r "$W/corrupt" backup "$SRC"
expect_fail 1 "unfinished copy" -- "$CAIRN" -r "$W/corrupt" rebuild-index
expect_fail 1 "unfinished copy" -- "$CAIRN" -r "$W/corrupt" sync --delete "s3://$B/repo"
[ "$("${AWS[@]}" s3 ls "s3://$B/repo/snapshots/" | wc -l)" = "$n_remote" ] && [ "$n_remote" -gt 0 ] ||
	fail "the copy in s3://$B/repo lost snapshots"
# With the pack mended, the pull run again finishes the copy, which opens.
"${AWS[@]}" s3 cp --no-progress "$CAIRN_REPO/${packs[1]}" "s3://$B/corrupt/${packs[1]}" > /dev/null
"$CAIRN" sync --from "s3://$B/corrupt" -r "$W/corrupt" > /dev/null || fail "the pull run again failed"
[ ! -e "$W/corrupt/incomplete" ] || fail "the finished copy is still marked unfinished"
"$CAIRN" -r "$W/corrupt" snapshots > "$O/snaps.corrupt" || fail "the finished copy does not open"
diff "$O/snaps.orig" "$O/snaps.corrupt" || fail "the finished copy's snapshots differ"

# kill -9 in the middle of a multipart upload, then run again: the job finishes,
# the abandoned upload is aborted, and the remote holds each object exactly once.
export CAIRN_S3_MULTIPART_THRESHOLD=$((5 << 20)) CAIRN_S3_PART_SIZE=$((5 << 20))
R2="$W/repo2"
"$CAIRN" -r "$R2" init --kdf-log2n 10 --pack-size 8M > /dev/null
mkdir "$W/src2"
head -c 60000000 /dev/urandom > "$W/src2/data"
"$CAIRN" -r "$R2" backup "$W/src2" > /dev/null
: > "$T"
CAIRN_S3_TRACE="$T" "$CAIRN" -r "$R2" sync --s3-connections 1 "s3://$B/big" > /dev/null 2>&1 &
pid=$!
for i in $(seq 1 600); do
	grep -q 'partNumber=1&uploadId=' "$T" 2>/dev/null && break
	sleep 0.02
done
kill -9 "$pid" 2>/dev/null || fail "sync finished before it could be killed"
{ wait "$pid"; } 2>/dev/null || true
open=$("${AWS[@]}" s3api list-multipart-uploads --bucket "$B" --prefix big/ \
	--query 'length(Uploads || `[]`)' --output text)
echo "killed sync left $open multipart uploads"
"$CAIRN" -r "$R2" sync -v --s3-connections 2 "s3://$B/big" > /dev/null 2> "$O/resume.err"
[ "$open" = 0 ] || grep -q "aborted [0-9]* abandoned uploads" "$O/resume.err" ||
	fail "abandoned upload not reported: $(cat "$O/resume.err")"
same_lists "$R2" big
no_uploads big
grep -q 'uploadId=' "$T" || fail "no multipart upload happened"
"$CAIRN" -r "$R2" sync --verify "s3://$B/big" > /dev/null # multipart ETags match

# A pack whose content does not hash to its name (a bit flipped on this disk) is
# not pushed, whole (the server checks the SHA-256 that its name gives) or in
# parts (checked before the upload is completed): one line names it, exit 1.
n=0
for r in "$CAIRN_REPO" "$R2"; do
	n=$((n + 1))
	rm -rf "$W/damaged" && cp -a "$r" "$W/damaged"
	pack=$(cd "$W/damaged" && find packs -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
	python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))' \
		"$W/damaged/$pack"
	expect_fail 1 "pack $(basename "$pack") is corrupt: its SHA-256 is" -- \
		"$CAIRN" -r "$W/damaged" sync "s3://$B/damaged$n"
	"${AWS[@]}" s3api head-object --bucket "$B" --key "damaged$n/$pack" > /dev/null 2>&1 &&
		fail "a corrupt pack was pushed ($pack of $r)"
	no_uploads "damaged$n"
done
# A pack damaged on the way (a proxy flips a bit in the first uploads of packs,
# a part of one here) is refused by the server and sent again, once the file is
# found whole: the push completes and what arrived is the pack.
proxy() { # NAME COUNT [SHORT]: a damaging proxy in front of the server; sets PROXY
	python3 "$SRCDIR/tests/integration/damage-proxy.py" "$W/$1.port" "$RGW_PORT" "$2" "${3:-0}" &
	cleanup_hooks+=("kill $!")
	for _ in $(seq 1 200); do
		[ -s "$W/$1.port" ] && break
		sleep 0.05
	done
	PROXY="http://127.0.0.1:$(cat "$W/$1.port")"
}
# An init that fails at its config (the server refuses it) removes the key file
# it wrote under the prefix: a second init works.
DAMAGE_PROXY_REFUSE=/halfinit/config proxy refuse 0
rc=0
AWS_ENDPOINT_URL=$PROXY CAIRN_CACHE_DIR="$W/cache-hi" "$CAIRN" -r "s3://$B/halfinit" init \
	--kdf-log2n 10 > "$O/hi.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "init with a refused config exited $rc: $(cat "$O/hi.out")"
[ -z "$(remote_list halfinit)" ] || fail "a failed init left: $(remote_list halfinit)"
CAIRN_CACHE_DIR="$W/cache-hi" "$CAIRN" -r "s3://$B/halfinit" init --kdf-log2n 10 > "$O/hi.out" 2>&1 ||
	fail "init after a failed one: $(cat "$O/hi.out")"
CAIRN_CACHE_DIR="$W/cache-hi" "$CAIRN" -r "s3://$B/halfinit" snapshots > /dev/null ||
	fail "the second init's repository does not open"
proxy onway 2
: > "$T"
AWS_ENDPOINT_URL=$PROXY CAIRN_S3_TRACE="$T" "$CAIRN" -r "$R2" sync "s3://$B/onway" \
	> "$O/onway.out" 2>&1 || fail "a push through damage on the way failed: $(cat "$O/onway.out")"
[ "$(grep -c '^PUT .*packs/.* 400' "$T")" = 2 ] || fail "no damaged upload was refused: $(cat "$T")"
grep -q "arrived damaged: sending it again (try 2 of 3)" "$O/onway.out" ||
	fail "no warning: $(cat "$O/onway.out")"
"$CAIRN" -r "$R2" sync --verify "s3://$B/onway" > /dev/null || fail "the pushed packs differ"
"$CAIRN" -r "s3://$B/onway" check --read-data > "$O/check" 2>&1 ||
	fail "check of what arrived: $(cat "$O/check")"
no_uploads onway
# Replies to ranged GETs cut short on the way (complete in themselves): asked
# again, and the restore is whole.
proxy short 0 2
"$CAIRN" -r "$R2" restore -q latest --target "$W/r-direct" || fail "restore from $R2"
AWS_ENDPOINT_URL=$PROXY CAIRN_CACHE_DIR="$W/cache-short" "$CAIRN" -r "s3://$B/onway" \
	restore -q latest --target "$W/r-short" 2> "$O/short.err" || fail "restore through cut replies: $(cat "$O/short.err")"
diff -r --no-dereference "$W/r-direct" "$W/r-short" > /dev/null || fail "the restore through cut replies differs"
# Damaged every time: three tries, then one line and exit 1, and no pack.
proxy always -1
rc=0
AWS_ENDPOINT_URL=$PROXY "$CAIRN" -r "$R2" sync "s3://$B/always" > /dev/null 2> "$O/always.err" || rc=$?
[ "$rc" = 1 ] || fail "a push damaged every time exited $rc: $(cat "$O/always.err")"
grep -v "arrived damaged: sending it again" "$O/always.err" > "$O/always.line" || true
[ "$(wc -l < "$O/always.line")" = 1 ] || fail "not one error line: $(cat "$O/always.err")"
out_match "$O/always.line" "XAmzContentSHA256Mismatch\\|BadDigest"
[ "$("${AWS[@]}" s3 ls --recursive "s3://$B/always/packs/" | wc -l)" = 0 ] ||
	fail "a damaged pack was stored"
no_uploads always
unset CAIRN_S3_MULTIPART_THRESHOLD CAIRN_S3_PART_SIZE

# The server is down when the sync starts and comes up a few seconds later: the
# sync retries and succeeds.
echo more > "$SRC/more"
"$CAIRN" backup "$SRC" > /dev/null
rgw_gw_stop
expect_fail 1 "giving up after 2 attempts" -- env CAIRN_S3_RETRIES=2 "$CAIRN" sync "s3://$B/repo"
: > "$T"
CAIRN_S3_TRACE="$T" CAIRN_S3_RETRIES=60 CAIRN_S3_RETRY_CAP_MS=1000 \
	"$CAIRN" sync "s3://$B/repo" > "$O/late.out" 2>&1 &
pid=$!
sleep 3
rgw_gw_start || fail "radosgw did not restart"
wait "$pid" || fail "sync against a late server failed: $(cat "$O/late.out")"
grep -q "transport-error" "$T" || fail "the sync never saw the server down"
same_lists "$CAIRN_REPO" repo

# The server goes away in the middle of a sync and comes back: the transfers in
# flight fail, are retried, and the sync completes. The sync is paused (SIGSTOP)
# once uploads are under way, so that the outage lands mid-transfer.
R3="$W/repo3"
"$CAIRN" -r "$R3" init --kdf-log2n 10 --pack-size 1M > /dev/null
mkdir -p "$W/src3" && head -c 12000000 /dev/urandom > "$W/src3/data"
"$CAIRN" -r "$R3" backup "$W/src3" > /dev/null
: > "$T"
CAIRN_S3_TRACE="$T" CAIRN_S3_RETRIES=60 CAIRN_S3_RETRY_CAP_MS=1000 \
	"$CAIRN" -r "$R3" sync --s3-connections 1 "s3://$B/mid" > "$O/mid.out" 2>&1 &
pid=$!
for _ in $(seq 1 400); do
	[ "$(grep -c '^PUT .*packs/' "$T")" -ge 2 ] && break
	sleep 0.02
done
kill -STOP "$pid" || fail "the sync ended before the outage"
# Meanwhile a second push to the same remote is refused: it would abort the
# first one's multipart uploads as abandoned.
expect_fail 1 "locked exclusively by sync on host" -- "$CAIRN" -r "$R3" sync "s3://$B/mid"
rgw_gw_stop
kill -CONT "$pid"
sleep 2
rgw_gw_start || fail "radosgw did not restart"
wait "$pid" || fail "sync across a server restart failed: $(cat "$O/mid.out")"
grep -q "transport-error" "$T" || fail "the sync never saw the server go away"
same_lists "$R3" mid
no_uploads mid

# --delete: a snapshot, the packs and index files a forget and prune removed
# locally go away remotely; objects that are not the repository's, and the
# config, stay. A pack lost behind cairn's back (an index file still names it)
# is no pack to delete: the sync fails, and the remote keeps it.
echo hello | "${AWS[@]}" s3 cp --no-progress - "s3://$B/repo/README" > /dev/null
mv "$CAIRN_REPO/${packs[0]}" "$O/lost"
expect_fail 1 "listing lacks pack $(basename "${packs[0]}")" -- \
	"$CAIRN" sync --delete "s3://$B/repo"
remote_list repo | grep -q " ${packs[0]}$" || fail "--delete removed a pack SOURCE lost"
mv "$O/lost" "$CAIRN_REPO/${packs[0]}"
latest=$("$CAIRN" snapshots | awk 'NF >= 4 { id = $1 } END { print id }')
"$CAIRN" forget "$latest" > /dev/null
"$CAIRN" prune --max-unused 0 > /dev/null
"$CAIRN" sync --delete "s3://$B/repo" > "$O/delete.out"
n=$(sed -n 's/.* \([0-9]*\) deleted.*/\1/p' "$O/delete.out")
[ "${n:-0}" -ge 3 ] || fail "expected a snapshot, a pack and an index file deleted: $(cat "$O/delete.out")"
remote_list repo | grep -v ' README$' > "$O/remote.list"
local_list "$CAIRN_REPO" > "$O/local.list"
diff "$O/local.list" "$O/remote.list" || fail "--delete left the remote different"
remote_list repo | grep -q ' README$' || fail "--delete removed a foreign object"

# Virtual-hosted addressing (curl resolves *.localhost to 127.0.0.1; RGW's
# 'rgw dns name' is s3.localhost) and a bucket without prefix.
"${AWS[@]}" s3api create-bucket --bucket cairn-root > /dev/null
"$CAIRN" -r "$R2" sync --s3-endpoint "http://s3.localhost:$RGW_PORT" --s3-addressing virtual \
	"s3://cairn-root" > /dev/null
local_list "$R2" > "$O/local.list"
"${AWS[@]}" s3api list-objects-v2 --bucket cairn-root --query 'Contents[].[Size,Key]' \
	--output text | tr '\t' ' ' | grep -v ' locks/' | sort > "$O/remote.list"
diff "$O/local.list" "$O/remote.list" || fail "virtual-hosted sync to a bare bucket differs"

# Object Lock: objects carry a COMPLIANCE retention of the requested length.
"${AWS[@]}" s3api create-bucket --bucket cairn-lock --object-lock-enabled-for-bucket > /dev/null
"$CAIRN" sync --s3-lock-days 2 "s3://cairn-lock/r" > /dev/null
mode=$("${AWS[@]}" s3api get-object-retention --bucket cairn-lock --key r/config \
	--query Retention.Mode --output text)
[ "$mode" = COMPLIANCE ] || fail "no Object Lock retention on uploads (mode '$mode')"
# --delete on a locked bucket: the object disappears from the listing (a delete
# marker), its locked version stays, and the sync succeeds.
snap=$(cd "$CAIRN_REPO" && find snapshots -type f | sort | head -1)
rm "$CAIRN_REPO/$snap"
"$CAIRN" sync --delete --s3-lock-days 2 "s3://cairn-lock/r" > "$O/lockdel.out" 2>&1 ||
	fail "sync --delete on a locked bucket failed: $(cat "$O/lockdel.out")"
remote_list r cairn-lock | grep -q " $snap$" && fail "--delete left $snap listed"
versions=$("${AWS[@]}" s3api list-object-versions --bucket cairn-lock --prefix "r/$snap" \
	--query 'length(Versions || `[]`)' --output text)
[ "$versions" -ge 1 ] || fail "the locked version of $snap is gone"
echo ok
