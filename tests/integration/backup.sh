#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn backup end to end: incremental no-op, shift resistance, excludes, dry run,
# JSON summary, metrics, partial snapshots (exit 3), files that cannot be read to
# the end, worker threads that cannot start, paths that do not exist, and bad
# input.
. "$(dirname "$0")/lib.sh"

json_field() { # FILE KEY: a number or string value from the last summary line
	grep '"message_type":"summary"' "$1" | tail -1 | grep -o "\"$2\":[^,}]*" | cut -d: -f2- | tr -d '"'
}

init_repo --chunk-size 64K/128K/512K
# Outputs go to $O, so that the directories above the backed-up one stay unchanged.
O="$W/o"
mkdir -p "$O"
X=(--exclude '*.tmp' --exclude-caches)
SRC="$W/src"
mkdir -p "$SRC/a/b" "$SRC/cache" "$SRC/skip"
for i in $(seq 1 50); do echo "file $i" > "$SRC/a/f$i.txt"; done
head -c 3000000 /dev/urandom > "$SRC/a/b/big.bin"
printf 'Signature: 8a477f597d28d172789f06886806bc55\n' > "$SRC/cache/CACHEDIR.TAG"
echo junk > "$SRC/cache/junk"
echo skipped > "$SRC/skip/x.tmp"
ln -s a/f1.txt "$SRC/link"
: > "$SRC/empty"

# Bad input first: no paths, missing path, bad option values.
expect_fail 2 "at least one path" -- "$CAIRN" backup
expect_fail 1 "cannot back up" -- "$CAIRN" backup "$W/does-not-exist"
expect_fail 2 "not a number" -- "$CAIRN" backup --compression 99 "$SRC"
expect_fail 1 "parent snapshot" -- "$CAIRN" backup --parent ffffffff "$SRC"
[ -z "$(ls "$CAIRN_REPO/snapshots")" ] || fail "a failed backup wrote a snapshot"

# Dry run stores nothing.
"$CAIRN" backup --dry-run --json "$SRC" > "$O/dry.json"
[ "$(json_field "$O/dry.json" dry_run)" = true ] || fail "dry run not reported"
[ -z "$(ls "$CAIRN_REPO/snapshots")" ] || fail "dry run wrote a snapshot"
[ -z "$(find "$CAIRN_REPO/packs" -type f)" ] || fail "dry run wrote packs"

# First backup, with excludes and JSON output.
"$CAIRN" backup --json --tag first --exclude '*.tmp' --exclude-caches \
	--metrics-file "$O/metrics.prom" "$SRC" > "$O/b1.json"
grep -q '"message_type":"summary"' "$O/b1.json" || fail "no JSON summary"
[ "$(json_field "$O/b1.json" files_new)" = 52 ] || fail "expected 52 new files: $(cat "$O/b1.json")"
[ "$(json_field "$O/b1.json" partial)" = false ] || fail "first backup partial"
[ "$(ls "$CAIRN_REPO/snapshots" | wc -l)" = 1 ] || fail "expected one snapshot"
grep -q '^cairn_backup_success{repo=".*"} 1$' "$O/metrics.prom" || fail "metrics: success"
grep -q '^cairn_backup_new_files{.*} 52$' "$O/metrics.prom" || fail "metrics: new_files"
grep -q '^cairn_backup_snapshots{.*} 1$' "$O/metrics.prom" || fail "metrics: snapshots"
[ -z "$(ls "$CAIRN_REPO/tmp")" ] || fail "temp files left behind: $(ls "$CAIRN_REPO/tmp")"

# No change: nothing read, nothing stored, same root tree.
"$CAIRN" backup --json "${X[@]}" "$SRC" > "$O/b2.json"
[ "$(json_field "$O/b2.json" files_unmodified)" = 52 ] || fail "expected 52 unmodified"
[ "$(json_field "$O/b2.json" files_new)" = 0 ] || fail "no-change backup found new files"
[ "$(json_field "$O/b2.json" bytes_read)" = 0 ] || fail "no-change backup read data"
# Only trees of directories above $SRC may change (other programs touch /tmp).
above=$(echo "$SRC" | tr -cd / | wc -c)
[ "$(json_field "$O/b2.json" blobs_added)" -le "$above" ] ||
	fail "no-change backup added blobs: $(cat "$O/b2.json")"
[ "$(ls "$CAIRN_REPO/snapshots" | wc -l)" = 2 ] || fail "expected two snapshots"

