#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lifecycle end to end: diff, find, stats, forget policies (dry run and real),
# prune reclaiming space with every remaining snapshot restoring identically,
# check finding a flipped byte by file path, locks (conflicts, waiting, stale
# holders, unlock) and backups running concurrently with prune.
. "$(dirname "$0")/lib.sh"

init_repo --chunk-size 64K/128K/512K --pack-size 1M
O="$W/o"
SRC="$W/src"
mkdir -p "$O" "$SRC/docs"
HOST=$(hostname)

snap_count() { find "$CAIRN_REPO/snapshots" -type f | wc -l; }
pack_bytes() { find "$CAIRN_REPO/packs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
# backup ARGS...: back up $SRC and print the new snapshot's short ID.
backup() {
	"$CAIRN" backup "$@" "$SRC" > /dev/null
	"$CAIRN" snapshots | awk 'length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { id = $1 } END { print id }'
}
# restored_sum SNAP DIR: checksum of DIR as snapshot SNAP holds it.
restored_sum() {
	local t="$O/restore-$1"
	rm -rf "$t"
	"$CAIRN" restore "$1" --target "$t" > /dev/null || fail "restore of $1 failed"
	tree_sum "$t$2"
}
# out_has FILE TEXT: the file contains TEXT (fixed string).
out_has() { grep -qF -- "$2" "$1" || fail "'$2' missing from: $(cat "$1")"; }
out_lacks() { ! grep -qF -- "$2" "$1" || fail "'$2' unexpected in: $(cat "$1")"; }

# ---- bad usage -----------------------------------------------------------
expect_fail 2 "give a policy" -- "$CAIRN" forget
expect_fail 2 "not a duration" -- "$CAIRN" forget --keep-within 5x
expect_fail 2 "either a policy or snapshot IDs" -- "$CAIRN" forget --keep-last 1 abcd
expect_fail 2 "group-by" -- "$CAIRN" forget --keep-last 1 --group-by hostname
expect_fail 2 "percentage" -- "$CAIRN" prune --max-unused 120
expect_fail 2 "K/M" -- "$CAIRN" check --read-data-subset 4/3
expect_fail 2 "give two snapshots" -- "$CAIRN" diff latest
expect_fail 2 "at least one pattern" -- "$CAIRN" find

# ---- four snapshots, two hosts -------------------------------------------
echo hello > "$SRC/docs/a.txt"
seq 1 100000 > "$SRC/docs/numbers.txt"
head -c 400000 /dev/urandom > "$SRC/keep.bin"
S1=$(backup --tag first)
sum1=$(tree_sum "$SRC")
head -c 1500000 /dev/urandom > "$SRC/only-in-s2.bin"
echo changed >> "$SRC/docs/a.txt"
chmod 600 "$SRC/docs/numbers.txt"
S2=$(backup)
rm "$SRC/only-in-s2.bin" "$SRC/docs/numbers.txt"
mkdir "$SRC/new"
echo x > "$SRC/new/x.conf"
S3=$(backup --host other)
sum3=$(tree_sum "$SRC")
echo more > "$SRC/docs/b.txt"
S4=$(backup)
sum4=$(tree_sum "$SRC")
[ "$(snap_count)" = 4 ] || fail "expected 4 snapshots"

# ---- diff ----------------------------------------------------------------
"$CAIRN" diff "$S1" "$S2" > "$O/diff12"
out_has "$O/diff12" "+    $SRC/only-in-s2.bin"
out_has "$O/diff12" "M    $SRC/docs/a.txt"
out_has "$O/diff12" "U    $SRC/docs/numbers.txt  (mode)"
out_has "$O/diff12" "1 added, 0 removed, 1 modified, 1 with new metadata"
"$CAIRN" diff "$S2" "$S3" > "$O/diff23"
out_has "$O/diff23" "-    $SRC/only-in-s2.bin"
out_has "$O/diff23" "-    $SRC/docs/numbers.txt"
out_has "$O/diff23" "+    $SRC/new/"
out_has "$O/diff23" "+    $SRC/new/x.conf"
"$CAIRN" diff --json "$S2" "$S3" > "$O/diff23.json"
out_has "$O/diff23.json" "{\"message_type\":\"change\",\"path\":\"$SRC/new/x.conf\",\"modifier\":\"+\",\"fields\":[]}"
out_has "$O/diff23.json" '"message_type":"statistics","added":2,"removed":2'
"$CAIRN" diff "$S1" "$S1" > "$O/diff11"
[ "$(grep -c '^[-+MUT] ' "$O/diff11")" = 0 ] || fail "a snapshot differs from itself"
expect_fail 1 "no snapshot matches" -- "$CAIRN" diff "$S1" ffffffff

# ---- find ----------------------------------------------------------------
"$CAIRN" find '*.conf' > "$O/find"
[ "$(wc -l < "$O/find")" = 2 ] || fail "*.conf: $(cat "$O/find")"
out_has "$O/find" "$S3  "
out_has "$O/find" "$S4  "
"$CAIRN" find 'only-in-*' > "$O/find"
[ "$(wc -l < "$O/find")" = 1 ] || fail "only-in-*: $(cat "$O/find")"
out_has "$O/find" "$S2  "
"$CAIRN" find --snapshot "$S1" a.txt > "$O/find"
[ "$(wc -l < "$O/find")" = 1 ] || fail "--snapshot: $(cat "$O/find")"
out_has "$O/find" "$SRC/docs/a.txt"
# A matching directory is printed once, with a '/', not with its content.
"$CAIRN" find "$SRC/docs" > "$O/find"
[ "$(wc -l < "$O/find")" = 4 ] || fail "a directory: $(cat "$O/find")"
out_has "$O/find" "$SRC/docs/"
"$CAIRN" find --json numbers.txt > "$O/find.json"
[ "$(grep -c '"type":"file","size":588895' "$O/find.json")" = 2 ] || fail "find --json: $(cat "$O/find.json")"

# ---- stats ---------------------------------------------------------------
"$CAIRN" stats --json > "$O/stats.json"
out_has "$O/stats.json" '"snapshots":4,'
logical=$(grep -o '"logical_size":[0-9]*' "$O/stats.json" | cut -d: -f2)
unique=$(grep -o '"unique_raw_size":[0-9]*' "$O/stats.json" | cut -d: -f2)
[ "$logical" -gt "$unique" ] || fail "no deduplication counted: $(cat "$O/stats.json")"
"$CAIRN" stats > "$O/stats"
out_has "$O/stats" "dedup ratio"

# ---- forget: dry runs show what and why ----------------------------------
"$CAIRN" forget --dry-run --keep-last 1 > "$O/forget"
out_has "$O/forget" "host $HOST, paths $SRC:"
out_has "$O/forget" "host other, paths $SRC:"
grep -q "^  keep    $S4  .*  last$" "$O/forget" || fail "S4 not kept: $(cat "$O/forget")"
grep -q "^  keep    $S3  .*  last$" "$O/forget" || fail "S3 not kept in its group"
grep -q "^  remove  $S2  " "$O/forget" && grep -q "^  remove  $S1  " "$O/forget" ||
	fail "S1 and S2 not removed: $(cat "$O/forget")"
out_has "$O/forget" "would remove 2 snapshots, would keep 2 (dry run"
[ "$(snap_count)" = 4 ] || fail "a dry run removed snapshots"
"$CAIRN" forget -n --keep-last 1 --keep-tag first > "$O/forget"
grep -q "^  keep    $S1  .*  tag$" "$O/forget" || fail "tagged S1 not kept: $(cat "$O/forget")"
"$CAIRN" forget -n --keep-within 1d --group-by '' > "$O/forget"
[ "$(grep -c '  within$' "$O/forget")" = 4 ] || fail "--keep-within: $(cat "$O/forget")"
"$CAIRN" forget -n --keep-last 1 --host other > "$O/forget"
out_has "$O/forget" "would remove 0 snapshots, would keep 1"
"$CAIRN" forget -n --json --keep-last 2 --group-by '' > "$O/forget.json"
[ "$(grep -c '"action":"keep","reasons":\["last"\]' "$O/forget.json")" = 2 ] ||
	fail "forget --json: $(cat "$O/forget.json")"
out_has "$O/forget.json" '"command":"forget","dry_run":true,"kept":2,"removed":2'

# ---- forget and prune for real -------------------------------------------
"$CAIRN" forget --keep-last 1 --keep-tag first > "$O/forget"
out_has "$O/forget" "removed 1 snapshots, kept 3"
[ "$(snap_count)" = 3 ] && [ ! -e "$CAIRN_REPO/snapshots/$S2"* ] || fail "S2 not removed"
before=$(pack_bytes)
"$CAIRN" prune > "$O/prune"
out_has "$O/prune" "reclaimed"
after=$(pack_bytes)
[ $((before - after)) -ge 1000000 ] || fail "prune freed only $((before - after)) bytes"
[ "$(restored_sum "$S1" "$SRC")" = "$sum1" ] || fail "S1 restores differently after prune"
[ "$(restored_sum "$S3" "$SRC")" = "$sum3" ] || fail "S3 restores differently after prune"
[ "$(restored_sum "$S4" "$SRC")" = "$sum4" ] || fail "S4 restores differently after prune"
"$CAIRN" check --read-data > "$O/check" || fail "check after prune: $(cat "$O/check")"
out_has "$O/check" ": 0 errors"
"$CAIRN" prune --json > "$O/prune.json"
out_has "$O/prune.json" '"packs_deleted":0,"packs_repacked":0'
"$CAIRN" forget "$S3" --prune > "$O/forget"
out_has "$O/forget" "  remove  $S3  "
[ "$(snap_count)" = 2 ] || fail "forget by ID"
[ "$(restored_sum "$S4" "$SRC")" = "$sum4" ] || fail "S4 restores differently"

# ---- a flipped byte: check names the pack, snapshot and file -------------
head -c 300000 /dev/urandom > "$SRC/victim.bin"
find "$CAIRN_REPO/packs" -type f | sort > "$O/packs-before"
S5=$(backup)
find "$CAIRN_REPO/packs" -type f | sort > "$O/packs-after"
cp -a "$CAIRN_REPO" "$W/damaged"
new=$(comm -13 "$O/packs-before" "$O/packs-after" | head -1)
pack=$(basename "$new")
# The only new data blobs are victim.bin's; damage the first one.
off=$(CAIRN_REPO="$W/damaged" "$CAIRN" cat pack "$pack" | awk '$2 == "data" { print $4; exit }')
[ -n "$off" ] || fail "no data blob in the new pack"
python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]) + 60); b = f.read(1); f.seek(int(sys.argv[2]) + 60); f.write(bytes([b[0] ^ 1]))' \
	"$W/damaged/${new#"$CAIRN_REPO"/}" "$off"
