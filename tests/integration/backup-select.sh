#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What restic and borg users choose a backup's content with: --files-from (and
# -verbatim, -raw, from a file or stdin), --stdin with --stdin-filename,
# --exclude-if-present, --exclude-larger-than, --iexclude and --iexclude-file,
# each checked in the snapshot; and the job file keys that pass them on.
. "$(dirname "$0")/lib.sh"

O="$W/o"
S="$W/src"
mkdir -p "$O" "$S"
init_repo --chunk-size 64K/128K/512K
# ls_latest DIR: the entries of the latest snapshot below DIR, relative to it
ls_latest() { "$CAIRN" ls -R latest "$1" | sed "s|^$1||"; }
# paths_latest: the paths the latest snapshot lists, one per line
paths_latest() {
	"$CAIRN" snapshots --json | python3 -c 'import json,sys
for p in json.load(sys.stdin)[-1]["paths"]: print(p)'
}
same() { # WANT-FILE GOT-FILE WHAT
	diff "$1" "$2" > "$O/diff" || fail "$3: $(cat "$O/diff")"
}

# ---- --files-from: trimmed, comments and blank lines skipped, globs expanded --
mkdir -p "$S/ff/a" "$S/ff/b" "$S/ff/logs" "$S/ff/ignored"
echo a > "$S/ff/a/1"
echo b > "$S/ff/b/2"
echo l1 > "$S/ff/logs/x.log"
echo l2 > "$S/ff/logs/y.log"
echo no > "$S/ff/logs/z.txt"
echo i > "$S/ff/ignored/i"
cat > "$O/list" <<EOF
# what to back up

   $S/ff/a   