# One byte inserted at the start of a large file: at most 2 new data chunks, plus
# the trees on the path from the root to the file.
big="$SRC/a/b/big.bin"
{ printf 'X'; cat "$big"; } > "$O/big.new" && mv "$O/big.new" "$big"
"$CAIRN" backup --json "${X[@]}" "$SRC" > "$O/b3.json"
depth=$(echo "$big" | tr -cd / | wc -c)   # directories from / down to the file
added=$(json_field "$O/b3.json" blobs_added)
[ "$(json_field "$O/b3.json" files_changed)" = 1 ] || fail "expected 1 changed file"
[ "$added" -ge 1 ] && [ "$added" -le $((depth + 2)) ] ||
	fail "one-byte insertion added $added blobs (limit $((depth + 2)))"

# The same content under another path dedups entirely (only trees are new).
cp "$big" "$SRC/copy.bin"
"$CAIRN" backup --json "${X[@]}" "$SRC" > "$O/b4.json"
[ "$(json_field "$O/b4.json" bytes_added)" -lt 100000 ] || fail "copied file was stored again"

# Without a terminal and without --json only the summary is printed.
"$CAIRN" backup "$SRC" > "$O/plain.out" 2>&1
grep -q "^snapshot [0-9a-f]\{8\} saved$" "$O/plain.out" || fail "no summary line: $(cat "$O/plain.out")"
[ "$(wc -l < "$O/plain.out")" -le 3 ] || fail "too much output without a terminal"

# An unreadable file: a warning, a partial snapshot, exit status 3. Run as an
# unprivileged user, since root reads everything.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod -R a+rwX "$W"
	echo secret > "$SRC/a/secret"
	chmod 000 "$SRC/a/secret"
	echo more > "$SRC/a/secret2"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		env HOME=/ "$CAIRN" backup --json "$SRC" > "$O/b5.json" 2> "$O/b5.err" || rc=$?
	[ "$rc" = 3 ] || fail "unreadable file: expected exit 3, got $rc: $(cat "$O/b5.err")"
	grep -q "cannot read.*secret" "$O/b5.err" || fail "no warning naming the file"
	[ "$(json_field "$O/b5.json" partial)" = true ] || fail "snapshot not marked partial"
	# FORMAT.md §10: it stays in the snapshot with the metadata lstat gave, all
	# of it a hole, flagged; diff does not call it removed, its restore warns.
	[ "$(json_field "$O/b5.json" files_new)" = 2 ] || fail "the unreadable file was not kept: $(cat "$O/b5.json")"
	"$CAIRN" ls --json latest "$SRC/a/secret" > "$O/b5.ls"
	grep -q '"mode":0,.*"size":7,.*"extents":1,.*"incomplete":true}' "$O/b5.ls" ||
		fail "the unreadable file is not kept flagged with its metadata: $(cat "$O/b5.ls")"
	chmod 000 "$SRC/a/secret2" # read by the last backup, unreadable now
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		env HOME=/ "$CAIRN" backup "$SRC" > /dev/null 2> "$O/b5.err" || rc=$?
	[ "$rc" = 3 ] || fail "unreadable files again: expected exit 3, got $rc: $(cat "$O/b5.err")"
	ids=$("$CAIRN" snapshots --json | python3 -c 'import json,sys; print(*[s["id"] for s in json.load(sys.stdin)[-2:]])')
	"$CAIRN" diff $ids > "$O/b5.diff" 2>&1 || fail "diff: $(cat "$O/b5.diff")"
	! grep -q '^-' "$O/b5.diff" || fail "diff calls an unreadable file removed: $(cat "$O/b5.diff")"
	grep -q "^M    $SRC/a/secret2  (mode, incomplete)$" "$O/b5.diff" || fail "diff: $(cat "$O/b5.diff")"
	rc=0
	"$CAIRN" restore latest --target "$O/b5r" "$SRC/a" > /dev/null 2> "$O/b5r.err" || rc=$?
	[ "$rc" = 3 ] || fail "restore of an unreadable file: exit $rc: $(cat "$O/b5r.err")"
	grep -q "incomplete copy of '$SRC/a/secret'" "$O/b5r.err" || fail "restore did not warn: $(cat "$O/b5r.err")"
	[ "$(stat -c %a:%s "$O/b5r$SRC/a/secret")" = 0:7 ] || fail "restored as $(stat -c %a:%s "$O/b5r$SRC/a/secret")"
	rm -rf "$SRC/a/secret" "$SRC/a/secret2" "$O/b5r"
