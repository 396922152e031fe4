#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Many hosts, one repository in S3 (DESIGN.md "Storage", "Prune while backups
# run"), on a real Ceph RGW on 127.0.0.1: 8 hosts back up at once; a backup
# killed half-way is resumed without uploading again what it finished; and
# prune runs while hosts back up, with kill -9 of either at random moments,
# after which every snapshot restores byte-identical and check --read-data is
# clean. The bucket is checked with Debian's aws CLI.
. "$(dirname "$0")/lib.sh"

s3_setup
O="$W/o"
mkdir -p "$O"
export CAIRN_REPO="s3://$B/fleet"
init_repo --chunk-size 64K/128K/512K --pack-size 1M

# gen DIR HOST I: the content host HOST backs up in round I, the same whenever
# it is made: a file all hosts share, one of this host, one of this round.
gen() {
	rm -rf "$1"
	mkdir -p "$1/sub"
	python3 - "$1" "$2" "$3" << 'PY'
import random, sys
d, host, i = sys.argv[1], sys.argv[2], sys.argv[3]
def write(path, seed, n):
    with open(path, "wb") as f:
        f.write(random.Random(seed).randbytes(n))
write(f"{d}/shared.bin", "shared", 600000)
write(f"{d}/sub/host.bin", host, 200000)
write(f"{d}/sub/round.bin", f"{host}/{i}", 150000)
with open(f"{d}/note.txt", "w") as f:
    f.write(f"{host} round {i}\n")
PY
}
# kill_after_packs PID TRACE N: kill -9 the backup PID once its S3 trace shows
# N packs uploaded.
kill_after_packs() {
	local n
	for _ in $(seq 600); do
		n=$(grep -c '^PUT /[^?]*/packs/.* 200$' "$2" 2> /dev/null || true)
		[ "${n:-0}" -ge "$3" ] && break
		sleep 0.05
	done
	kill -9 "$1"
	wait "$1" 2> /dev/null || true
}
# random_files DIR: 24 files of 1 MB of random bytes (24 packs of 1 MiB).
random_files() {
	mkdir -p "$1"
	for i in $(seq 1 24); do head -c 1000000 /dev/urandom > "$1/f$i"; done
}
index_files() { { "${AWS[@]}" s3 ls "s3://$B/fleet/indexes/" || true; } | wc -l; }
pack_bytes() {
	"${AWS[@]}" s3 ls --recursive "s3://$B/$1/packs/" | awk '{ s += $3 } END { print s + 0 }'
}
# restores_as SNAP DIR HOST I: snapshot SNAP of DIR holds gen's HOST I content.
restores_as() {
	local t="$O/restore"
	rm -rf "$t" "$O/expect"
	"$CAIRN" restore "$1" --target "$t" > /dev/null 2> "$O/restore.err" ||
		fail "restore of $1 ($3 $4) failed: $(cat "$O/restore.err")"
	gen "$O/expect" "$3" "$4"
	diff -r "$O/expect" "$t$2" > /dev/null || fail "snapshot $1 ($3 round $4) restores differently"
}

# ---- 8 hosts at once --------------------------------------------------------
pids=()
for h in 1 2 3 4 5 6 7 8; do
	gen "$W/h$h" "host$h" 0
	CAIRN_CACHE_DIR="$W/cache-$h" "$CAIRN" backup --host "host$h" --tag round-0 "$W/h$h" \
		> "$O/b$h" 2>&1 &
	pids+=($!)
done
for h in 1 2 3 4 5 6 7 8; do
	wait "${pids[$((h - 1))]}" || fail "host $h's backup failed (none may wait): $(cat "$O/b$h")"
done
"$CAIRN" snapshots --json > "$O/snaps.json"
for h in 1 2 3 4 5 6 7 8; do
	id=$("$CAIRN" snapshots --host "host$h" | awk 'length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { print $1 }')
	[ -n "$id" ] || fail "no snapshot of host$h"
	restores_as "$id" "$W/h$h" "host$h" 0
