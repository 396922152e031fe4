#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A repository synced to S3 and one created in S3 are the same format (FORMAT.md
# §2, docs/S3.md §1), on a real Ceph RGW on 127.0.0.1, the bucket read with
# Debian's aws CLI: a local repository synced into the bucket holds the objects
# of the directory under the same names and bytes, and the same kinds as one
# that `init` made in the bucket; the synced copy is opened in place with
# -r s3://, backed up into, restored identical and checked with --read-data; a
# repository made in the bucket, copied into a directory by `sync --from`, opens
# there, is backed up into, restores identical and checks clean.
. "$(dirname "$0")/lib.sh"

s3_setup
O="$W/o"
SRC="$W/src"
mkdir -p "$O" "$SRC/docs" "$SRC/bin"
export CAIRN_CACHE_DIR="$W/cache"
for i in $(seq 1 20); do seq 1 $((i * 200)) | sed "s/^/line $i /" > "$SRC/docs/f$i.txt"; done
head -c 3000000 /dev/urandom > "$SRC/bin/random"
INIT=(--chunk-size 64K/128K/512K --pack-size 1M)

# bucket_objects PREFIX: "size key" of every object under PREFIX/, the key
# relative to it, sorted (aws s3 ls: "date time size key").
bucket_objects() {
	"${AWS[@]}" s3 ls --recursive "s3://$B/$1/" | awk -v p="$1/" '
		{ k = $4; if (index(k, p) == 1) k = substr(k, length(p) + 1); print $3, k }' |
		LC_ALL=C sort -k2
}
# dir_objects DIR: the same for the objects of a local repository: not its
# local state (index/, tmp/, locks/).
dir_objects() {
	(cd "$1" && find . -type f ! -path './index/*' ! -path './tmp/*' ! -path './locks/*' \
		-printf '%s %P\n') | LC_ALL=C sort -k2
}
# shapes FILE: the kinds of names in an object list: hex runs by their length,
# so that two repositories compare by layout, not by content.
shapes() {
	awk '{ print $2 }' "$1" | sed -E 's/[0-9a-f]{64}/<64>/g; s/[0-9a-f]{16}/<16>/g;
		s/\/[0-9a-f]{2}\//\/<2>\//' | LC_ALL=C sort -u
}
# packs_filed FILE: every pack sits in the folder named by its first two digits.
packs_filed() {
	local bad
	bad=$(awk '{ print $2 }' "$1" | grep '^packs/' | awk -F/ 'substr($3, 1, 2) != $2') || true
	[ -z "$bad" ] || fail "packs outside the folder of their name: $bad"
}
same_bytes() { # PREFIX DIR NAME: the bucket's object and the file are equal
	"${AWS[@]}" s3 cp --quiet "s3://$B/$1/$3" "$O/obj" || fail "cannot read $1/$3 from the bucket"
	cmp -s "$O/obj" "$2/$3" || fail "$1/$3 in the bucket differs from $2/$3"
}
restored_sum() { # SNAP [CAIRN-OPTIONS...]: checksum of $SRC as the snapshot holds it
	local t="$O/restore"
	rm -rf "$t"
	"$CAIRN" restore "$@" --target "$t" > /dev/null || fail "restore of $* from $CAIRN_REPO failed"
	tree_sum "$t$SRC"
}
check_clean() {
	"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check --read-data of $CAIRN_REPO: $(cat "$O/check")"
}
sum1=$(tree_sum "$SRC")
change() { echo "$1" > "$SRC/docs/$1.txt"; }
# backup_into WHAT TAG FIELD LIMIT: back up $SRC changed by TAG as host h2; the
# report's FIELD stays below LIMIT (the data is not stored again), and the
# snapshot restores.
backup_into() {
	local sum
	change "$2"
	sum=$(tree_sum "$SRC")
	"$CAIRN" backup --host h2 --json "$SRC" | tail -1 > "$O/b-$2.json" ||
		fail "backup into $1"
	[ "$(json_field "$O/b-$2.json" "$3")" -lt "$4" ] ||
		fail "a backup into $1 stored the data again: $(cat "$O/b-$2.json")"
	[ "$(restored_sum latest --host h2)" = "$sum" ] || fail "restore of the backup into $1"
}

# ---- a local repository synced to S3 ----------------------------------------
export CAIRN_REPO="$W/local-a"
init_repo "${INIT[@]}"
"$CAIRN" backup --host h1 "$SRC" > /dev/null || fail "local backup"
"$CAIRN" sync "s3://$B/a" > /dev/null || fail "sync to s3://$B/a"
dir_objects "$W/local-a" > "$O/a.dir"
bucket_objects a > "$O/a.s3"
diff "$O/a.dir" "$O/a.s3" > "$O/diff" ||
	fail "the synced bucket differs from the local repository: $(cat "$O/diff")"
packs_filed "$O/a.s3"
for f in config $(awk '{ print $2 }' "$O/a.s3" | grep -E '^(keys|indexes)/'); do
	same_bytes a "$W/local-a" "$f"
done

# ---- a repository created in S3 -------------------------------------------
export CAIRN_REPO="s3://$B/b"
init_repo "${INIT[@]}"
"$CAIRN" backup --host h1 "$SRC" > /dev/null || fail "backup into s3://$B/b"
bucket_objects b > "$O/b.s3"
packs_filed "$O/b.s3"
shapes "$O/a.s3" > "$O/a.shapes"
shapes "$O/b.s3" > "$O/b.shapes"
printf '%s\n' config 'indexes/<64>' 'keys/<16>' 'packs/<2>/<64>' 'snapshots/<64>' |
	LC_ALL=C sort > "$O/want.shapes"
diff "$O/want.shapes" "$O/b.shapes" > "$O/diff" ||
	fail "a repository made in S3 has another layout: $(cat "$O/diff")"
diff "$O/a.shapes" "$O/b.shapes" > "$O/diff" ||
	fail "a synced repository and one made in S3 differ in layout: $(cat "$O/diff")"

# ---- the synced copy, used in place -----------------------------------------
export CAIRN_REPO="s3://$B/a"
"$CAIRN" snapshots --json > "$O/snaps" || fail "snapshots of the synced copy"
[ "$(grep -o '"short_id"' "$O/snaps" | wc -l)" = 1 ] && grep -q '"hostname":"h1"' "$O/snaps" ||
	fail "the synced copy lists other snapshots: $("$CAIRN" snapshots)"
[ "$(restored_sum latest)" = "$sum1" ] || fail "restore of the synced copy differs"
backup_into "the synced copy" in-a bytes_uploaded 100000
[ "$(restored_sum latest --host h1)" = "$sum1" ] || fail "restore of the synced snapshot after a backup"
check_clean
rm "$SRC/docs/in-a.txt"

# ---- the repository made in S3, copied into a directory -----------------------
"$CAIRN" sync --from "s3://$B/b" -r "$W/local-b" > /dev/null || fail "sync --from s3://$B/b"
dir_objects "$W/local-b" > "$O/b.dir"
diff "$O/b.s3" "$O/b.dir" > "$O/diff" ||
	fail "the copy in a directory differs from the bucket: $(cat "$O/diff")"
for f in config $(awk '{ print $2 }' "$O/b.s3" | grep -E '^(keys|indexes)/'); do
	same_bytes b "$W/local-b" "$f"
done
export CAIRN_REPO="$W/local-b"
[ "$(restored_sum latest)" = "$sum1" ] || fail "restore of the copy in a directory differs"
check_clean
backup_into "the copy in a directory" in-b blobs_added 10
check_clean
echo ok