fi

# Worker threads that cannot start (CAIRN_TEST_THREAD_FAIL_AFTER=N: every thread
# creation after the first N fails): the backup goes on with those that started
# and the calling thread, says so, and restores exactly. Fresh content each time,
# so that the workers have chunks to store.
T="$W/threads"
for n in 0 2; do
	mkdir -p "$T/$n"
	head -c 3000000 /dev/urandom > "$T/$n/big.bin"
	CAIRN_TEST_THREAD_FAIL_AFTER=$n "$CAIRN" backup --threads 4 "$T" > /dev/null 2> "$O/thr.err" ||
		fail "backup with $n of 4 workers started: $(cat "$O/thr.err")"
	grep -q "cannot start worker thread $((n + 1)) of 4: .*going on with $n" "$O/thr.err" ||
		fail "no warning about the missing workers: $(cat "$O/thr.err")"
	"$CAIRN" restore latest --target "$O/thr-$n" "$T" > /dev/null
	[ "$(tree_sum "$O/thr-$n$T")" = "$(tree_sum "$T")" ] || fail "restore after $n workers differs"
done

# Files that cannot be read to the end (CAIRN_TEST_READ_FAIL=N:PATH: reads of
# PATH fail with EIO from byte N on): FORMAT.md §10 keeps what was read, stores
# the rest as a hole and flags the entry, so the size stays what stat said.
# A plain file, and a sparse one that fails in its second data region.
U="$W/unread"
mkdir -p "$U"
head -c 3000000 /dev/urandom > "$U/plain"
head -c 1048576 /dev/urandom > "$U/sparse"
truncate -s 5M "$U/sparse"
head -c 1048576 /dev/urandom >> "$U/sparse"
echo fine > "$U/fine"
# unread_case FILE N: back it up failing at N, check the entry and its restore
unread_case() {
	local f=$U/$1 n=$2 rc=0 size
	size=$(stat -c %s "$f")
	touch "$f" # changed since the last backup: read again
	CAIRN_TEST_READ_FAIL="$n:$f" "$CAIRN" backup "$U" > /dev/null 2> "$O/unread.err" || rc=$?
	[ "$rc" = 3 ] || fail "$1 unreadable from $n: exit $rc: $(cat "$O/unread.err")"
	grep -q "read error in '$f': Input/output error" "$O/unread.err" ||
		fail "no warning naming $f: $(cat "$O/unread.err")"
	"$CAIRN" ls --json latest "$f" > "$O/unread.ls"
	grep -q "\"size\":$size,.*\"incomplete\":true}" "$O/unread.ls" ||
		fail "$1: not its whole size, flagged incomplete: $(cat "$O/unread.ls")"
	rc=0
	"$CAIRN" restore latest --target "$O/unread-$1" "$f" > /dev/null 2> "$O/unread.err" || rc=$?
	[ "$rc" = 3 ] || fail "restore of incomplete $1: exit $rc: $(cat "$O/unread.err")"
	grep -q "incomplete copy of '$f'" "$O/unread.err" || fail "restore did not warn: $(cat "$O/unread.err")"
	local r=$O/unread-$1$f
	[ "$(stat -c %s "$r")" = "$size" ] || fail "$1 restored with $(stat -c %s "$r") bytes, not $size"
	cmp -n "$n" "$f" "$r" || fail "$1: the part read before the error differs"
	[ -z "$(tail -c +$((n + 1)) "$r" | tr -d '\0' | head -c 1)" ] || fail "$1: the unread tail is not zeros"
	"$CAIRN" check --read-data > /dev/null || fail "check after an incomplete $1"
	# The next backup reads it again, whole.
	"$CAIRN" backup "$U" > /dev/null
	"$CAIRN" ls --json latest "$f" | grep -q "\"size\":$size,.*\"incomplete\":false}" ||
		fail "$1 still incomplete after a good backup"
}
unread_case plain 1000123
unread_case sparse $((5 * 1048576 + 524288 + 77))