rc=0
CAIRN_REPO="$W/damaged" "$CAIRN" check --read-data > "$O/check" 2> "$O/check.err" || rc=$?
[ "$rc" = 1 ] || fail "check --read-data exit $rc on a damaged pack"
out_has "$O/check" "pack ${pack:0:8} offset $off"
out_has "$O/check" "snapshot $S5 of"
out_has "$O/check" "  $SRC/victim.bin: blob"
out_lacks "$O/check" "$SRC/keep.bin"
out_has "$O/check.err" "check found"
# A subset that does not read that pack finds nothing; parts 1..4 of 4 cover it.
found=0
for k in 1 2 3 4; do
	CAIRN_REPO="$W/damaged" "$CAIRN" check --read-data-subset "$k/4" > "$O/check" 2>&1 ||
		found=$((found + 1))
done
[ "$found" = 1 ] || fail "damage found by $found of 4 subsets"
[ "$(CAIRN_REPO="$W/damaged" "$CAIRN" check > /dev/null 2>&1; echo $?)" = 0 ] ||
	fail "a data blob's damage made the structure check fail"

# ---- locks ---------------------------------------------------------------
# live_lock KIND COMMAND PID: a lock file as another cairn process writes it.
live_lock() {
	local name
	name=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf 'cairn-lock 1\nkind = %s\ncommand = %s\nhost = %s\npid = %s\nstart = %s\n' \
		"$1" "$2" "$HOST" "$3" "$(date +%s)" > "$CAIRN_REPO/locks/$name"
	echo "$name"
}
sleep 600 & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
name=$(live_lock shared backup "$holder")
expect_fail 1 "in use by backup on host $HOST pid $holder since" -- "$CAIRN" prune
expect_fail 1 "in use by backup" -- "$CAIRN" forget --keep-last 1
"$CAIRN" check > /dev/null || fail "check must run beside a backup"
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "1 locks of running commands were kept"
[ -e "$CAIRN_REPO/locks/$name" ] || fail "unlock removed a live lock"
# prune waits for the backup; once its process is gone, the lock no longer counts.
"$CAIRN" prune --lock-wait 120 > "$O/prune" 2>&1 & waiter=$!
sleep 1
kill "$holder"
wait "$holder" 2> /dev/null || true
wait "$waiter" || fail "prune --lock-wait failed: $(cat "$O/prune")"
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "removed shared lock $name: backup on host $HOST pid $holder"
out_has "$O/unlock" "(process gone)"
[ -z "$(ls "$CAIRN_REPO/locks")" ] || fail "locks left: $(ls "$CAIRN_REPO/locks")"
sleep 600 & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
name=$(live_lock exclusive prune "$holder")
expect_fail 1 "locked exclusively by prune on host $HOST pid $holder" -- \
	"$CAIRN" backup "$SRC"
