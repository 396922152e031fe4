#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of `cairn backup` at random moments: after each kill `check --read-data`
# passes, and at the end every snapshot that completed (killed runs may have
# written theirs) restores byte-identically to the source it was taken of, also
# from a rebuilt index. ITERATIONS (default 24) sets the count.
. "$(dirname "$0")/lib.sh"

# crash_run TRIGGER -- CMD... (lib.sh, crash-run.py): SIGKILL CMD at TRIGGER.

init_repo --chunk-size 64K/128K/512K --pack-size 1M
R=$(realpath "$W")
SRC="$R/src"
mkdir -p "$SRC"
for d in $(seq 1 4); do
	mkdir -p "$SRC/d$d"
	for f in $(seq 1 6); do
		head -c $(((RANDOM % 32 + 1) * 8192)) /dev/urandom > "$SRC/d$d/f$f"
	done
done
head -c 3000000 /dev/urandom > "$SRC/big"
ln -s big "$SRC/link"

declare -A sum_of # snapshot ID -> tree_sum of the source it was taken of
snapshot_ids() { (cd "$CAIRN_REPO/snapshots" && find . -type f -printf '%f\n' | sort); }
# record: every snapshot not seen before holds the source as it is now.
record() {
	local id s
	s=$(tree_sum "$SRC")
	for id in $(snapshot_ids); do
		[ -n "${sum_of[$id]:-}" ] || sum_of[$id]=$s
	done
}
change() { # I: new data for run I, so every run has packs to write
	head -c 2500000 /dev/urandom > "$SRC/d$(($1 % 4 + 1))/changed"
	echo "run $1" > "$SRC/run.txt"
}
change_for_try() { change $((i * 4 + $1)); } # TRY of run $i

"$CAIRN" backup "$SRC" > /dev/null
record
# How many files a backup of one changed file creates or deletes in the
# repository (temp packs, packs, lock, snapshot): kill points are drawn from these.
change 0
crash_measure "$CAIRN_REPO" -- "$CAIRN" backup --threads 2 "$SRC"
echo "a backup makes $n_events file events in $run_ms ms"
record

iterations=${ITERATIONS:-24}
killed=0
for i in $(seq 1 "$iterations"); do
	# Each try backs up new data; a completed one is a snapshot like any other.
	crash_until_killed "$i" 9 change_for_try record -- "$CAIRN" backup --threads 2 "$SRC"
	[ "$res" != killed ] || killed=$((killed + 1))
	record
	"$CAIRN" check --read-data > "$W/check.out" 2>&1 ||
		fail "check --read-data failed after run $i ($trigger, $res): $(cat "$W/check.out")"
done
echo "$killed of $iterations backups killed, ${#sum_of[@]} snapshots completed"
[ "$killed" -ge $((iterations * 2 / 3)) ] || fail "only $killed of $iterations backups were killed"

# The next backup completes and checks.
change 99
"$CAIRN" backup --json "$SRC" > "$W/final.json"
grep -q '"message_type":"summary"' "$W/final.json" || fail "final backup failed"
record
"$CAIRN" check --read-data > "$W/check.out" 2>&1 || fail "check --read-data: $(cat "$W/check.out")"

# Every completed snapshot restores to exactly what was backed up.
restore_all() { # WHEN
	local id n=0
	for id in $(snapshot_ids); do
		rm -rf "$W/restore"
		"$CAIRN" restore "$id" --target "$W/restore" > /dev/null 2> "$W/restore.err" ||
			fail "$1: restore of $id failed: $(cat "$W/restore.err")"
		[ "$(tree_sum "$W/restore$SRC")" = "${sum_of[$id]}" ] ||
			fail "$1: snapshot $id does not restore what was backed up"
		[ "$(readlink "$W/restore$SRC/link")" = big ] || fail "$1: $id: symlink"
		n=$((n + 1))
	done
	[ "$n" = "${#sum_of[@]}" ] || fail "$1: $n snapshots, ${#sum_of[@]} recorded"
}
restore_all "after the kills"
# The index is a cache: rebuilt from the packs the kills left, it is whole.
rm -rf "$CAIRN_REPO/index"
"$CAIRN" rebuild-index > /dev/null
"$CAIRN" check --read-data > "$W/check.out" 2>&1 || fail "check after rebuild: $(cat "$W/check.out")"
restore_all "after rebuild-index"
# Prune clears what the killed runs left, and loses nothing.
"$CAIRN" prune --max-unused 0 > /dev/null
"$CAIRN" check --read-data > "$W/check.out" 2>&1 || fail "check after prune: $(cat "$W/check.out")"
restore_all "after prune"
echo "ok ($killed of $iterations runs killed)"
