#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Snapshot filters (--host, --path, --tag) of restore, ls, dump, diff, find,
# forget and snapshots, and what they make 'latest' mean (restic's semantics).
. "$(dirname "$0")/lib.sh"

R=$(realpath "$W")
init_repo
SRC="$R/src"
mkdir -p "$SRC/home/me" "$SRC/etc/ssh"
printf 'v1\n' > "$SRC/home/me/doc.txt"
printf 'ssh\n' > "$SRC/etc/ssh/cfg"
rows() { grep -c '^[0-9a-f]\{8\}  ' || true; }
# The short ID of the only snapshot the filters select.
id_of() { "$CAIRN" snapshots "$@" | awk 'length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { print $1 }'; }

# S1: h1 /home + /etc [daily]; S3: h2 /home [daily, manual] with doc v2;
# S2: h1 /etc/ssh, no tags: the newest of all.
"$CAIRN" backup --host h1 --tag daily "$SRC/home" "$SRC/etc" > /dev/null
printf 'v2\n' > "$SRC/home/me/doc.txt"
"$CAIRN" backup --host h2 --tag daily --tag manual "$SRC/home" > /dev/null
"$CAIRN" backup --host h1 "$SRC/etc/ssh" > /dev/null
S1=$(id_of --host h1 --path "$SRC/home")
S3=$(id_of --host h2)
S2=$(id_of --path "$SRC/etc/ssh")
[ -n "$S1" ] && [ -n "$S2" ] && [ -n "$S3" ] || fail "snapshot IDs: '$S1' '$S2' '$S3'"

# ---- snapshots: restic's semantics ---------------------------------------
[ "$("$CAIRN" snapshots | rows)" = 3 ] || fail "snapshots"
[ "$("$CAIRN" snapshots --host h1 | rows)" = 2 ] || fail "--host"
[ "$("$CAIRN" snapshots --host h1 --host h2 | rows)" = 3 ] || fail "--host twice: any"
[ "$("$CAIRN" snapshots --tag daily,manual | rows)" = 1 ] || fail "--tag a,b: all"
[ "$("$CAIRN" snapshots --tag manual --tag nope | rows)" = 1 ] || fail "--tag twice: any"
[ "$("$CAIRN" snapshots --tag daily --tag '' | rows)" = 3 ] || fail "--tag '': untagged"
[ "$("$CAIRN" snapshots --tag '' | rows)" = 1 ] || fail "--tag ''"
[ "$("$CAIRN" snapshots --path "$SRC/home/" | rows)" = 2 ] || fail "--path"
[ "$("$CAIRN" snapshots --path "$SRC/home" --path "$SRC/etc" | rows)" = 1 ] ||
	fail "--path twice: all"
[ "$("$CAIRN" snapshots --path "$SRC/etc" --host h2 | rows)" = 0 ] || fail "filters: and"
[ "$(cd "$SRC" && "$CAIRN" snapshots --path ./home/../etc/ssh | rows)" = 1 ] ||
	fail "--path relative"

# ---- ls, restore, dump: what 'latest' means ------------------------------
# The issue's case: the newest snapshot (of /etc/ssh) has no /home.
expect_fail 1 "is not in the snapshot" -- "$CAIRN" ls latest "$SRC/home/me"
"$CAIRN" ls --path "$SRC/home" latest "$SRC/home/me" | grep -qx doc.txt || fail "ls --path"
"$CAIRN" ls --host h1 --path "$SRC/home" latest "$SRC/etc" | grep -qx ssh || fail "ls --host"
expect_fail 1 "no snapshot matches host 'h3', tags 'x'" -- "$CAIRN" ls --host h3 --tag x latest
# A named snapshot is used whatever the filters say.
"$CAIRN" ls --host h3 "$S1" "$SRC/home/me" | grep -qx doc.txt || fail "ls ID with filters"
# A file with a '/' after it is not a directory (it was listed as the file).
expect_fail 1 "'$SRC/home/me/doc.txt' is not a directory" -- \
	"$CAIRN" ls --path "$SRC/home" latest "$SRC/home/me/doc.txt/"
expect_fail 1 "is not a directory" -- "$CAIRN" dump --path "$SRC/home" latest "$SRC/home/me/doc.txt/"
# An ID's hex digits in either case.
"$CAIRN" ls "${S1^^}" "$SRC/home/me" | grep -qx doc.txt || fail "ls ${S1^^}"
"$CAIRN" tag -n --add x "${S1^^}" > /dev/null || fail "tag ${S1^^}"

[ "$("$CAIRN" dump --host h1 --tag daily latest "$SRC/home/me/doc.txt")" = v1 ] ||
	fail "dump --host --tag"