"$CAIRN" unlock --list > "$O/unlock"
out_has "$O/unlock" "exclusive lock $name: prune"
"$CAIRN" unlock --all > "$O/unlock"
out_has "$O/unlock" "removed exclusive lock $name"
"$CAIRN" backup "$SRC" > /dev/null || fail "backup after unlock --all"
kill "$holder"

# ---- backups and prune at the same time lose nothing ---------------------
C="$W/conc"
# gen I: the content of $C for iteration I, the same whenever it is made.
gen() {
	local d=${2:-$C}
	rm -rf "$d"
	mkdir -p "$d/sub"
	seq 1 20000 | sed "s/^/iter $1 /" > "$d/sub/log.txt"
	awk -v i="$1" 'BEGIN { srand(i); for (k = 0; k < 40000; k++) printf "%08x", int(rand() * 4294967296) }' > "$d/rand.txt"
	echo common > "$d/common.txt"
}
(
	for i in 1 2 3 4 5 6; do
		gen "$i"
		ok=0
		for _ in $(seq 1 600); do
			if "$CAIRN" backup --tag "iter-$i" --host conc "$C" > /dev/null 2> "$O/bk.err"; then
				ok=1
				break
			fi
			grep -q "locked exclusively by" "$O/bk.err" || { cat "$O/bk.err"; exit 1; }
			sleep 0.1
		done
		[ "$ok" = 1 ] || { echo "backup $i never got the lock"; exit 1; }
	done
) & loop=$!
for _ in 1 2 3 4 5; do
	"$CAIRN" forget --host conc --keep-last 2 --prune --max-unused 0 --lock-wait 120 \
		> /dev/null || fail "forget --prune beside backups"
done
wait "$loop" || fail "the backup loop failed"
"$CAIRN" forget --host conc --keep-last 2 --prune --max-unused 0 > /dev/null
"$CAIRN" check --read-data > "$O/check" || fail "check after concurrent prune: $(cat "$O/check")"
"$CAIRN" snapshots --host conc | awk 'length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { print $1, $5 }' > "$O/conc"
[ "$(wc -l < "$O/conc")" = 2 ] || fail "expected 2 snapshots of host conc: $(cat "$O/conc")"
grep -q " iter-6$" "$O/conc" || fail "the last backup is missing: $(cat "$O/conc")"
while read -r id tag; do
	gen "${tag#iter-}" "$O/expect"
	[ "$(restored_sum "$id" "$C")" = "$(tree_sum "$O/expect")" ] ||
		fail "snapshot $id ($tag) does not restore what was backed up"
done < "$O/conc"
[ "$(restored_sum "$S4" "$SRC")" = "$sum4" ] || fail "S4 restores differently at the end"
echo "lifecycle: ok"
