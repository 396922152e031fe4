#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn copy: snapshots from a repository with other keys and larger chunks
# into this one, restored byte for byte (contents, modes, times, symlinks, hard
# links, xattrs, holes); filters; a second copy writes nothing; a similar
# snapshot adds little and gets its parent's copy as parent; a rewritten
# snapshot with the same fields is copied too; copies copied back into the
# source are skipped; check --read-data is clean; and
# bad input gives one line; worker threads that cannot start are done without.
. "$(dirname "$0")/lib.sh"

umask 022
R=$(realpath "$W")
SRC="$R/src"
FROM="$W/from" # the source repository: its own password, chunks up to 2 MiB
printf 'another password entirely\n' > "$W/from-pw"
CAIRN_REPO=$FROM CAIRN_PASSWORD_FILE="$W/from-pw" init_repo --chunk-size 256K/512K/2M
# The destination ($CAIRN_REPO): chunks of at most 256 KiB, so larger ones are cut.
init_repo --chunk-size 64K/128K/256K
on_from() { CAIRN_REPO=$FROM CAIRN_PASSWORD_FILE="$W/from-pw" "$CAIRN" "$@"; }
copy() { "$CAIRN" copy --from-repo "$FROM" --from-password-file "$W/from-pw" "$@"; }
packs() { find "$CAIRN_REPO/packs" -type f | wc -l; }
# snap_ids REPO-RUNNER [FILTERS]: the IDs, oldest first.
snap_ids() { "$@" snapshots --json | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]'; }
# field ID KEY: KEY of the destination's snapshot ID.
field() {
	"$CAIRN" snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["id"] == sys.argv[1]:
        print(s[sys.argv[2]])' "$1" "$2"
}
# copy_of SOURCE-ID: its copy, from the JSON lines of a copy run in $W/copy.json.
copy_of() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("source_snapshot_id") == sys.argv[2]:
        print(m["snapshot_id"])' "$W/copy.json" "$1"
}

# ---- the tree: every kind of entry --------------------------------------
mkdir -p "$SRC"/{a/deep,b,sub/x}
head -c 3000000 /dev/urandom > "$SRC/a/random.bin" # chunks larger than 256 KiB
seq 1 100000 > "$SRC/a/lines.txt"
printf 'hello\n' > "$SRC/a/hello.txt"
printf 'deep\n' > "$SRC/a/deep/file"
printf 'top secret\n' > "$SRC/a/secret.txt"
: > "$SRC/empty"
truncate -s 50M "$SRC/b/sparse" # holes around 1 MB of data
head -c 1000000 /dev/urandom | dd of="$SRC/b/sparse" bs=1M seek=20 conv=notrunc status=none
ln -s hello.txt "$SRC/a/rel-link"
ln -s does/not/exist "$SRC/a/dangling"
mkfifo "$SRC/a/fifo"
printf 'linked\n' > "$SRC/a/h1"
ln "$SRC/a/h1" "$SRC/b/h2"
ln "$SRC/a/random.bin" "$SRC/sub/random-again.bin"
printf 'x\n' > "$SRC/sub/x/y"
setfattr -n user.bin -v 0x00ff0a0d7f00 "$SRC/a/hello.txt"
setfattr -n user.empty "$SRC/b/h2"
setfacl -m u:65534:r-x "$SRC/a/lines.txt"
printf 'odd\n' > "$SRC/b/$(printf 'bad\xffname')"
printf 'nl\n' > "$SRC/b/$(printf 'new\nline')"
printf '#!/bin/sh\n' > "$SRC/a/suid" && chmod 4755 "$SRC/a/suid"
chmod 1777 "$SRC/b"
touch -d '1999-12-31 23:59:59.123456789' "$SRC/a/hello.txt"
touch -h -d '2001-02-03 04:05:06.987654321' "$SRC/a/rel-link"
touch -d '2005-05-05 05:05:05.555555555' "$SRC/a/deep"