[ "$("$CAIRN" dump --tag daily,manual latest "$SRC/home/me/doc.txt")" = v2 ] ||
	fail "dump --tag a,b"
expect_fail 1 "no snapshot matches paths '$SRC/x'" -- \
	"$CAIRN" dump --path "$SRC/x" latest "$SRC/home/me/doc.txt"

"$CAIRN" restore --tag daily --host h1 -t "$W/t1" latest > /dev/null
[ "$(cat "$W/t1$SRC/home/me/doc.txt")" = v1 ] || fail "restore --tag --host"
[ -f "$W/t1$SRC/etc/ssh/cfg" ] || fail "restore: /etc of S1"
"$CAIRN" restore --path "$SRC/home" -t "$W/t2" latest > /dev/null
[ "$(cat "$W/t2$SRC/home/me/doc.txt")" = v2 ] || fail "restore --path"
[ ! -e "$W/t2$SRC/etc" ] || fail "restore --path: took S1"

# A PATH inside the snapshot is absolute: a relative one was taken from the
# snapshot's root ('.' meant everything), unlike --path, which takes the cwd.
for p in . home/me "$(basename "$SRC")" ''; do
	(cd "$SRC" && expect_fail 2 "PATH must be absolute" -- "$CAIRN" ls latest "$p")
	(cd "$SRC" && expect_fail 2 "PATH must be absolute" -- "$CAIRN" dump latest "$p")
	(cd "$SRC" && expect_fail 2 "PATH must be absolute" -- \
		"$CAIRN" restore -n -t "$W/rel" latest "$p")
done
[ ! -e "$W/rel" ] || fail "restore with a relative PATH made its target"
(cd "$SRC" && expect_fail 2 "e.g. $SRC/home" -- "$CAIRN" restore -t "$W/rel" latest home)

# Patterns that select nothing (a typo in --include, an --exclude of PATH
# itself) are a failure in one line, and make no target.
expect_fail 1 "nothing matched" -- "$CAIRN" restore --path "$SRC/home" -t "$W/t3" latest --include 'doc.tx'
expect_fail 1 "nothing matched" -- "$CAIRN" restore -n --path "$SRC/home" -t "$W/t3" latest --include 'nope*'
expect_fail 1 "nothing matched: .* of '$SRC/home/me/doc.txt'" -- "$CAIRN" restore --path "$SRC/home" \
	-t "$W/t3" --exclude doc.txt latest "$SRC/home/me/doc.txt"
[ ! -e "$W/t3" ] || fail "a restore that selected nothing made its target"
"$CAIRN" restore --path "$SRC/home" -t "$W/t3" latest --include 'doc.txt' > /dev/null
[ "$(cat "$W/t3$SRC/home/me/doc.txt")" = v2 ] || fail "restore --include doc.txt"

# ---- diff and find ---------------------------------------------------------
"$CAIRN" diff --path "$SRC/home" "$S1" latest > "$W/diff"
grep -q "^M  *$SRC/home/me/doc.txt" "$W/diff" || fail "diff --path: $(cat "$W/diff")"
# Without --path, latest is S2 (/etc/ssh only): /home would be gone, not modified.
"$CAIRN" diff "$S1" latest | grep -q "^-  *$SRC/home/me/doc.txt" || fail "diff: latest"

"$CAIRN" find --host h1 doc.txt > "$W/find"
[ "$(wc -l < "$W/find")" = 1 ] && grep -q "^$S1 " "$W/find" || fail "find --host: $(cat "$W/find")"
"$CAIRN" find --tag manual doc.txt | grep -q "^$S3 " || fail "find --tag"
"$CAIRN" find --snapshot latest --path "$SRC/home" doc.txt > "$W/find"
[ "$(wc -l < "$W/find")" = 1 ] && grep -q "^$S3 " "$W/find" ||
	fail "find --snapshot latest --path: $(cat "$W/find")"
[ "$("$CAIRN" find --snapshot latest doc.txt | wc -l)" = 0 ] || fail "find --snapshot latest"

# ---- forget ----------------------------------------------------------------
# The policy sees only the filtered snapshots: S1 and S3 in one group.
"$CAIRN" forget -n --json --tag daily --group-by '' --keep-last 1 > "$W/forget"
[ "$(grep -c '"message_type":"snapshot"' "$W/forget")" = 2 ] || fail "forget --tag: $(cat "$W/forget")"
grep -q "\"id\":\"$S3[0-9a-f]*\".*\"action\":\"keep\"" "$W/forget" || fail "forget: keeps S3"
grep -q "\"id\":\"$S1[0-9a-f]*\".*\"action\":\"remove\"" "$W/forget" || fail "forget: removes S1"
# --group-of latest is the newest snapshot the filters match (S3 for h2), not
# the newest of all (S2, another host's, whose group the filters exclude).
"$CAIRN" forget -n --json --host h2 --keep-last 1 --group-of latest > "$W/forget"
grep -q "\"id\":\"$S3[0-9a-f]*\".*\"action\":\"keep\"" "$W/forget" ||
	fail "forget --host h2 --group-of latest: $(cat "$W/forget")"