# Paths that are not there: each is a warning, like a file that cannot be read,
# and the snapshot is partial (exit 3), with the paths as asked, so that the
# next run finds it as its parent. restic and borg carry on the same way.
MP="$W/mp"
mkdir -p "$MP"
echo here > "$MP/here"
echo file > "$MP/file"
rc=0
"$CAIRN" backup --json "$MP/here" "$W/gone" "$MP/file/below" > "$O/mp.json" 2> "$O/mp.err" || rc=$?
[ "$rc" = 3 ] || fail "a missing path: exit $rc: $(cat "$O/mp.err")"
grep -q "^cairn: warning: cannot back up '$W/gone': No such file or directory$" "$O/mp.err" ||
	fail "no warning naming the missing path: $(cat "$O/mp.err")"
grep -q "^cairn: warning: cannot back up below '$MP/file': Not a directory$" "$O/mp.err" ||
	fail "no warning naming the path below a file: $(cat "$O/mp.err")"
[ "$(json_field "$O/mp.json" partial)" = true ] || fail "not partial: $(cat "$O/mp.json")"
[ "$(json_field "$O/mp.json" errors)" = 2 ] || fail "not 2 errors: $(cat "$O/mp.json")"
"$CAIRN" snapshots --json | python3 -c 'import json,sys
s=json.load(sys.stdin)[-1]
assert sorted(s["paths"])==sorted(sys.argv[1:]), s["paths"]' "$MP/here" "$W/gone" "$MP/file/below" ||
	fail "the snapshot does not list the paths asked for"
"$CAIRN" ls -R latest "$MP" > "$O/mp.ls"
[ "$(cat "$O/mp.ls")" = "$MP/here" ] || fail "the partial snapshot holds: $(cat "$O/mp.ls")"
# None of the paths exists: nothing to back up, no snapshot, exit 1.
n=$(ls "$CAIRN_REPO/snapshots" | wc -l)
expect_fail 1 "nothing to back up, none of the 2 paths exists: cannot back up '$W/gone'" -- \
	"$CAIRN" backup "$W/gone" "$W/gone2"
[ "$(ls "$CAIRN_REPO/snapshots" | wc -l)" = "$n" ] || fail "a backup of nothing wrote a snapshot"
# cairn run takes the partial backup for one (exit 3): forget and check still run.
# (A job file in a directory only its owner may change: $O was opened to nobody.)
mkdir -p "$O/jobs" && chmod 755 "$O/jobs"
cat > "$O/jobs/mp.conf" <<EOF
repository = $CAIRN_REPO
password-file = $CAIRN_PASSWORD_FILE
paths = $MP $W/gone
keep-last = 1
check = yes
EOF
rc=0
env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" -v run --config "$O/jobs/mp.conf" > "$O/run.out" 2> "$O/run.err" || rc=$?
[ "$rc" = 3 ] || fail "a job with a missing path: exit $rc: $(cat "$O/run.err")"
for step in forget check; do
	grep -q "^$step: done in .* (exit 0)$" "$O/run.err" || fail "$step did not run: $(cat "$O/run.err")"
done

# A time past what i64 nanoseconds hold (2262-04-11; ext4 takes up to 2446):
# clamped to the latest one, with a warning, not wrapped around to 1861.
F="$W/future"
mkdir -p "$F"
echo later > "$F/f"
touch -d '2400-01-01 00:00:00 UTC' "$F/f"
if [ "$(stat -c %Y "$F/f")" = 13569465600 ]; then
	"$CAIRN" backup --json "$F" > "$O/fu.json" 2> "$O/fu.err" || fail "backup of a file from 2400: $(cat "$O/fu.err")"
	grep -q "'$F/f' has a time outside the years 1677 to 2262" "$O/fu.err" ||
		fail "no warning about the time: $(cat "$O/fu.err")"
	[ "$(grep -c warning "$O/fu.err")" = 1 ] || fail "not one warning: $(cat "$O/fu.err")"
	"$CAIRN" ls --json latest "$F/f" | grep -q '"mtime":"2262-04-11T23:47:16.854775807+00:00"' ||
		fail "the time is not clamped: $("$CAIRN" ls --json latest "$F/f")"
	"$CAIRN" restore latest --target "$O/fu" "$F" > /dev/null
	[ "$(stat -c %Y "$O/fu$F/f")" = 9223372036 ] || fail "restored with the time $(stat -c %y "$O/fu$F/f")"
else
	echo "note: $F cannot hold the year 2400, clamped times not tested" >&2
fi

# JSON status messages, the terminal status line and the summary-only output of
# a backup held mid-way: backup-options.sh.
echo ok