# same_restore SRC-ID DST-ID: the copy restores exactly as its original does.
same_restore() {
	rm -rf "$W/r1" "$W/r2"
	on_from restore "$1" --target "$W/r1" > /dev/null || fail "restore of $1 from the source"
	"$CAIRN" restore "$2" --target "$W/r2" > /dev/null || fail "restore of the copy $2"
	# Not the target itself: restore made it now.
	meta "$W/r1" | grep -v $'^\.\t' > "$W/meta1"
	meta "$W/r2" | grep -v $'^\.\t' > "$W/meta2"
	diff "$W/meta1" "$W/meta2" >&2 || fail "the copy $2 of $1 differs in metadata"
	[ "$(grep -c . "$W/meta1")" -gt 10 ] || fail "restore of $1 is too small: $(cat "$W/meta1")"
	xattrs "$W/r1" > "$W/x1"
	xattrs "$W/r2" > "$W/x2"
	grep -q user.bin "$W/x1" || fail "no xattrs restored from the source"
	diff "$W/x1" "$W/x2" >&2 || fail "the copy $2 of $1 differs in xattrs"
	diff -r --no-dereference -x fifo "$W/r1" "$W/r2" >&2 || fail "the copy $2 of $1 differs"
	local b=$W/r2$SRC/b/sparse
	[ "$(stat -c %s "$b")" = $((50 * 1024 * 1024)) ] || fail "sparse file size"
	[ $(($(stat -c %b "$b") * 512)) -lt $((8 * 1024 * 1024)) ] || fail "the copy lost its holes"
}

# ---- three snapshots: h1 daily, h2 weekly, h1 daily of sub ---------------
on_from backup --host h1 --tag daily "$SRC" > /dev/null
echo more >> "$SRC/a/hello.txt"
printf 'new\n' > "$SRC/a/new.txt"
on_from backup --host h2 --tag weekly "$SRC" > /dev/null
on_from backup --host h1 --tag daily "$SRC/sub" > /dev/null
mapfile -t S < <(snap_ids on_from)
[ "${#S[@]}" = 3 ] || fail "expected 3 source snapshots: ${S[*]}"

# ---- filters choose ------------------------------------------------------
copy --host h2 --json > "$W/copy.json" || fail "copy --host h2"
[ "$(json_field "$W/copy.json" snapshots_copied)" = 1 ] || fail "--host h2: $(cat "$W/copy.json")"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$W/copy.json" ||
	fail "copy --json is not JSON lines: $(cat "$W/copy.json")"
c2=$(copy_of "${S[1]}")
[ -n "$c2" ] && [ "$(field "$c2" hostname)" = h2 ] && [ "$(field "$c2" tags)" = "['weekly']" ] ||
	fail "the copy of the h2 snapshot: $(cat "$W/copy.json")"
copy --tag daily --path "$SRC" > "$W/out" || fail "copy --tag daily --path"
out_has "$W/out" "copied 1 snapshot, 0 already there"
[ "$(snap_ids "$CAIRN" | wc -l)" = 2 ] || fail "--tag daily --path copied more than one"
copy > "$W/out" || fail "copy of everything"
out_has "$W/out" "copied 1 snapshot, 2 already there"
out_has "$W/out" "${S[0]:0:8} already copied as"

# ---- a second copy writes nothing ----------------------------------------
before=$(packs)
copy --json > "$W/copy.json" || fail "second copy"
[ "$(json_field "$W/copy.json" snapshots_copied)" = 0 ] || fail "second copy: $(cat "$W/copy.json")"
[ "$(json_field "$W/copy.json" snapshots_skipped)" = 3 ] || fail "second copy: $(cat "$W/copy.json")"
[ "$(json_field "$W/copy.json" bytes_added)" = 0 ] || fail "second copy: $(cat "$W/copy.json")"
[ "$(json_field "$W/copy.json" blobs_read)" = 0 ] || fail "second copy read data: $(cat "$W/copy.json")"
[ "$(packs)" = "$before" ] || fail "the second copy wrote packs"
[ "$(snap_ids "$CAIRN" | wc -l)" = 3 ] || fail "the second copy wrote snapshots"
copy > "$W/out" || fail "third copy"
out_has "$W/out" "copied 0 snapshots, 3 already there; nothing written"

