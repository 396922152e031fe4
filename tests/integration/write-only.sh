#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Write-only keys (FORMAT.md §3.3, §5.4, §14): a host backs up twice, the second
# run reading only the changed file; the admin key restores both byte for byte;
# every read command and the mount refuse the write-only key with one line and
# print no byte of the backed-up data; forget, prune and key changes refuse it;
# without its host cache the host reads everything and stores nothing again; a
# repository written before write-only keys keeps working and takes one.
. "$(dirname "$0")/lib.sh"

# Not beside the source: removing it must not change a directory the backup records.
export CAIRN_CACHE_DIR="$W/c/cache"
O="$W/o"
mkdir -p "$O"
MARK="wo-marker-5f1c9a"
printf 'adminpass-1\n' > "$W/admin.pw"
printf 'hostpass-22\n' > "$W/host.pw"
admin() { CAIRN_PASSWORD_FILE="$W/admin.pw" "$CAIRN" "$@"; }
host() { CAIRN_PASSWORD_FILE="$W/host.pw" "$CAIRN" "$@"; }

SRC="$W/src"
mkdir -p "$SRC/docs/$MARK-dir" "$SRC/bin"
for i in $(seq 1 20); do echo "note $i $MARK" > "$SRC/docs/n$i.txt"; done
echo "$MARK in a file named after it" > "$SRC/docs/$MARK-dir/$MARK.txt"
head -c 300000 /dev/urandom > "$SRC/bin/random"
{ echo "$MARK"; seq 1 100000; } > "$SRC/bin/numbers"
ln -s "../docs/$MARK-dir/$MARK.txt" "$SRC/bin/link-$MARK"
files=23

admin init --kdf-log2n 10 --chunk-size 64K/128K/512K --pack-size 1M > /dev/null
admin key add --write-only --new-password-file "$W/host.pw" --key-label host1 > "$O/add" ||
	fail "key add --write-only: $(cat "$O/add")"
grep -q '^added write-only key [0-9a-f]\{16\}$' "$O/add" || fail "key add said: $(cat "$O/add")"

# ---- key list shows each key's kind, to both keys ----------------------------------
admin key list > "$O/keys"
grep -q ' write-only .* host1$' "$O/keys" || fail "key list lacks the write-only key: $(cat "$O/keys")"
grep -q '^\* [0-9a-f]\{16\}  full ' "$O/keys" || fail "key list lacks the full key: $(cat "$O/keys")"
host key list --json > "$O/keys.json" || fail "key list with the write-only key failed"
python3 - "$O/keys.json" <<'PY' || fail "key list --json: $(cat "$O/keys.json")"
import json, sys
k = {e["kind"]: e for e in json.load(open(sys.argv[1]))}
assert set(k) == {"full", "write-only"}, k
assert k["write-only"]["current"] and not k["full"]["current"], k
PY

# ---- two backups with the write-only key ----------------------------------------------
host backup --json "$SRC" > "$O/b1.json" || fail "first write-only backup: $(tail -3 "$O/b1.json")"
[ "$(json_field "$O/b1.json" files_new)" = $files ] || fail "backup 1: $(tail -1 "$O/b1.json")"
cp -a "$SRC" "$W/v1"
echo "changed $MARK" >> "$SRC/docs/n7.txt"
host backup --json "$SRC" > "$O/b2.json" || fail "second write-only backup: $(tail -3 "$O/b2.json")"
[ "$(json_field "$O/b2.json" files_changed)" = 1 ] || fail "backup 2 changed: $(tail -1 "$O/b2.json")"
[ "$(json_field "$O/b2.json" files_unmodified)" = $((files - 1)) ] ||
	fail "backup 2 did not reuse the unchanged files: $(tail -1 "$O/b2.json")"
[ "$(json_field "$O/b2.json" bytes_read)" = "$(stat -c %s "$SRC/docs/n7.txt")" ] ||
	fail "backup 2 read more than the changed file: $(tail -1 "$O/b2.json")"
grep -rq -- "$MARK" "$CAIRN_REPO" && fail "the repository holds the marker in plaintext"

