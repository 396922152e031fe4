#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lifecycle end to end: diff, find, stats, forget policies (dry run and real),
# prune reclaiming space with every remaining snapshot restoring identically,
# check finding a flipped byte by file path, locks (conflicts, waiting, stale
# holders, unlock) and backups running concurrently with prune; the
# --max-unused threshold, --read-data-subset N% (and a subset that selects no
# pack, with the share it read in cairn status), keep-hourly/daily/weekly under
# chosen time zones, and the locks sync takes.
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
# A snapshot named twice counts once.
"$CAIRN" stats --json latest > "$O/stats1.json"
"$CAIRN" stats --json latest "$S4" latest > "$O/stats2.json"
out_has "$O/stats1.json" '"snapshots":1,'
out_has "$O/stats.json" '"unreferenced_blobs":'
# Against the named snapshots only, unused blobs are not what prune frees.
! grep -q unreferenced "$O/stats1.json" || fail "stats --json SNAP: $(cat "$O/stats1.json")"
! grep -q unreferenced <("$CAIRN" stats latest) || fail "stats SNAP: unreferenced"
cmp "$O/stats1.json" "$O/stats2.json" || fail "a snapshot named twice counts twice: $(cat "$O/stats2.json")"

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
out_has "$O/forget" "removed 1 snapshot, kept 3"
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
# The only new data blobs are victim.bin's; damage the first one (trees may be
# in a new pack of their own).
off=
for new in $(comm -13 "$O/packs-before" "$O/packs-after"); do
	pack=$(basename "$new")
	off=$(CAIRN_REPO="$W/damaged" "$CAIRN" cat pack "$pack" | awk '$2 == "data" { print $4; exit }')
	[ -z "$off" ] || break
done
[ -n "$off" ] || fail "no data blob in the new packs"
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
# Parts 1..4 of 4 cover every pack, so one of them finds the damage; a part
# that selects no pack reads one of another part's instead, which may be this one.
found=0
for k in 1 2 3 4; do
	CAIRN_REPO="$W/damaged" "$CAIRN" check --read-data-subset "$k/4" > "$O/check" 2>&1 ||
		found=$((found + 1))
done
[ "$found" -ge 1 ] || fail "damage found by $found of 4 subsets"
# check --read-data dropped the damaged copy from the index: the structure
# check now knows the snapshot is damaged, until a backup of the file (still
# there, unchanged) stores the blob again and mends it.
rc=0
CAIRN_REPO="$W/damaged" "$CAIRN" check > "$O/check" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "snapshot $S5 of" "$O/check" ||
	fail "the structure check does not know the damage found: $(cat "$O/check")"