# ---- the copies restore as their originals do ----------------------------
for i in 0 1 2; do
	d=$(copy_of "${S[$i]}")
	[ -n "$d" ] || fail "no copy of ${S[$i]}"
	[ "$(field "$d" time)" = "$(CAIRN_REPO=$FROM CAIRN_PASSWORD_FILE="$W/from-pw" field "${S[$i]}" time)" ] ||
		fail "the copy of ${S[$i]} has another time"
	[ "$i" = 2 ] || same_restore "${S[$i]}" "$d"
done
"$CAIRN" check --read-data > "$W/check" 2>&1 || fail "check --read-data: $(cat "$W/check")"
out_has "$W/check" "0 errors"

# ---- a similar snapshot: little written, its parent's copy as parent ------
echo changed >> "$SRC/a/lines.txt"
on_from backup --host h1 --tag daily "$SRC" > /dev/null
s4=$(snap_ids on_from | tail -1)
[ "$(CAIRN_REPO=$FROM CAIRN_PASSWORD_FILE="$W/from-pw" field "$s4" parent)" = "${S[0]}" ] ||
	fail "the source snapshot's parent is not the first"
copy --json latest --host h1 --path "$SRC" > "$W/copy.json" || fail "copy of a similar snapshot"
added=$(json_field "$W/copy.json" bytes_added)
[ "$added" -gt 0 ] && [ "$added" -lt 300000 ] || fail "a similar snapshot added $added bytes"
# Only the changed file is read from the source: the rest is known from the
# parent's copy (all of it is a dozen blobs).
read=$(json_field "$W/copy.json" blobs_read)
[ "$read" -ge 1 ] && [ "$read" -le 3 ] || fail "a similar snapshot read $read blobs"
c4=$(copy_of "$s4")
[ "$(field "$c4" parent)" != None ] || fail "the copy has no parent"
[ "$(field "$(field "$c4" parent)" hostname)" = h1 ] || fail "the copy's parent is not h1's"
same_restore "$s4" "$c4"

# ---- a rewritten snapshot has the same fields, not the same content ------
on_from rewrite --exclude secret.txt "$s4" > /dev/null || fail "rewrite in the source"
copy --json > "$W/copy.json" || fail "copy after the rewrite"
[ "$(json_field "$W/copy.json" snapshots_copied)" = 1 ] ||
	fail "the rewritten snapshot was not copied: $(cat "$W/copy.json")"
[ "$(json_field "$W/copy.json" blobs_read)" -le 3 ] || fail "the rewrite's copy read everything"
s5=$(snap_ids on_from | grep -vxF -e "$s4" -e "${S[0]}" -e "${S[1]}" -e "${S[2]}")
c5=$(copy_of "$s5")
"$CAIRN" ls "$c5" "$SRC/a" > "$W/ls" || fail "ls of the rewritten copy"
out_lacks "$W/ls" secret.txt
out_has "$W/ls" hello.txt
copy > "$W/out" || fail "copy after copying the rewrite"
out_has "$W/out" "copied 0 snapshots, 5 already there"

# ---- copied back: the source already holds each one ----------------------
# The copies were cut into smaller chunks, so no blob ID matches, yet each is
# the same snapshot as its original (fields, tree, file metadata): copying them
# back into the source adds no second snapshot of the same time, and no data.
n_from=$(snap_ids on_from | wc -l)
packs_from=$(find "$FROM/packs" -type f | wc -l)
on_from copy --from-repo "$CAIRN_REPO" --from-password-file "$CAIRN_PASSWORD_FILE" --json \
	> "$W/back.json" || fail "copy back into the source"
[ "$(json_field "$W/back.json" snapshots_copied)" = 0 ] ||
	fail "copying back made duplicates: $(cat "$W/back.json")"