$S/ff/logs/*.log
$S/ff/nothing-*
ff/b
EOF
# A glob that matches nothing is a path that cannot be reached, as a missing
# path written out is: the snapshot is partial, exit status 3.
rc=0
(cd "$S" && "$CAIRN" backup --files-from "$O/list" > "$O/ff.out" 2> "$O/ff.err") || rc=$?
[ "$rc" = 3 ] || fail "--files-from with a glob without match: exit $rc: $(cat "$O/ff.err")"
grep -q "cannot back up '$S/ff/nothing-\*': No such file or directory" "$O/ff.err" ||
	fail "no warning for a glob without match: $(cat "$O/ff.err")"
grep -q "partial" "$O/ff.out" || fail "--files-from: not partial: $(cat "$O/ff.out")"
"$CAIRN" snapshots --json | grep -q '"partial":true' || fail "--files-from: snapshot not partial"
printf '%s\n' "$S/ff/a" "$S/ff/b" "$S/ff/logs/x.log" "$S/ff/logs/y.log" "$S/ff/nothing-*" |
	LC_ALL=C sort > "$O/want"
paths_latest > "$O/got"
same "$O/want" "$O/got" "--files-from paths"
printf '/a\n/a/1\n/b\n/b/2\n/logs\n/logs/x.log\n/logs/y.log\n' > "$O/want"
ls_latest "$S/ff" > "$O/got"
same "$O/want" "$O/got" "--files-from content"
# Together with paths on the command line, and read from stdin.
echo "$S/ff/ignored" | "$CAIRN" backup --files-from - "$S/ff/a" > /dev/null
printf '%s\n' "$S/ff/a" "$S/ff/ignored" > "$O/want"
paths_latest > "$O/got"
same "$O/want" "$O/got" "--files-from - with a path"

# ---- --files-from-verbatim and --files-from-raw: names as they are ----------
mkdir -p "$S/odd"
echo 1 > "$S/odd/ spaced "
echo 2 > "$S/odd/#hash"
echo 3 > "$S/odd/new
line"
echo 4 > "$S/odd/star*"
printf '%s\n' "$S/odd/ spaced " "" "$S/odd/#hash" "$S/odd/star*" > "$O/verbatim"
"$CAIRN" backup --files-from-verbatim "$O/verbatim" > /dev/null
printf '%s\n' "$S/odd/ spaced " "$S/odd/#hash" "$S/odd/star*" | sort > "$O/want"
paths_latest > "$O/got"
same "$O/want" "$O/got" "--files-from-verbatim"
(cd "$S/odd" && find "$S/odd" -type f -print0) > "$O/raw"
"$CAIRN" backup --files-from-raw "$O/raw" > /dev/null
[ "$("$CAIRN" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[-1]["paths"]))')" = 4 ] ||
	fail "--files-from-raw: $(paths_latest)"
"$CAIRN" dump latest "$S/odd/new
line" | grep -qx 3 || fail "--files-from-raw: the name with a newline"
printf '%s\0%s' "$S/odd/#hash" "$S/odd/star*" > "$O/raw-bad"
expect_fail 1 "the last name has no NUL byte at its end" -- "$CAIRN" backup --files-from-raw "$O/raw-bad"
expect_fail 1 "cannot read the list of paths '$W/no-list'" -- "$CAIRN" backup --files-from "$W/no-list"
printf '# nothing\n' > "$O/empty-list"
expect_fail 1 "nothing to back up: the lists hold no path" -- "$CAIRN" backup --files-from "$O/empty-list"

# ---- --stdin ------------------------------------------------------------------
head -c 3000000 /dev/urandom > "$O/dump.bin"
n=$(ls "$CAIRN_REPO/snapshots" | wc -l)
"$CAIRN" backup --stdin --stdin-filename db.sql --tag dump < "$O/dump.bin" > /dev/null
paths_latest > "$O/got"
echo /db.sql | same - "$O/got" "--stdin paths"
"$CAIRN" dump latest /db.sql | cmp - "$O/dump.bin" || fail "--stdin: the content differs"
"$CAIRN" ls -l latest /db.sql | grep -q " 3000000 " || fail "--stdin: size: $("$CAIRN" ls -l latest /db.sql)"
printf 'plain\n' | "$CAIRN" backup --stdin --json > "$O/stdin.json"
grep -q '"files_new":1,' "$O/stdin.json" || fail "--stdin summary: $(cat "$O/stdin.json")"
"$CAIRN" dump latest /stdin | grep -qx plain || fail "--stdin: default name"
: | "$CAIRN" backup --stdin --stdin-filename empty > /dev/null
[ -z "$("$CAIRN" dump latest /empty)" ] || fail "--stdin: an empty input"
[ "$(ls "$CAIRN_REPO/snapshots" | wc -l)" = $((n + 3)) ] || fail "--stdin: snapshots"
expect_fail 2 "--stdin takes no paths" -- "$CAIRN" backup --stdin "$S"
expect_fail 2 "--stdin takes no paths" -- "$CAIRN" backup --stdin --files-from "$O/list"
expect_fail 2 "not a file name" -- "$CAIRN" backup --stdin --stdin-filename a/b
expect_fail 2 "needs --stdin" -- "$CAIRN" backup --stdin-filename x "$S"

# ---- --exclude-if-present, --exclude-larger-than, --iexclude --------------------
E="$S/ex"
mkdir -p "$E/marked" "$E/header-ok" "$E/header-no" "$E/sizes" "$E/case"
echo m > "$E/marked/f"
: > "$E/marked/.nobackup"
printf 'KEEP-OUT v1\n' > "$E/header-ok/.tag"
printf 'other\n' > "$E/header-no/.tag"
head -c 1024 /dev/zero > "$E/sizes/exactly-1k"
head -c 1025 /dev/zero > "$E/sizes/over-1k"
for f in a.JPG b.jpg c.Jpg d.png e.TXT; do echo "$f" > "$E/case/$f"; done
printf '*.txt\n' > "$O/iex"
EX=(--exclude-if-present .nobackup --exclude-if-present ".tag:KEEP-OUT" --exclude-larger-than 1K
	--iexclude '*.jpg' --iexclude-file "$O/iex")
"$CAIRN" backup "${EX[@]}" "$E" > /dev/null
printf '%s\n' /case /case/d.png /header-no /header-no/.tag /sizes /sizes/exactly-1k > "$O/want"
ls_latest "$E" > "$O/got"
same "$O/want" "$O/got" "excludes of restic and borg"
"$CAIRN" backup -n --list "${EX[@]}" "$E" | grep '^excluded ' | sort > "$O/got"
sort > "$O/want" <<EOF
excluded   $E/case/a.JPG (--iexclude '*.jpg')
excluded   $E/case/b.jpg (--iexclude '*.jpg')
excluded   $E/case/c.Jpg (--iexclude '*.jpg')
excluded   $E/case/e.TXT (--iexclude-file $O/iex:1 '*.txt')
excluded   $E/header-ok (--exclude-if-present .tag:KEEP-OUT)
excluded   $E/marked (--exclude-if-present .nobackup)
excluded   $E/sizes/over-1k (--exclude-larger-than 1K)
EOF
same "$O/want" "$O/got" "--list of the excludes"
# The paths given are not excluded, only what is below them.
"$CAIRN" backup --exclude-larger-than 1K --iexclude '*.JPG' "$E/sizes/over-1k" "$E/case/a.JPG" > /dev/null
printf '%s\n' "$E/case/a.JPG" "$E/sizes/over-1k" > "$O/want"
"$CAIRN" ls -R latest "$E" | grep -v '/case$\|/sizes$' > "$O/got"
same "$O/want" "$O/got" "excludes applied to the paths given"
expect_fail 2 "not a size" -- "$CAIRN" backup --exclude-larger-than 10X "$E"
expect_fail 2 "NAME\[:HEADER\]" -- "$CAIRN" backup --exclude-if-present a/b "$E"
expect_fail 2 "bad pattern" -- "$CAIRN" backup --iexclude '[x' "$E"

# ---- the same from a job file -------------------------------------------------
export CAIRN_CONFIG_DIR="$W/conf"
mkdir -p "$CAIRN_CONFIG_DIR"
printf '%s\n' "$E" > "$O/job-list"
cat > "$CAIRN_CONFIG_DIR/sel.conf" <<EOF
repository = $CAIRN_REPO
password-file = $CAIRN_PASSWORD_FILE
files-from = $O/job-list
exclude-if-present = .nobackup
exclude-if-present = .tag:KEEP-OUT
exclude-larger-than = 1K
iexclude = *.jpg
iexclude-file = $O/iex
EOF
env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" run --dry-run sel > "$O/dry"
grep -q " backup --files-from $O/job-list --iexclude '\*.jpg' --iexclude-file $O/iex --exclude-if-present .nobackup --exclude-if-present .tag:KEEP-OUT --exclude-larger-than 1K --\$" "$O/dry" ||
	fail "the job's backup line: $(cat "$O/dry")"
env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" run sel > /dev/null 2> "$O/run.err" || fail "job: $(cat "$O/run.err")"
printf '%s\n' /case /case/d.png /header-no /header-no/.tag /sizes /sizes/exactly-1k > "$O/want"
ls_latest "$E" > "$O/got"
same "$O/want" "$O/got" "the job's excludes"
echo "backup-select: all passed"

# ---- an exclude that matches a directory above the path given leaves out nothing --
# ($W lies under /tmp or /var/tmp; "src" is the path's own last name.)
mkdir -p "$S/up/tmp/src/a/tmp" "$S/up/tmp/src/b"
echo 1 > "$S/up/tmp/src/a/f"
echo 2 > "$S/up/tmp/src/a/tmp/g"
echo 3 > "$S/up/tmp/src/b/x.o"
P="$S/up/tmp/src"
"$CAIRN" backup --exclude tmp --exclude src --exclude "$(basename "$W")" --exclude "$S/up" \
	--exclude '*.o' "$P" > /dev/null || fail "backup with excludes above the path"
printf '/a\n/a/f\n/b\n' > "$O/want-up"
ls_latest "$P" > "$O/got-up"
same "$O/want-up" "$O/got-up" "excludes matching above the path given"
# Rewrite counts matches the same way: below the snapshot's paths.
"$CAIRN" rewrite --forget --exclude up --exclude f latest > /dev/null || fail "rewrite with excludes"
printf '/a\n/b\n' > "$O/want-up"
ls_latest "$P" > "$O/got-up"
same "$O/want-up" "$O/got-up" "rewrite's excludes matching above the path"
# And so does restore's --exclude.
"$CAIRN" restore latest --target "$O/up-restored" --exclude tmp > /dev/null || fail "restore --exclude"
(cd "$O/up-restored$P" && find . | sort) > "$O/got-up"
printf '.\n./a\n./b\n' > "$O/want-up"
same "$O/want-up" "$O/got-up" "restore's excludes matching above the snapshot's path"