done
# The shared file is stored about once, not eight times (a few hosts may store
# it at the same moment).
[ "$(pack_bytes fleet)" -lt $((600000 * 4 + 8 * 400000)) ] ||
	fail "the hosts did not deduplicate: $(pack_bytes fleet) bytes of packs"

# ---- a killed backup resumes --------------------------------------------------
BIG="$W/big"
random_files "$BIG"
# What a whole backup of it uploads, into another repository.
CAIRN_REPO="s3://$B/ref" CAIRN_CACHE_DIR="$W/cache-ref" init_repo --chunk-size 64K/128K/512K \
	--pack-size 1M
CAIRN_REPO="s3://$B/ref" CAIRN_CACHE_DIR="$W/cache-ref" "$CAIRN" backup --json "$BIG" |
	tail -1 > "$O/ref.json"
full=$(json_field "$O/ref.json" bytes_uploaded)
before=$(pack_bytes fleet)
# Killed once 8 packs are up.
CAIRN_S3_TRACE="$W/trace" CAIRN_CACHE_DIR="$W/cache-k" "$CAIRN" backup --host killed "$BIG" \
	> /dev/null 2>&1 &
kill_after_packs $! "$W/trace" 8
done_bytes=$(($(pack_bytes fleet) - before))
[ "$done_bytes" -gt 0 ] || fail "the killed backup uploaded nothing"
# The rerun, from a host that lost its cache too: the dead run's lock tells it
# to adopt the packs that no index file names yet.
CAIRN_CACHE_DIR="$W/cache-k2" "$CAIRN" backup --host killed --json "$BIG" | tail -1 > "$O/rerun.json" ||
	fail "the rerun failed"
rerun=$(json_field "$O/rerun.json" bytes_uploaded)
echo "a whole backup uploads $full bytes; killed after $done_bytes; the rerun uploaded $rerun"
[ "$rerun" -le $((full - done_bytes + 1100000 + 100000)) ] ||
	fail "the rerun uploaded $rerun bytes; $((full - done_bytes)) were left"
# Another host, whose cache knows the repository from before, learns the packs
# the rerun adopted from the rerun's index file: nothing is missing.
CAIRN_CACHE_DIR="$W/cache-1" "$CAIRN" check > "$O/check-k" 2>&1 ||
	fail "check from another host after the resumed backup: $(cat "$O/check-k")"

# The same from a host that kept its cache: the packs the dead run indexed there
# before it named them in an index file are named by the rerun.
BIG2="$W/big2"
# 24 packs: the backup's workers upload several at once, and the kill after 3
# must come well before the end.
random_files "$BIG2"
: > "$W/trace2"
CAIRN_S3_TRACE="$W/trace2" CAIRN_CACHE_DIR="$W/cache-k3" "$CAIRN" backup --host killed2 "$BIG2" \
	> /dev/null 2>&1 &
kill_after_packs $! "$W/trace2" 3
grep -q '^PUT /[^?]*/snapshots/' "$W/trace2" && fail "the backup meant to be killed ended first"
CAIRN_CACHE_DIR="$W/cache-k3" "$CAIRN" backup --host killed2 "$BIG2" > "$O/rerun2" 2>&1 ||
	fail "the rerun with the dead run's cache failed: $(cat "$O/rerun2")"
CAIRN_CACHE_DIR="$W/cache-1" "$CAIRN" check > "$O/check-k2" 2>&1 ||
	fail "check from another host after the rerun with its cache: $(cat "$O/check-k2")"