# ---- without the host cache: everything read, nothing stored again -----------------------
# (right after backup 2: reading the source, as diff -r does, moves atimes, which
# the trees record)
rm -rf "$CAIRN_CACHE_DIR"
host backup --json "$SRC" > "$O/b3.json" || fail "backup without host cache: $(tail -3 "$O/b3.json")"
[ "$(json_field "$O/b3.json" files_new)" = $files ] || fail "backup 3: $(tail -1 "$O/b3.json")"
total=$(find "$SRC" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
[ "$(json_field "$O/b3.json" bytes_read)" = "$total" ] || fail "backup 3 read: $(tail -1 "$O/b3.json")"
# No data stored again; of the trees only those of directories above $SRC may be
# new (other programs touch /tmp).
above=$(echo "$SRC" | tr -cd / | wc -c)
[ "$(json_field "$O/b3.json" blobs_added)" -le "$above" ] ||
	fail "backup 3 stored blobs again: $(tail -1 "$O/b3.json")"
[ "$(json_field "$O/b3.json" bytes_added)" -lt 4000 ] || fail "backup 3 stored data again"
# and the next one is incremental again
host backup --json "$SRC" > "$O/b4.json" || fail "backup 4"
[ "$(json_field "$O/b4.json" files_unmodified)" = $files ] || fail "backup 4: $(tail -1 "$O/b4.json")"

# ---- the admin key reads both, byte for byte -------------------------------------------
admin snapshots --json > "$O/snaps.json"
mapfile -t ids < <(python3 -c 'import json,sys; [print(s["id"]) for s in json.load(open(sys.argv[1]))]' "$O/snaps.json")
[ "${#ids[@]}" = 4 ] || fail "admin sees ${#ids[@]} snapshots: $(cat "$O/snaps.json")"
admin restore "${ids[0]}" --target "$W/r1" > /dev/null || fail "admin restore of backup 1"
admin restore "${ids[1]}" --target "$W/r2" > /dev/null || fail "admin restore of backup 2"
diff -r --no-dereference "$W/v1" "$W/r1$SRC" || fail "backup 1 restored differs"
diff -r --no-dereference "$SRC" "$W/r2$SRC" || fail "backup 2 restored differs"
admin restore latest --target "$W/r4" > /dev/null || fail "admin restore of backup 4"
diff -r --no-dereference "$SRC" "$W/r4$SRC" || fail "backup 4 restored differs"
admin check --read-data > "$O/check" 2>&1 || fail "admin check: $(cat "$O/check")"

# ---- every read command refuses the write-only key, printing nothing of the data -------
: > "$O/all"
refused() { # command...: exit 1, one line saying why, nothing on stdout
	local rc=0
	host "$@" > "$O/out" 2> "$O/err" || rc=$?
	cat "$O/out" "$O/err" >> "$O/all"
	[ "$rc" = 1 ] || fail "'$*' with the write-only key: exit $rc: $(cat "$O/err")"
	[ "$(cat "$O/err")" = "cairn: this key can only add backups; reading and changing them need an admin key" ] ||
		fail "'$*' with the write-only key said: $(cat "$O/err")"
	[ ! -s "$O/out" ] || fail "'$*' with the write-only key printed: $(head -3 "$O/out")"
}
short=${ids[1]:0:8}
refused snapshots
refused snapshots --json
refused ls latest
refused ls "$short" "$SRC/docs"
refused cat blob "${ids[1]}"
refused cat pack "$(basename "$(find "$CAIRN_REPO/packs" -type f | head -1)")"
refused cat config
refused dump latest "$SRC/bin/numbers"
refused dump latest "$SRC"
refused restore latest --target "$W/nope"
refused diff "${ids[0]:0:8}" "$short"
refused find "*$MARK*"
refused stats
refused check
refused check --read-data
refused forget --keep-last 1
refused forget "$short"
refused prune
refused tag --add x latest
refused rewrite --exclude '*.txt' latest
refused rebuild-index
refused status --offline
refused report --html "$W/report.html"
[ ! -e "$W/report.html" ] || fail "a refused report wrote '$W/report.html'"
# copy into this repository, and out of it with the write-only key as the source's
admin -r "$W/other" init --kdf-log2n 10 > /dev/null
echo "other $MARK" > "$W/other-src"
admin -r "$W/other" backup "$W/other-src" > /dev/null
refused copy --from-repo "$W/other" --from-password-file "$W/admin.pw"
rc=0
admin -r "$W/other" copy --from-repo "$CAIRN_REPO" --from-password-file "$W/host.pw" > "$O/out" 2> "$O/err" || rc=$?
cat "$O/out" "$O/err" >> "$O/all"
[ "$rc" = 1 ] && [ ! -s "$O/out" ] && [ "$(cat "$O/err")" = "cairn: source repository '$CAIRN_REPO': this key can only add backups; reading and changing them need an admin key" ] ||
	fail "copy out of the repository with the write-only key: exit $rc: $(cat "$O/out" "$O/err")"
[ "$(admin -r "$W/other" snapshots | grep -c '^[0-9a-f]\{8\}  ')" = 1 ] || fail "a refused copy copied"
refused key add --new-password-file "$W/host.pw"
refused key add --write-only --new-password-file "$W/host.pw"
refused key remove "$(awk '/ full /{print $2}' "$O/keys")"
refused key passwd --new-password-file "$W/admin.pw"
[ ! -e "$W/nope" ] || fail "a refused restore wrote '$W/nope'"
# The mount: cairnfs exits with the same line and mounts nothing.
if [ -c /dev/fuse ]; then
	mkdir -p "$W/mnt"
	rc=0
	CAIRN_PASSWORD_FILE="$W/host.pw" timeout 60 "$CAIRNFS" -f "$CAIRN_REPO" "$W/mnt" > "$O/fs" 2>&1 || rc=$?
	cat "$O/fs" >> "$O/all"
	[ "$rc" != 0 ] || fail "cairnfs with the write-only key exited 0"
	grep -q 'this key can only add backups; reading and changing them need an admin key' "$O/fs" ||
		fail "cairnfs said: $(cat "$O/fs")"
	! mountpoint -q "$W/mnt" || fail "cairnfs mounted with the write-only key"
	CAIRN_PASSWORD_FILE="$W/host.pw" timeout 60 "$CAIRN" mount -f "$W/mnt" > "$O/out" 2>&1 &&
		fail "cairn mount with the write-only key succeeded"
	cat "$O/out" >> "$O/all"
	! mountpoint -q "$W/mnt" || { fusermount3 -u "$W/mnt"; fail "cairn mount mounted"; }
	# The admin's mount shows what the host wrote.
	fuse_setup
	CAIRN_PASSWORD_FILE="$W/admin.pw" mount_fs
	diff -r --no-dereference "$SRC" "$MNT/latest$SRC" || fail "the admin's mount differs"
	umount_fs
else
	echo "no /dev/fuse: the mount is not tried"
fi
grep -q -- "$MARK" "$O/all" && fail "a refused command printed backed-up data: $(grep -- "$MARK" "$O/all" | head -3)"
for f in "$O"/b[1-4].json; do
	grep -q -- "$MARK" "$f" && fail "the write-only backup printed a path of the data ($f)"
done
[ "$(admin snapshots --json | grep -o '"id"' | wc -l)" = 4 ] || fail "a refused forget removed snapshots"

# ---- a local repository's missing index: only a full key rebuilds it ----------------------
mv "$CAIRN_REPO/index" "$W/index.saved"
expect_fail 1 "has no index: run 'cairn rebuild-index' with an admin key" -- host backup "$SRC"
[ ! -e "$CAIRN_REPO/index/data.mdb" ] || fail "the write-only key left an index"
admin rebuild-index > /dev/null || fail "admin rebuild-index"
host backup --json "$SRC" > "$O/bi.json" || fail "backup after rebuild-index"
[ "$(json_field "$O/bi.json" files_unmodified)" = $files ] || fail "after rebuild: $(tail -1 "$O/bi.json")"

# The admin's forget + prune leave the host's next backup whole.
admin forget --keep-last 1 --prune --max-unused 0 > /dev/null || fail "admin forget --prune"
echo "after prune $MARK" >> "$SRC/docs/n8.txt"
host backup --json "$SRC" > "$O/b5.json" || fail "backup after a prune"
admin check --read-data > "$O/check" 2>&1 || fail "check after prune: $(cat "$O/check")"
admin restore latest --target "$W/r5" > /dev/null || fail "admin restore of backup 5"
diff -r --no-dereference "$SRC" "$W/r5$SRC" || fail "backup 5 restored differs"

# ---- a repository from before write-only keys -------------------------------------------
# Made by cairn at commit 34bd4cc (kdf 2^10, password "correct horse battery staple"):
# two backups --host fixture of /tmp/h9-fix/src, a.txt changed in between.
OLD="$W/old"
mkdir -p "$OLD"
tar -xzf "$(dirname "$0")/fixtures/repo-before-write-only-keys.tar.gz" -C "$OLD"
export CAIRN_REPO="$OLD/repo"
"$CAIRN" snapshots > "$O/old" || fail "snapshots of the old repository: $(cat "$O/old")"
grep -q '^2 snapshots$' "$O/old" || fail "old repository: $(cat "$O/old")"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check of the old repository: $(cat "$O/check")"
"$CAIRN" restore latest --target "$W/old-r" > /dev/null || fail "restore of the old repository"
R="$W/old-r/tmp/h9-fix/src"
[ "$(cat "$R/a.txt")" = "$(printf 'old repository marker\nsecond line')" ] || fail "old a.txt: $(cat "$R/a.txt")"
seq 1 40000 | cmp - "$R/dir/b.txt" || fail "old b.txt differs"
[ "$(readlink "$R/dir/link")" = ../a.txt ] || fail "old link: $(readlink "$R/dir/link")"
"$CAIRN" key list > "$O/keys" || fail "key list of the old repository"
grep -q '^\* 5510d6bc2a747d4f  full .*old@fixture$' "$O/keys" || fail "old key list: $(cat "$O/keys")"
"$CAIRN" backup "$SRC" > /dev/null || fail "full-key backup into the old repository"
"$CAIRN" key add --write-only --new-password-file "$W/host.pw" > /dev/null || fail "old repo: key add --write-only"
host backup "$W/v1" > /dev/null || fail "write-only backup into the old repository"
"$CAIRN" restore latest --target "$W/old-r2" > /dev/null || fail "restore of the write-only backup"
diff -r --no-dereference "$W/v1" "$W/old-r2$W/v1" || fail "the write-only backup of the old repository differs"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check of the old repository after: $(cat "$O/check")"
echo "write-only: all passed"
