#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn copy with S3 on either side, on a real Ceph RGW on 127.0.0.1: local into
# a repository in the bucket (restored equal, check --read-data clean), a second
# copy adds no object to the bucket, and from the bucket into a new local
# repository.
. "$(dirname "$0")/lib.sh"

s3_setup
R=$(realpath "$W")
SRC="$R/src"
URL="s3://$B/dst"
FROM="$W/from"
export CAIRN_CACHE_DIR="$W/cache"
printf 'the source password\n' > "$W/from-pw"
on_from() { CAIRN_REPO=$FROM CAIRN_PASSWORD_FILE="$W/from-pw" "$CAIRN" "$@"; }
on_s3() { CAIRN_REPO=$URL "$CAIRN" "$@"; }
# objects: every key under dst/ but the locks, with its size.
objects() {
	"${AWS[@]}" s3api list-objects-v2 --bucket "$B" --prefix dst/ \
		--query 'Contents[].[Key,Size]' --output text | grep -v '^dst/locks/' | sort
}
# restored_sum RUNNER SNAP: checksum of $SRC as SNAP holds it.
restored_sum() {
	rm -rf "$W/r"
	"${@:1:$#-1}" restore "${!#}" --target "$W/r" > /dev/null || fail "restore of ${!#}: $*"
	tree_sum "$W/r$SRC"
}

CAIRN_REPO=$FROM CAIRN_PASSWORD_FILE="$W/from-pw" init_repo --chunk-size 256K/512K/2M
CAIRN_REPO=$URL init_repo --chunk-size 64K/128K/256K --pack-size 1M
mkdir -p "$SRC/d"
head -c 2000000 /dev/urandom > "$SRC/d/random"
seq 1 20000 > "$SRC/lines"
ln -s lines "$SRC/link"
ln "$SRC/lines" "$SRC/d/hard"
on_from backup "$SRC" > /dev/null
echo more >> "$SRC/lines"
on_from backup "$SRC" > /dev/null
on_from snapshots --json | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]' > "$W/ids"
mapfile -t S < "$W/ids"

# ---- into the bucket -------------------------------------------------------
on_s3 copy --from-repo "$FROM" --from-password-file "$W/from-pw" > "$W/out" ||
	fail "copy into S3: $(cat "$W/out")"
out_has "$W/out" "copied 2 snapshots, 0 already there"
objects > "$W/objects1"
grep -q '^dst/packs/' "$W/objects1" || fail "no packs in the bucket: $(cat "$W/objects1")"
[ "$(grep -c '^dst/snapshots/' "$W/objects1")" = 2 ] || fail "snapshots: $(cat "$W/objects1")"
on_s3 copy --from-repo "$FROM" --from-password-file "$W/from-pw" --json > "$W/out" ||
	fail "second copy into S3"
[ "$(json_field "$W/out" snapshots_skipped)" = 2 ] || fail "second copy: $(cat "$W/out")"
objects | diff "$W/objects1" - >&2 || fail "the second copy changed the bucket"
on_s3 snapshots --json | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]' > "$W/ids-s3"
mapfile -t D < "$W/ids-s3"
for i in 0 1; do
	[ "$(restored_sum on_s3 "${D[$i]}")" = "$(restored_sum on_from "${S[$i]}")" ] ||
		fail "the copy ${D[$i]} in S3 differs from ${S[$i]}"
done
on_s3 check --read-data > "$W/check" 2>&1 || fail "check --read-data in S3: $(cat "$W/check")"

# ---- out of the bucket into a new local repository --------------------------
BACK="$W/back"
CAIRN_REPO=$BACK init_repo
CAIRN_REPO=$BACK "$CAIRN" copy --from-repo "$URL" --from-password-file "$W/pw" latest > "$W/out" ||
	fail "copy out of S3: $(cat "$W/out")"
out_has "$W/out" "copied 1 snapshot, 0 already there"
[ "$(CAIRN_REPO=$BACK restored_sum "$CAIRN" latest)" = "$(restored_sum on_from "${S[1]}")" ] ||
	fail "the copy out of S3 differs"
echo ok