[ "$(json_field "$W/back.json" snapshots_skipped)" = "$n_from" ] || fail "copy back: $(cat "$W/back.json")"
[ "$(snap_ids on_from | wc -l)" = "$n_from" ] || fail "the source has new snapshots"
[ "$(find "$FROM/packs" -type f | wc -l)" = "$packs_from" ] || fail "copying back wrote packs"

# ---- passwords from the environment and a command ------------------------
CAIRN_FROM_REPO=$FROM CAIRN_FROM_PASSWORD="another password entirely" "$CAIRN" copy > "$W/out" ||
	fail "copy with CAIRN_FROM_REPO and CAIRN_FROM_PASSWORD"
out_has "$W/out" "copied 0 snapshots, 5 already there"
"$CAIRN" copy --from-repo "$FROM" --from-password-command "cat $W/from-pw" "${S[0]}" > "$W/out" ||
	fail "copy with --from-password-command"
out_has "$W/out" "copied 0 snapshots, 1 already there"

# ---- worker threads that cannot start: the copy goes on without them -------
CAIRN_REPO="$W/few" init_repo
CAIRN_TEST_THREAD_FAIL_AFTER=0 CAIRN_REPO="$W/few" copy --json > "$W/copy.json" 2> "$W/out" ||
	fail "copy with no worker thread: $(cat "$W/out")"
first=$(snap_ids on_from | sed -n 1p) # sed reads it all: no SIGPIPE
(CAIRN_REPO="$W/few" same_restore "$first" "$(copy_of "$first")") || exit 1
CAIRN_REPO="$W/few" "$CAIRN" check --read-data > "$W/out" 2>&1 || fail "check of few: $(cat "$W/out")"

# ---- bad input: one line each --------------------------------------------
printf 'wrong\n' > "$W/wrong"
expect_fail 1 "source repository '$FROM': wrong password" -- \
	"$CAIRN" copy --from-repo "$FROM" --from-password-file "$W/wrong"
expect_fail 1 "source repository '$W/none': no repository" -- \
	"$CAIRN" copy --from-repo "$W/none" --from-password-file "$W/from-pw"
expect_fail 1 "no password given for the source repository" -- \
	env -u CAIRN_FROM_PASSWORD_FILE setsid -w "$CAIRN" copy --from-repo "$FROM" < /dev/null
expect_fail 2 "give the repository to copy from with --from-repo" -- "$CAIRN" copy
expect_fail 2 "the source and the destination are both" -- \
	"$CAIRN" copy --from-repo "$R/repo/" --from-password-file "$W/pw"
expect_fail 2 "only s3:// URLs and directories" -- "$CAIRN" copy --from-repo sftp://x/y
expect_fail 1 "no snapshot matches 'deadbeef'" -- copy deadbeef
expect_fail 1 "no repository at '$W/nowhere'" -- env CAIRN_REPO="$W/nowhere" "$CAIRN" copy \
	--from-repo "$FROM" --from-password-file "$W/from-pw"
[ "$(snap_ids "$CAIRN" | wc -l)" = 5 ] || fail "a failed copy changed the destination"

# ---- diff of a copy and a backup here: the content, not how it was cut -----
# The copy keeps the source's cut points (cut again at 256 KiB); a backup here
# cuts the same files elsewhere. The same bytes are not a change; a byte
# changed in a file that keeps its size is.
"$CAIRN" backup "$SRC" > /dev/null
"$CAIRN" diff "$c4" latest > "$W/diff" || fail "diff of a copy and a backup"
! grep -q '^M' "$W/diff" || fail "diff says unchanged files changed: $(cat "$W/diff")"
printf 'Z' | dd of="$SRC/a/random.bin" bs=1 seek=2000000 conv=notrunc status=none
"$CAIRN" backup "$SRC" > /dev/null
"$CAIRN" diff "$c4" latest > "$W/diff" || fail "diff after a change"
grep -q "^M    $SRC/a/random.bin" "$W/diff" || fail "diff misses a changed byte: $(cat "$W/diff")"
[ "$(grep -c '^M' "$W/diff")" = 2 ] || fail "diff after one file changed: $(cat "$W/diff")"
echo ok