expect_fail 1 "no snapshot matches host 'h9'" -- "$CAIRN" forget -n --host h9 --keep-last 1 --group-of latest
# By ID, 'latest' follows the filters.
"$CAIRN" forget --path "$SRC/home" latest > /dev/null
[ "$("$CAIRN" snapshots | rows)" = 2 ] && [ -z "$(id_of --host h2)" ] || fail "forget --path latest"

# ---- tags given as restic's TAG[,TAG...] ------------------------------------
# backup --tag a,b is two tags, a tag given twice is kept once.
"$CAIRN" backup --host h4 --tag x,y --tag y --tag z "$SRC/etc/ssh" > /dev/null
tags=$("$CAIRN" snapshots --json --host h4 | python3 -c '
import json, sys
print(" ".join(json.load(sys.stdin)[0]["tags"]))')
[ "$tags" = "x y z" ] || fail "backup --tag x,y --tag y --tag z: tags '$tags'"
[ "$("$CAIRN" snapshots --tag y,z | rows)" = 1 ] || fail "--tag y,z after backup --tag x,y"
[ "$("$CAIRN" snapshots --tag x,nope | rows)" = 0 ] || fail "--tag x,nope"
expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" backup --tag x,,y "$SRC/etc/ssh"
expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" backup --tag '' "$SRC/etc/ssh"
# forget --keep-tag x,z keeps the snapshot with both; x,nope keeps nothing.
"$CAIRN" forget -n --json --host h4 --keep-tag x,z > "$W/forget"
grep -q '"action":"keep".*"reasons":\["tag"\]' "$W/forget" || fail "--keep-tag x,z: $(cat "$W/forget")"
"$CAIRN" forget -n --json --host h4 --keep-tag x,nope > "$W/forget"
grep -q '"action":"remove"' "$W/forget" && ! grep -q '"action":"keep"' "$W/forget" ||
	fail "--keep-tag x,nope: $(cat "$W/forget")"

# Blanks around each tag of a list are left out, as "a, b" is written: in
# backup --tag, tag --add/--remove/--set, the --tag filter and --keep-tag.
"$CAIRN" backup --host h5 --tag 'b1, b2 ' "$SRC/etc/ssh" > /dev/null
"$CAIRN" tag --host h5 --add ' b3 ,b4' latest > /dev/null
"$CAIRN" tag --host h5 --remove 'b4 ' latest > /dev/null
tags=$("$CAIRN" snapshots --json --host h5 | python3 -c '
import json, sys
print(",".join(json.load(sys.stdin)[0]["tags"]))')
[ "$tags" = "b1,b2,b3" ] || fail "tags with blanks: '$tags'"
[ "$("$CAIRN" snapshots --tag ' b2' | rows)" = 1 ] || fail "--tag ' b2'"
[ "$("$CAIRN" snapshots --tag 'b1 , b3' | rows)" = 1 ] || fail "--tag 'b1 , b3'"
"$CAIRN" forget -n --json --host h5 --keep-tag 'b1, b2' > "$W/forget"
grep -q '"action":"keep".*"reasons":\["tag"\]' "$W/forget" || fail "--keep-tag 'b1, b2': $(cat "$W/forget")"
"$CAIRN" tag --host h5 --set 'c1,  c2' latest > /dev/null
[ "$("$CAIRN" snapshots --tag c2,c1 | rows)" = 1 ] || fail "tag --set 'c1,  c2'"
expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" backup --tag 'x, ,y' "$SRC/etc/ssh"
expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" tag --add ' ' latest
# --keep-tag '' kept only untagged snapshots and ',' every one; both are refused,
# and so is a --tag filter with an empty tag ('' alone still means no tags).
n_before=$("$CAIRN" snapshots | rows)
for k in '' ',' ' , ' 'b1,,b2'; do
	expect_fail 2 "keep-tag" -- "$CAIRN" forget --keep-tag "$k" --group-by ''
done
[ "$("$CAIRN" snapshots | rows)" = "$n_before" ] || fail "a refused --keep-tag removed snapshots"
expect_fail 2 "keep-tag: give a tag" -- "$CAIRN" forget --keep-tag '' --keep-last 1
for t in ',' ',,' 'b1,' ' '; do
	expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" snapshots --tag "$t"
	expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" ls --tag "$t" latest
done
echo "ok"
