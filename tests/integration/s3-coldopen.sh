#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Opening a repository of 10,000 packs in S3 with an empty cache costs a few
# dozen requests, not one per pack (FORMAT.md §12): the index files say what
# the packs hold. A real Ceph RGW on 127.0.0.1; requests counted from the
# client's trace and the bucket checked with Debian's aws CLI.
. "$(dirname "$0")/lib.sh"

s3_setup
O="$W/o"
T="$W/trace"
SRC="$W/src"
URL="s3://$B/big"
NPACKS=10000
mkdir -p "$O"
export CAIRN_CACHE_DIR="$W/cache"

# 10,000 files of their own content in 100 directories; one blob per pack
# (CAIRN_TEST_PACK_BLOBS, store/write.c) makes a pack of each. Made in a local
# repository on tmpfs when there is one (no fsync cost), then copied up.
python3 - "$SRC" << 'PY'
import os, sys
for d in range(100):
    os.makedirs(f"{sys.argv[1]}/d{d}")
    for f in range(100):
        with open(f"{sys.argv[1]}/d{d}/f{f}", "w") as out:
            out.write(f"file {d}/{f}\n" * 3)
PY
LOCAL="$W/local"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	LOCAL=$(mktemp -d /dev/shm/cairn-coldopen.XXXXXX)
	cleanup_hooks+=("rm -rf '$LOCAL'")
	LOCAL="$LOCAL/repo"
fi
CAIRN_REPO=$LOCAL init_repo
CAIRN_TEST_PACK_BLOBS=1 CAIRN_REPO=$LOCAL "$CAIRN" backup "$SRC" > /dev/null ||
	fail "the local backup failed"
CAIRN_REPO=$LOCAL "$CAIRN" sync --s3-connections 16 "$URL" > /dev/null || fail "sync failed"
npacks=$("${AWS[@]}" s3 ls --recursive "s3://$B/big/packs/" | wc -l)
[ "$npacks" -ge "$NPACKS" ] || fail "only $npacks packs in the bucket"

# ---- an empty cache: list and read index files, not packs ------------------
CAIRN_S3_TRACE=$T "$CAIRN" -r "$URL" snapshots > "$O/snaps" || fail "snapshots: $(cat "$O/snaps")"
grep -q "1 snapshot" "$O/snaps" || fail "snapshots: $(cat "$O/snaps")"
requests=$(wc -l < "$T")
pack_gets=$(grep -c '^GET /[^?]*/packs/' "$T" || true)
echo "an empty cache opened a repository of $npacks packs with $requests requests"
[ "$pack_gets" = 0 ] || fail "the open read $pack_gets packs"
# About one LIST per 1000 packs and one GET per index file (1024 packs each),
# and a few more: config, keys, snapshots, prune records.
[ "$requests" -le $((npacks / 1000 * 2 + 20)) ] || fail "the open made $requests requests"

# ---- and it reads: a file restored, the index whole -------------------------
rm -f "$T"
CAIRN_S3_TRACE=$T "$CAIRN" -r "$URL" restore latest "$SRC/d42/f7" --target "$O/r" > /dev/null ||
	fail "restore of one file failed"
cmp "$SRC/d42/f7" "$O/r$SRC/d42/f7" || fail "the restored file differs"
[ "$(wc -l < "$T")" -le 40 ] || fail "restoring one file made $(wc -l < "$T") requests"
"$CAIRN" -r "$URL" stats --json > "$O/stats" || fail "stats: $(cat "$O/stats")"
echo ok