# ---- a prune between a backup's open and its lock ------------------------------
# A backup knows packs a killed run left, which no index file names: adopted at
# open with an empty cache, or indexed by that run in the same cache. Before it
# takes its lock, a prune may choose those packs (unused: no snapshot has them)
# and, seeing no writer, delete them. The backup must not deduplicate against
# them, nor name them: its snapshot pointed into deleted packs before it
# checked them under its lock.
# last_snapshot HOST: the ID of HOST's newest snapshot.
last_snapshot() {
	"$CAIRN" snapshots --host "$1" --json | grep -o '"id":"[0-9a-f]*"' | tail -1 | cut -d'"' -f4
}
# prune_beside PID WHAT: while the backup PID is stopped between its open and
# its lock, a prune that must delete WHAT; then the backup goes on, and a
# check from a new cache must be clean.
prune_beside() {
	CAIRN_CACHE_DIR="$W/cache-pr3" "$CAIRN" prune --max-unused 0 --json > "$O/prune3" 2>&1 ||
		fail "the prune between a backup's open and its lock: $(cat "$O/prune3")"
	grep -q '"packs_deleted":0,' "$O/prune3" &&
		fail "the prune deleted none of $2: $(cat "$O/prune3"); locks: $("$CAIRN" unlock --list 2>&1)"
	kill -CONT "$1"
	wait "$1" || fail "the backup after the prune: $(cat "$O/stopped")"
	CAIRN_CACHE_DIR="$W/cache-chk3" "$CAIRN" check > "$O/check3" 2>&1 ||
		fail "check after a prune deleted $2 a backup knew: $(cat "$O/check3")"
}

# prune_before_lock KILLED_CACHE RESUMING_CACHE
prune_before_lock() {
	local big="$W/big3" p
	rm -rf "$big" "$O/r3"
	random_files "$big"
	: > "$W/trace3"
	CAIRN_S3_TRACE="$W/trace3" CAIRN_CACHE_DIR="$1" "$CAIRN" backup --host killed3 "$big" \
		> /dev/null 2>&1 &
	kill_after_packs $! "$W/trace3" 6
	idx=$(index_files)
	# Each pack would fill an index file: none may name the adopted packs
	# before the backup holds its lock and has checked them.
	CAIRN_TEST_BLOBS_PER_FILE=1 CAIRN_TEST_STOP_POINT=backup-opened CAIRN_CACHE_DIR="$2" \
		"$CAIRN" backup --host killed3 "$big" > "$O/stopped" 2>&1 &
	p=$!
	wait_stopped "$p" "the backup (after its open)"
	[ "$(index_files)" = "$idx" ] || fail "a backup named packs it adopted before its lock ($2)"
	prune_beside "$p" "the killed run's packs ($2)"
	CAIRN_CACHE_DIR="$W/cache-chk3" "$CAIRN" restore "$(last_snapshot killed3)" \
		--target "$O/r3" > /dev/null || fail "restore of the backup that knew deleted packs ($2)"
	diff -r "$big" "$O/r3$big" > /dev/null || fail "the backup that knew deleted packs restores differently ($2)"
	rm -rf "$big" "$O/r3"
}
prune_before_lock "$W/cache-k4" "$W/cache-k5" # adopted at open
prune_before_lock "$W/cache-k6" "$W/cache-k6" # indexed by the killed run

# named_before_lock ROUND CACHE: the same for packs index files name. A backup's
# cache learns them under its lock, after the prune records: a prune that ran
# whole between its open and its lock has rewritten the index files by then.
named_before_lock() {
	local p
	gen "$W/nb" named "$1"
	CAIRN_CACHE_DIR="$W/cache-nb" "$CAIRN" backup --host named "$W/nb" > /dev/null
	"$CAIRN" forget "$(last_snapshot named)" > /dev/null
	CAIRN_TEST_STOP_POINT=backup-opened CAIRN_CACHE_DIR="$2" "$CAIRN" backup --host named \
		"$W/nb" > "$O/stopped" 2>&1 &
	p=$!
	wait_stopped "$p" "the backup of named packs (after its open)"
	prune_beside "$p" "the forgotten snapshot's packs ($2)"
	CAIRN_CACHE_DIR="$W/cache-chk3" restores_as "$(last_snapshot named)" "$W/nb" named "$1"
}
named_before_lock 1 "$W/cache-nb"  # the cache of the forgotten backup
named_before_lock 2 "$W/cache-nb2" # a new cache