CAIRN_REPO="$W/damaged" "$CAIRN" backup "$SRC" > /dev/null || fail "backup of the damaged repository"
CAIRN_REPO="$W/damaged" "$CAIRN" check > "$O/check" 2>&1 ||
	fail "a backup did not mend the damaged blob: $(cat "$O/check")"

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
# Prune and forget run beside a backup; the packs prune chose wait for it.
echo "for prune to delete" > "$SRC/doomed.txt"
head -c 200000 /dev/urandom >> "$SRC/doomed.txt"
DOOMED=$(backup)
rm "$SRC/doomed.txt"
"$CAIRN" forget "$DOOMED" > /dev/null || fail "forget must run beside a backup"
"$CAIRN" prune --json > "$O/prune.json" || fail "prune must run beside a backup"
pending=$(json_field "$O/prune.json" packs_pending)
[ "$pending" -ge 1 ] || fail "no pack waits for the backup: $(cat "$O/prune.json")"
[ "$(ls "$CAIRN_REPO/prune" | wc -l)" = 1 ] || fail "no prune record"
grep -q "^wait = .*$name" "$CAIRN_REPO"/prune/* || fail "the record does not wait for $name"
"$CAIRN" check > /dev/null || fail "check must run beside a backup"
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "1 lock of a running command was kept"
[ -e "$CAIRN_REPO/locks/$name" ] || fail "unlock removed a live lock"
# Until the backup ends, the next prune keeps them; then it deletes them.
"$CAIRN" prune --json > "$O/prune.json"
[ "$(json_field "$O/prune.json" packs_finished)" = 0 ] || fail "deleted while the backup runs"
kill "$holder"
wait "$holder" 2> /dev/null || true
"$CAIRN" prune --json > "$O/prune.json"
[ "$(json_field "$O/prune.json" packs_finished)" = "$pending" ] ||
	fail "the waiting packs were not deleted: $(cat "$O/prune.json")"
[ -z "$(ls "$CAIRN_REPO/prune")" ] || fail "a prune record is left"
"$CAIRN" check --read-data > "$O/check" || fail "check after pending deletion: $(cat "$O/check")"
out_lacks "$O/check" "hold no indexed blob"
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "removed shared lock $name: backup on host $HOST pid $holder"
out_has "$O/unlock" "(process gone)"
# One prune at a time: a second waits for the first (here, for its process to go).
sleep 600 & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
name=$(live_lock prune prune "$holder")
expect_fail 1 "locked for pruning by prune on host $HOST pid $holder" -- "$CAIRN" prune
"$CAIRN" backup "$SRC" > /dev/null || fail "a prune must not stop a backup"
"$CAIRN" prune --lock-wait 120 > "$O/prune" 2>&1 & waiter=$!
sleep 1
kill "$holder"
wait "$holder" 2> /dev/null || true
wait "$waiter" || fail "prune --lock-wait failed: $(cat "$O/prune")"
"$CAIRN" unlock > "$O/unlock"
out_has "$O/unlock" "removed prune lock $name: prune on host $HOST pid $holder"
[ -z "$(ls "$CAIRN_REPO/locks")" ] || fail "locks left: $(ls "$CAIRN_REPO/locks")"
sleep 600 & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
name=$(live_lock exclusive rebuild-index "$holder")
expect_fail 1 "locked exclusively by rebuild-index on host $HOST pid $holder" -- \
	"$CAIRN" backup "$SRC"
"$CAIRN" unlock --list > "$O/unlock"
out_has "$O/unlock" "exclusive lock $name: rebuild-index"
"$CAIRN" unlock --all > "$O/unlock"
out_has "$O/unlock" "removed exclusive lock $name"
"$CAIRN" backup "$SRC" > /dev/null || fail "backup after unlock --all"
kill "$holder"

# A backup whose lock was removed (unlock --all), or that was stopped for longer
# than half the stale period (a suspended laptop), must not write its snapshot:
# a prune may have deleted what it reused meanwhile.
# lost_lock_backup NAME: start a backup (pid $bpid) reading a fifo; once its
# lock is placed, set $name to it. The fifo's writer (fd 7) stays open until
# the caller closes it.
lost_lock_backup() {
	rm -f "$W/fifo" && mkfifo "$W/fifo"
	"$CAIRN" backup --stdin --stdin-filename "$1" < "$W/fifo" > "$O/$1.out" 2>&1 &
	bpid=$!
	exec 7> "$W/fifo"
	head -c 300000 /dev/urandom >&7
	for _ in $(seq 100); do
		[ -n "$(ls "$CAIRN_REPO/locks")" ] && break
		sleep 0.1
	done
	name=$(ls "$CAIRN_REPO/locks")
	[ -n "$name" ] || fail "the backup placed no lock"
}
before=$(snap_count)
lost_lock_backup unlocked.bin
"$CAIRN" unlock --all > /dev/null
exec 7>&-
wait $bpid && fail "a backup whose lock was removed saved a snapshot: $(cat "$O/unlocked.bin.out")"
out_has "$O/unlocked.bin.out" "lost the repository lock 'locks/$name': it was removed"
[ "$(snap_count)" = "$before" ] || fail "a snapshot was written without a lock"
export CAIRN_TEST_LOCK_STALE_SECONDS=6
lost_lock_backup stopped.bin
kill -STOP $bpid
sleep 4 # past half the stale period (3 s), with no refresh
kill -CONT $bpid
exec 7>&-
wait $bpid && fail "a backup stopped past half the stale period saved a snapshot"
out_has "$O/stopped.bin.out" "lost the repository lock 'locks/$name': not refreshed for"
[ "$(snap_count)" = "$before" ] || fail "a snapshot was written with a stale lock"
unset CAIRN_TEST_LOCK_STALE_SECONDS
"$CAIRN" unlock --all > /dev/null

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
# ---- prune --max-unused: the threshold -----------------------------------
# A big file and GONE, files of one size that only the forgotten snapshot has.
# Which pack each blob lands in depends on which thread stored it, so the test
# computes each pack's unused share from its blob list (GONE's blobs, plus at
# most the unused tree bytes prune reports) and expects the default 5% to keep
# the packs below it and to rewrite those above. The small case is set up again
# until GONE shares the big file's pack (3% unused), so that one is kept.
export CAIRN_REPO="$W/threshold"
TH="$W/th-src"
json_num() { grep -o "\"$1\":[0-9]*" | cut -d: -f2; }
# threshold_case N SIZE: the big file plus N gone files of SIZE bytes.
threshold_case() {
	rm -rf "$CAIRN_REPO" "$TH"
	init_repo --chunk-size 64K/128K/512K --pack-size 1M
	mkdir -p "$TH"
	head -c $((900000 - $1 * $2)) /dev/urandom > "$TH/a-big"
	for i in $(seq 1 "$1"); do head -c "$2" /dev/urandom > "$TH/b-gone$i"; done
	"$CAIRN" backup "$TH" > /dev/null
	rm "$TH"/b-gone*
	"$CAIRN" backup "$TH" > /dev/null
	"$CAIRN" forget --keep-last 1 > /dev/null
	th_sum=$(tree_sum "$TH")
	"$CAIRN" prune -n --json | tail -1 > "$O/th.json"
	: > "$O/th.packs"
	local p
	for p in $(find "$CAIRN_REPO/packs" -type f); do
		"$CAIRN" cat pack "$(basename "$p")" |
			awk -v p="$p" -v size="$(stat -c %s "$p")" -v gone="$2" '
				$2 == "data" && $8 == gone { u += $6; n++ }
				END { print p, size, u + 0, n + 0, NR }' >> "$O/th.packs"
	done
}
# expect_threshold PERCENT: for each pack "path keep|rewrite" as prune with
# --max-unused PERCENT must treat it ("any" for a small pack of trees only);
# fails when the tree bytes make it unclear for another pack.
expect_threshold() {
	python3 - "$O/th.packs" "$(json_num bytes_unused < "$O/th.json")" "$1" << 'PY'
import sys
packs = [l.split() for l in open(sys.argv[1])]
gone = sum(int(p[2]) for p in packs)
trees = int(sys.argv[2]) - gone  # unused tree bytes, in some packs
assert 0 <= trees < 4096, (trees, packs)
for path, size, unused, n, entries in packs:
    lo, hi = int(unused) / int(size), (int(unused) + trees) / int(size)
    limit = float(sys.argv[3]) / 100
    if hi <= limit and lo <= limit:
        print(path, "keep")
    elif lo > limit:
        print(path, "rewrite")
    elif int(n) == 0 and int(size) < 8192:
        print(path, "any")  # a small pack of trees: it depends on which trees
    else:
        sys.exit("pack %s: unused share between %.3f and %.3f" % (path, lo, hi))
PY
}
# check_threshold PERCENT ARGS...: prune ARGS does what expect_threshold says.
check_threshold() {
	local pct=$1
	shift
	expect_threshold "$pct" > "$O/th.expect" || fail "threshold: $(cat "$O/th.packs")"
	"$CAIRN" prune --json "$@" | tail -1 > "$O/th.done"
	while read -r path what; do
		if [ "$what" = any ]; then
			continue
		elif [ "$what" = keep ]; then
			[ -e "$path" ] || fail "--max-unused $pct: $path was rewritten: $(cat "$O/th.packs")"
		else
			[ ! -e "$path" ] || fail "--max-unused $pct: $path was kept: $(cat "$O/th.packs")"
		fi
	done < "$O/th.expect"
	[ "$(restored_sum latest "$TH")" = "$th_sum" ] || fail "pruned snapshot restores differently"
	"$CAIRN" check --read-data > "$O/check" || fail "check after prune: $(cat "$O/check")"
}
# Small: 30000 bytes of 900000 unused. Set up until GONE's pack is the big one.
for try in $(seq 1 10); do
	threshold_case 1 30000
	awk '$4 == 1 && $2 > 800000 { ok = 1 } END { exit !ok }' "$O/th.packs" && break
done
shared=$(awk '$4 == 1 && $2 > 800000 { print $1 }' "$O/th.packs")
echo "threshold: small case after $try setups: $(tr '\n' ';' < "$O/th.packs")"
check_threshold 5
if [ -n "$shared" ]; then
	[ -e "$shared" ] || fail "the default prune rewrote a pack 3% unused"
	grep -q '"bytes_left_unused":[1-9]' "$O/th.done" || fail "small case: $(cat "$O/th.done")"
	check_threshold 2 --max-unused 2
	[ ! -e "$shared" ] || fail "--max-unused 2 kept a pack 3% unused"
	grep -q '"packs_repacked":[1-9]' "$O/th.done" || fail "--max-unused 2: $(cat "$O/th.done")"
fi
# Large: 10 x 32000 bytes of 900000 unused, whatever the layout above 5%.
threshold_case 10 32000
check_threshold 5
[ "$(json_num bytes_left_unused < "$O/th.done")" -lt 4096 ] || fail "large case: $(cat "$O/th.done")"

# ---- check --read-data-subset N% -----------------------------------------
# N% reads the packs whose ID, as a 32-bit number, is below N% of 2^32: 50% are
# those whose name starts with 0-7. Damage in one of those is found, damage in
# another only by a full read.
export CAIRN_REPO="$W/subset"
init_repo --chunk-size 64K/128K/512K --pack-size 1M
mkdir -p "$W/ss"
# data_packs GLOB: the packs named GLOB that hold a data blob (trees have packs
# of their own).
data_packs() {
	local p
	for p in $(find "$CAIRN_REPO/packs" -type f -name "$1"); do
		"$CAIRN" cat pack "$(basename "$p")" | awk '$2 == "data" { f = 1 } END { exit !f }' &&
			echo "$p"
	done
	return 0
}
lowd=0 highd=0
for i in 1 2 3 4 5 6 7 8; do
	head -c 2500000 /dev/urandom > "$W/ss/f$i"
	"$CAIRN" backup "$W/ss" > /dev/null
	lowd=$(data_packs '[0-7]*' | wc -l)
	highd=$(data_packs '[89a-f]*' | wc -l)
	[ "$lowd" -gt 0 ] && [ "$highd" -gt 0 ] && break
done
[ "$lowd" -gt 0 ] && [ "$highd" -gt 0 ] || fail "no data packs on both sides: $lowd low, $highd high"
low=$(find "$CAIRN_REPO/packs" -type f -name '[0-7]*' | wc -l)
high=$(find "$CAIRN_REPO/packs" -type f -name '[89a-f]*' | wc -l)
"$CAIRN" check --read-data-subset 50% > "$O/check" || fail "subset check: $(cat "$O/check")"
out_has "$O/check" "checked $((low + high)) packs ($low read in full)"
"$CAIRN" check --read-data-subset 100% > "$O/check"
out_has "$O/check" "checked $((low + high)) packs ($((low + high)) read in full)"
damage() { # PACK: flip a byte inside its first data blob
	local off
	off=$("$CAIRN" cat pack "$(basename "$1")" | awk '$2 == "data" { print $4; exit }')
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]) + 40); b = f.read(1); f.seek(int(sys.argv[2]) + 40); f.write(bytes([b[0] ^ 1]))' \
		"$1" "$off"
}
cp -a "$CAIRN_REPO" "$W/subset-clean"
damage "$(data_packs '[89a-f]*' | head -1)"
"$CAIRN" check --read-data-subset 50% > "$O/check" 2>&1 ||
	fail "50% read a pack it should not have: $(cat "$O/check")"
expect_fail 1 "check found" -- "$CAIRN" check --read-data-subset 100%
rm -rf "$CAIRN_REPO" && cp -a "$W/subset-clean" "$CAIRN_REPO"
damage "$(data_packs '[0-7]*' | head -1)"
expect_fail 1 "check found" -- "$CAIRN" check --read-data-subset 50%
expect_fail 2 "percentage" -- "$CAIRN" check --read-data-subset 0%
expect_fail 2 "percentage" -- "$CAIRN" check --read-data-subset 101%

# A subset that selects no pack (a percentage below every pack's number, a part
# K of M that no pack falls in) still reads one, the first by ID for N% (damage
# there is found), and what is recorded and shown is the share it read.
rm -rf "$CAIRN_REPO" && cp -a "$W/subset-clean" "$CAIRN_REPO"
npacks=$(find "$CAIRN_REPO/packs" -type f | wc -l)
total=$(pack_bytes)
first=$(find "$CAIRN_REPO/packs" -type f -printf '%f\n' | sort | head -1)
first_path=$CAIRN_REPO/packs/${first:0:2}/$first
pct=$(python3 -c 'import sys; print(repr(int(sys.argv[1][:8], 16) / 2**32 * 100 / 2) + "%")' "$first")
[ "$pct" != "0.0%" ] || fail "the first pack $first leaves no percentage below it"
# share_shown WHAT READ: cairn status (JSON and text) shows the check read READ packs
share_shown() {
	"$CAIRN" status --json > "$O/st.json" || true
	python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))["check"]
want = dict(subset=sys.argv[2], packs=int(sys.argv[3]), packs_read=int(sys.argv[4]),
            bytes=int(sys.argv[5]), bytes_read=int(sys.argv[6]))
assert {k: c.get(k) for k in want} == want, c' "$O/st.json" "$1" "$npacks" "$2" "$total" "$3" ||
		fail "status --json after a check of $1: $(cat "$O/st.json")"
	"$CAIRN" status > "$O/st.txt" || true
	out_has "$O/st.txt" "last data check (subset $1: read $2 of $npacks packs, "
}
"$CAIRN" check --read-data-subset "$pct" > "$O/check" || fail "check of $pct: $(cat "$O/check")"
out_has "$O/check" "checked $npacks packs (1 read in full)"
share_shown "$pct" 1 "$(stat -c %s "$first_path")"
"$CAIRN" check --read-data-subset 1000000/1000000 > "$O/check" || fail "check of 1000000/1000000"
out_has "$O/check" "checked $npacks packs (1 read in full)"
share_shown 1000000/1000000 1 "$(find "$CAIRN_REPO/packs" -type f -printf '%f %s\n' | sort |
	awk -v k=$(((1000000 - 1) % npacks + 1)) 'NR == k { print $2 }')"
"$CAIRN" check --read-data-subset 100% > /dev/null
share_shown 100% "$npacks" "$total"
# Damage a data blob of that pack when it holds one (pack IDs are random: it may
# hold trees only, and a damaged tree is damage to the structure too).
off=$("$CAIRN" cat pack "$first" | awk '$2 == "data" { print $4 + int($6 / 2); exit }')
data_blob=true
[ -n "$off" ] || { data_blob=false; off=$("$CAIRN" cat pack "$first" | awk 'NR == 1 { print $4 + int($6 / 2) }'); }
python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))' \
	"$first_path" "$off"
if $data_blob; then
	"$CAIRN" check > /dev/null || fail "the damage is in the structure, not only the data"
fi
expect_fail 1 "check found" -- "$CAIRN" check --read-data-subset "$pct"
rm -rf "$CAIRN_REPO" && cp -a "$W/subset-clean" "$CAIRN_REPO"

# ---- forget --keep-hourly/daily/weekly with the real flags ----------------
# Four snapshots a second apart (sleep: so they fall in different seconds). The
# periods are local time, so a TZ whose offset puts midnight (or the top of an
# hour) exactly at the third (or fourth) snapshot splits them into days (or
# hours). Expectations come from an independent model of the rules in Python.
export CAIRN_REPO="$W/retention"
init_repo
mkdir -p "$W/rt"
for i in 1 2 3 4; do
	echo "$i" > "$W/rt/n"
	"$CAIRN" backup --tag "r$i" "$W/rt" > /dev/null
	[ "$i" = 4 ] || sleep 1.1
done
"$CAIRN" snapshots --json > "$O/rt.json"
# tz_at SNAP-INDEX PERIOD: a POSIX TZ in which snapshot INDEX (1 = oldest) is at
# the start of a local PERIOD (86400: a day, 3600: an hour)
tz_at() {
	python3 - "$O/rt.json" "$1" "$2" << 'PY'
import datetime, json, sys
s = json.load(open(sys.argv[1]))
t = int(datetime.datetime.fromisoformat(s[int(sys.argv[2]) - 1]["time"][:26]
                                        + s[int(sys.argv[2]) - 1]["time"][-6:]).timestamp())
west = t % int(sys.argv[3])  # local = UTC - west: t is at local midnight / top of hour
print("CRN+%02d:%02d:%02d" % (west // 3600, west // 60 % 60, west % 60))
PY
}
# expect TZ ARGS...: forget -n --json with ARGS under TZ matches the model.
expect_policy() {
	local tz=$1
	shift
	TZ=$tz "$CAIRN" forget -n --json --group-by '' "$@" > "$O/policy.json"
	TZ=$tz python3 - "$O/rt.json" "$O/policy.json" "$@" << 'PY' || fail "forget $* under TZ=$tz"
import datetime, json, sys, time
time.tzset()
snaps, got, args = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
keep = {a[7:]: int(b) for a, b in zip(args[::2], args[1::2])}
def secs(t):
    return int(datetime.datetime.fromisoformat(t[:26] + t[-6:]).timestamp())
def period(rule, t, i):
    tm = time.localtime(secs(t))
    return {"last": i, "hourly": tm[:4], "daily": tm[:3],
            "weekly": datetime.date(*tm[:3]).isocalendar()[:2],
            "monthly": tm[:2], "yearly": tm[:1]}[rule]
order = sorted(range(len(snaps)), key=lambda i: snaps[i]["time"], reverse=True)
want, last = {}, {}
for i in order:
    r = []
    for rule in ["last", "hourly", "daily", "weekly", "monthly", "yearly"]:
        if keep.get(rule, 0) <= 0:
            continue
        p = period(rule, snaps[i]["time"], i)
        if rule in last and last[rule] == p:
            continue
        last[rule] = p
        keep[rule] -= 1
        r.append(rule)
    want[snaps[i]["id"]] = ("keep" if r else "remove", r)
have = {}
for line in open(got):
    m = json.loads(line)
    if m["message_type"] == "snapshot":
        have[m["id"]] = (m["action"], m["reasons"])
if have != want:
    for k in want:
        print(k[:8], "want", want[k], "got", have.get(k), file=sys.stderr)
    sys.exit(1)
kept = [k for k in want if want[k][0] == "keep"]
print(len(kept))
PY
}
day3=$(tz_at 3 86400)
hour4=$(tz_at 4 3600)
# Under day3, snapshots 3 and 4 are one day and 1 and 2 the day before.
[ "$(expect_policy "$day3" --keep-daily 2)" = 2 ] || fail "--keep-daily 2 under $day3"
[ "$(expect_policy "$day3" --keep-daily 5)" = 2 ] || fail "--keep-daily 5 under $day3"
[ "$(expect_policy "$day3" --keep-hourly 3)" = 2 ] || fail "--keep-hourly 3 under $day3"
expect_policy "$day3" --keep-weekly 2 > /dev/null
expect_policy "$day3" --keep-last 1 --keep-daily 1 --keep-weekly 1 > /dev/null
# Under hour4, snapshot 4 starts an hour of its own.
[ "$(expect_policy "$hour4" --keep-hourly 2)" = 2 ] || fail "--keep-hourly 2 under $hour4"
[ "$(expect_policy "$hour4" --keep-hourly 1)" = 1 ] || fail "--keep-hourly 1 under $hour4"
expect_policy "$hour4" --keep-daily 3 --keep-monthly 2 --keep-yearly 1 > /dev/null
# For real: under day3, --keep-daily 2 removes snapshots 1 and 3.
TZ=$day3 "$CAIRN" forget --keep-daily 2 --group-by '' > "$O/forget"
out_has "$O/forget" "removed 2 snapshots, kept 2"
"$CAIRN" snapshots --json | python3 -c '
import json, sys
tags = sorted(t for s in json.load(sys.stdin) for t in s["tags"])
assert tags == ["r2", "r4"], tags' || fail "--keep-daily 2 kept the wrong snapshots"

# ---- sync takes a lock ----------------------------------------------------
# A push takes a shared lock: an exclusive one (a running prune) stops it before
# any request; a shared one (a running backup) does not (it gets as far as the
# unreachable server). A pull takes an exclusive lock on its directory.
export CAIRN_REPO="$W/retention" AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=secret
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL
S3_DOWN=(--s3-endpoint http://127.0.0.1:9 --s3-region us-east-1)
sleep 600 & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
mkdir -p "$CAIRN_REPO/locks"
name=$(live_lock exclusive prune "$holder")
: > "$O/trace"
CAIRN_S3_TRACE="$O/trace" expect_fail 1 "locked exclusively by prune on host $HOST pid $holder" -- \
	"$CAIRN" sync "${S3_DOWN[@]}" s3://bucket/repo
[ ! -s "$O/trace" ] || fail "sync sent requests despite the lock: $(cat "$O/trace")"
rm "$CAIRN_REPO/locks/$name"
name=$(live_lock shared backup "$holder")
CAIRN_S3_RETRIES=1 CAIRN_S3_TRACE="$O/trace" expect_fail 1 "giving up" -- \
	"$CAIRN" sync "${S3_DOWN[@]}" s3://bucket/repo
grep -q "transport-error" "$O/trace" || fail "sync did not get past a shared lock: $(cat "$O/trace")"
rm "$CAIRN_REPO/locks/$name"
mkdir -p "$W/pull/locks"
CAIRN_REPO="$W/pull" live_lock shared backup "$holder" > /dev/null
expect_fail 1 "in use by backup on host $HOST pid $holder" -- \
	"$CAIRN" -r "$W/pull" sync "${S3_DOWN[@]}" --from s3://bucket/repo
kill "$holder"

# ---- prune keeps the only good copy of a blob --------------------------------
# Two packs hold the same blobs (the first one went missing for a backup, then
# came back); the index places them in the lower pack ID, whose copy is then
# damaged. Prune must not delete the higher pack, which holds the good copies.
export CAIRN_REPO="$W/dup"
init_repo --chunk-size 64K/128K/512K --pack-size 1M
mkdir -p "$W/dupsrc"
head -c 300000 /dev/urandom > "$W/dupsrc/f"
"$CAIRN" backup "$W/dupsrc" > /dev/null
first=$(data_packs '*')
mv "$first" "$W/first-pack"
"$CAIRN" backup --force "$W/dupsrc" > /dev/null 2>&1 || fail "backup after a lost pack"
mv "$W/first-pack" "$first"
"$CAIRN" forget --keep-last 1 > /dev/null
"$CAIRN" rebuild-index > /dev/null || fail "rebuild-index with two copies"
[ "$(data_packs '*' | wc -l)" = 2 ] || fail "not two data packs: $(data_packs '*')"
low=$(data_packs '*' | xargs -n1 basename | sort | head -1)
high=$(data_packs '*' | xargs -n1 basename | sort | tail -1)
damage "$CAIRN_REPO/packs/${low:0:2}/$low"
"$CAIRN" prune > "$O/prune" 2>&1 || fail "prune with a damaged copy: $(cat "$O/prune")"
out_has "$O/prune" "keeping pack ${high:0:8}: it holds the only good copy of blob"
[ -e "$CAIRN_REPO/packs/${high:0:2}/$high" ] || fail "prune deleted the only good copy"

# ---- a prune record no admin key wrote deletes nothing ------------------------
# Anyone who can write to the storage (a host with a write-only key and its
# bucket policy) could name the packs of running backups in a record.
export CAIRN_REPO="$W/forge"
init_repo --chunk-size 64K/128K/512K --pack-size 1M
"$CAIRN" backup "$W/dupsrc" > /dev/null
rec="$CAIRN_REPO/prune/0123456789abcdef0123456789abcdef"
mkdir -p "$CAIRN_REPO/prune"
{
	printf 'cairn-prune 1\ntime = %s\nhost = evil\nwait =\n' "$(date +%s)"
	find "$CAIRN_REPO/packs" -type f -printf 'pack = %f\n'
} > "$rec"
before=$(find "$CAIRN_REPO/packs" -type f | sort)
"$CAIRN" prune -n > "$O/prune" 2>&1 || fail "prune -n with a forged record: $(cat "$O/prune")"
out_has "$O/prune" "would remove prune record 'prune/0123456789abcdef0123456789abcdef': no admin key wrote it"
[ -e "$rec" ] || fail "a dry run removed the record"
# With a MAC line of the right form but the wrong value, too.
printf 'mac = %064d\n' 0 >> "$rec"
"$CAIRN" prune > "$O/prune" 2>&1 || fail "prune with a forged record: $(cat "$O/prune")"
out_has "$O/prune" "removing prune record 'prune/0123456789abcdef0123456789abcdef': no admin key wrote it"
[ ! -e "$rec" ] || fail "the forged record was kept"
for p in $before; do
	[ -e "$p" ] || fail "a forged prune record deleted $p: $(cat "$O/prune")"
done
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check after a forged record: $(cat "$O/check")"

# ---- a prune record that does not parse ---------------------------------------
# Backups stop at it (a genuine record of a later cairn names packs that go) and
# say who removes it; check reports it; an admin's prune finds no valid MAC on it
# (checked without parsing) and removes it as a forged one.
for body in 'garbage\n' "cairn-prune 1\ntime = x\nhost = evil\nmac = $(printf '%064d' 0)\n"; do
	printf "$body" > "$rec"
	rc=0; "$CAIRN" backup "$W/dupsrc" > "$O/backup" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "backup past an unparsable record: rc $rc: $(cat "$O/backup")"
	out_has "$O/backup" "prune/0123456789abcdef0123456789abcdef: not a prune record"
	out_has "$O/backup" "an admin's 'cairn prune' removes it"
	rc=0; "$CAIRN" check > "$O/check" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "check with an unparsable record: rc $rc: $(cat "$O/check")"
	out_has "$O/check" "prune/0123456789abcdef0123456789abcdef: not a prune record"
	out_has "$O/check" "an admin's 'cairn prune' removes it"
	"$CAIRN" prune -n > "$O/prune" 2>&1 || fail "prune -n with an unparsable record: $(cat "$O/prune")"
	out_has "$O/prune" "would remove prune record 'prune/0123456789abcdef0123456789abcdef': no admin key wrote it"
	[ -e "$rec" ] || fail "a dry run removed the unparsable record"
	"$CAIRN" prune > "$O/prune" 2>&1 || fail "prune with an unparsable record: $(cat "$O/prune")"
	out_has "$O/prune" "removing prune record 'prune/0123456789abcdef0123456789abcdef': no admin key wrote it"
	[ ! -e "$rec" ] || fail "prune kept the unparsable record"
	"$CAIRN" backup "$W/dupsrc" > "$O/backup" 2>&1 || fail "backup after prune removed the record: $(cat "$O/backup")"
done
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check after an unparsable record: $(cat "$O/check")"
export CAIRN_REPO="$W/repo"
echo "lifecycle: ok"