# ---- an index file written while a prune rewrites them ------------------------
# A prune that finishes an earlier run's record rewrites the index files, and
# merges one a backup wrote after the prune read them. Its cache then marks the
# merged file read: it must know that file's packs, or it never learns them.
PC="$W/cache-stop"
for i in 1 2; do
	gen "$W/st" stop "$i"
	CAIRN_CACHE_DIR="$W/cache-st" "$CAIRN" backup --host stop "$W/st" > /dev/null
done
first=$("$CAIRN" snapshots --host stop --json | grep -o '"id":"[0-9a-f]*"' | sed -n 1p | cut -d'"' -f4)
"$CAIRN" forget "$first" > /dev/null
rc=0
{ CAIRN_CACHE_DIR="$PC" CAIRN_TEST_CRASH_POINT=after-record "$CAIRN" prune --max-unused 0 \
	> /dev/null 2>&1 || rc=$?; } 2> /dev/null
[ "$rc" = 137 ] || fail "the prune meant to die after its record exited $rc"
CAIRN_CACHE_DIR="$PC" CAIRN_TEST_STOP_POINT=after-mark "$CAIRN" prune --max-unused 0 \
	> "$O/prune-stop" 2>&1 &
p=$!
wait_stopped "$p" "the prune (after marking)"
gen "$W/late" late 1
CAIRN_CACHE_DIR="$W/cache-late" "$CAIRN" backup --host late "$W/late" > /dev/null
kill -CONT "$p"
wait "$p" || fail "the prune beside the late backup: $(cat "$O/prune-stop")"
CAIRN_CACHE_DIR="$PC" "$CAIRN" check > "$O/check-stop" 2>&1 ||
	fail "check from the prune's cache after the late backup: $(cat "$O/check-stop")"
late=$("$CAIRN" snapshots --host late | awk 'length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { print $1 }')
CAIRN_CACHE_DIR="$PC" restores_as "$late" "$W/late" late 1

# ---- a prune killed as it repacks ----------------------------------------------
# Its first copy is stored and indexed in its cache, and in no index file. The
# next prune on that cache names it: otherwise no other cache learns the pack,
# and once that prune fills its index again from the index files, the pack a
# copy came from holds the only home it knows of, and stays (seen as a third
# prune that still found work). A new cache then adopts nothing.
killed_repack() {
	local c="$W/crash" rc=0 n
	export CAIRN_REPO="s3://$B/crash"
	init_repo --chunk-size 64K/128K/512K --pack-size 1M
	mkdir -p "$c/d"
	for i in 1 2 3 4 5 6; do head -c 400000 /dev/urandom > "$c/d/f$i"; done
	"$CAIRN" backup "$c" > /dev/null
	rm "$c/d/f1" "$c/d/f3" "$c/d/f5"
	"$CAIRN" backup "$c" > /dev/null
	"$CAIRN" forget --keep-last 1 > /dev/null
	{ CAIRN_CACHE_DIR="$W/cache-cr" CAIRN_TEST_CRASH_POINT=mid-repack "$CAIRN" prune \
		--max-unused 0 > /dev/null 2>&1 || rc=$?; } 2> /dev/null
	[ "$rc" = 137 ] || fail "the prune meant to die as it repacks exited $rc"
	CAIRN_CACHE_DIR="$W/cache-cr" "$CAIRN" prune --max-unused 0 > "$O/prune-cr" 2>&1 ||
		fail "the prune after one killed as it repacked: $(cat "$O/prune-cr")"
	CAIRN_S3_TRACE="$W/trace-cr" CAIRN_CACHE_DIR="$W/cache-cr2" "$CAIRN" snapshots > /dev/null
	n=$(grep -c '^GET .*packs/' "$W/trace-cr" || true)
	[ "$n" = 0 ] || fail "a new cache adopted packs no index file names ($n GETs of pack headers)"
	CAIRN_CACHE_DIR="$W/cache-cr2" "$CAIRN" check > "$O/check-cr" 2>&1 ||
		fail "check after a prune killed as it repacked: $(cat "$O/check-cr")"
	export CAIRN_REPO="s3://$B/fleet"
}
killed_repack

# ---- prune while hosts back up, kill -9 of either ----------------------------
ROUNDS=${FLEET_ROUNDS:-5}
host_loop() { # HOST: ROUNDS backups, every third killed at a random moment
	local h=$1 i
	for i in $(seq 1 "$ROUNDS"); do
		gen "$W/$h" "$h" "$i"
		CAIRN_CACHE_DIR="$W/cache-$h" "$CAIRN" backup --host "$h" --tag "round-$i" "$W/$h" \
			> "$O/$h.out" 2>&1 &
		local p=$!
		if ((RANDOM % 3 == 0)); then
			sleep "0.$((RANDOM % 9))"
			kill -9 "$p" 2> /dev/null || true
			wait "$p" 2> /dev/null || true
		else
			wait "$p" || { echo "backup $h round $i: $(cat "$O/$h.out")"; return 1; }
		fi
	done
}
loops=()
for h in p1 p2 p3; do
	host_loop "$h" & loops+=($!)
done
pruned=0
while kill -0 "${loops[@]}" 2> /dev/null; do
	"$CAIRN" forget --group-by host --keep-last 2 > /dev/null 2>&1 || true
	CAIRN_CACHE_DIR="$W/cache-prune" "$CAIRN" prune --max-unused 0 > "$O/prune" 2>&1 &
	p=$!
	if ((RANDOM % 3 == 0)); then
		sleep "0.$((RANDOM % 9))"
		kill -9 "$p" 2> /dev/null || true
		wait "$p" 2> /dev/null || true
	else
		wait "$p" || fail "prune beside backups: $(cat "$O/prune")"
		pruned=$((pruned + 1))
	fi
done
for l in "${loops[@]}"; do wait "$l" || fail "a backup loop failed"; done
[ "$pruned" -ge 1 ] || fail "no prune finished beside the backups"
# Prunes with nobody writing: the first finishes what waited. A pack it had to
# keep whole (a backup that began before a prune chose it used one of its
# blobs) is judged again by the second, like any pack; the third finds nothing.
for i in 1 2 3; do
	CAIRN_CACHE_DIR="$W/cache-prune" "$CAIRN" prune --max-unused 0 --json > "$O/prune$i" 2>&1 ||
		fail "prune $i after the backups: $(cat "$O/prune$i")"
done
if ! grep -qF '"packs_deleted":0,"packs_repacked":0' "$O/prune3"; then
	# Seen once in many runs: what two more prunes and a check make of it.
	for i in 4 5; do
		CAIRN_CACHE_DIR="$W/cache-prune" "$CAIRN" prune --max-unused 0 --json > "$O/prune$i" 2>&1 || true
	done
	CAIRN_CACHE_DIR="$W/cache-chk5" "$CAIRN" check > "$O/check5" 2>&1 || true
	fail "a third prune found more to do: $(cat "$O/prune3"); the first two: $(cat "$O/prune1" \
		"$O/prune2"); two more: $(cat "$O/prune4" "$O/prune5"); check: $(tail -3 "$O/check5")"
fi
grep -qF '"packs_pending":0' "$O/prune1" || fail "the first prune left work waiting: $(cat "$O/prune1")"
[ -z "$("${AWS[@]}" s3 ls "s3://$B/fleet/prune/")" ] || fail "prune records are left"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check --read-data: $(cat "$O/check")"
out_lacks "$O/check" "hold no indexed blob"
# Every snapshot there restores what its host backed up in its round.
"$CAIRN" snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["tags"] and s["tags"][0].startswith("round-"):
        print(s["short_id"], s["hostname"], s["paths"][0], s["tags"][0].split("-")[1])
' > "$O/all"
[ "$(grep -c ' p[123] ' "$O/all")" -ge 3 ] || fail "too few snapshots survived: $(cat "$O/all")"
while read -r id host path round; do
	restores_as "$id" "$path" "$host" "$round"
done < "$O/all"
echo "ok ($pruned prunes finished beside the backups)"
