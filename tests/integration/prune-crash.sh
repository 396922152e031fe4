#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 during prune, at each of its steps, loses nothing.
#
# CAIRN_TEST_CRASH_POINT=STEP makes `cairn prune` kill itself with SIGKILL when it
# reaches STEP (tools/maint.c; the steps are those of cairn_prune_opts.on_step):
#   after-mark       snapshots read, nothing written yet
#   mid-repack       the first new pack is durable and indexed, the others not written
#   after-new-packs  every new pack durable, indexed and named in an index file
#   after-record     the prune record names the packs to delete, not yet whom it waits for
#   after-index      no index file nor the index names those packs; their files remain
#   mid-delete       the first old pack file deleted
# After each crash: the dead prune's lock blocks nobody, `check --read-data`
# passes, every snapshot restores identically, the rebuilt index passes too, a
# second prune finishes the job, and `unlock` clears the dead holder's lock.
# Then PRUNE_ITERATIONS (default 16) kills at random moments, with the same checks.
. "$(dirname "$0")/lib.sh"

# crash_run TRIGGER -- CMD... (lib.sh, crash-run.py): SIGKILL CMD at TRIGGER.

O="$W/o"
SRC="$W/src"
mkdir -p "$O"

restored_sum() { # SNAP: checksum of $SRC as the snapshot holds it
	local t="$O/restore"
	rm -rf "$t"
	"$CAIRN" restore "$1" --target "$t" > /dev/null || fail "restore of $1 failed"
	tree_sum "$t$SRC"
}
latest_id() {
	"$CAIRN" snapshots | awk 'length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { id = $1 } END { print id }'
}
check_all() { # WHEN: check --read-data passes and both snapshots restore identically
	"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "$1: check: $(cat "$O/check")"
	[ "$(restored_sum "$s2")" = "$sum2" ] || fail "$1: snapshot 2 restores differently"
	[ "$(restored_sum "$s3")" = "$sum3" ] || fail "$1: snapshot 3 restores differently"
}

# A repository where pruning must delete some packs and repack others: the
# first snapshot's unique files share packs with files that stay.
setup() {
	rm -rf "$CAIRN_REPO" "$SRC"
	init_repo --chunk-size 64K/128K/512K --pack-size 1M
	mkdir -p "$SRC/d"
	for i in 1 2 3 4 5 6; do head -c 400000 /dev/urandom > "$SRC/d/f$i"; done
	seq 1 50000 > "$SRC/numbers.txt"
	"$CAIRN" backup "$SRC" > /dev/null
	rm "$SRC/d/f1" "$SRC/d/f3" "$SRC/d/f5"
	head -c 500000 /dev/urandom > "$SRC/g"
	"$CAIRN" backup "$SRC" > /dev/null
	s2=$(latest_id)
	sum2=$(tree_sum "$SRC")
	echo later > "$SRC/later.txt"
	"$CAIRN" backup "$SRC" > /dev/null
	s3=$(latest_id)
	sum3=$(tree_sum "$SRC")
	"$CAIRN" forget --keep-last 2 > /dev/null
}

for point in after-mark mid-repack after-new-packs after-record after-index mid-delete; do
	setup
	rc=0
	CAIRN_TEST_CRASH_POINT=$point "$CAIRN" prune --max-unused 0 > /dev/null 2>&1 || rc=$?
	[ "$rc" = 137 ] || fail "$point: prune exited $rc instead of being killed there"
	[ "$(ls "$CAIRN_REPO/locks" | wc -l)" = 1 ] || fail "$point: the dead prune left no lock"
	check_all "$point, after the crash"
	# The index is a cache: rebuilt from whatever packs the crash left, it is whole.
	cp -a "$CAIRN_REPO" "$W/rebuilt"
	CAIRN_REPO="$W/rebuilt" "$CAIRN" rebuild-index > /dev/null
	CAIRN_REPO="$W/rebuilt" "$CAIRN" check --read-data > "$O/check" 2>&1 ||
		fail "$point: check after rebuild-index: $(cat "$O/check")"
	rm -rf "$W/rebuilt"
	"$CAIRN" prune --max-unused 0 > "$O/prune" || fail "$point: second prune failed"
	check_all "$point, after a second prune"
	! grep -q "hold no indexed blob" "$O/check" || fail "$point: packs left behind"
	"$CAIRN" prune --max-unused 0 --json > "$O/prune.json"
	grep -q '"packs_deleted":0,"packs_repacked":0' "$O/prune.json" ||
		fail "$point: a third prune still found work: $(cat "$O/prune.json")"
	"$CAIRN" unlock > "$O/unlock"
	grep -q "removed prune lock .*: prune on host .*(process gone)" "$O/unlock" ||
		fail "$point: unlock: $(cat "$O/unlock")"
	[ -z "$(ls "$CAIRN_REPO/locks")" ] || fail "$point: locks left"
	echo "$point: ok"
done

# Random moments: the same repository each time, killed after a random file
# event (a temp pack, a new pack, a deleted pack, the lock) or a random time.
setup
cp -a "$CAIRN_REPO" "$W/pristine"
reset() { rm -rf "$CAIRN_REPO" && cp -a "$W/pristine" "$CAIRN_REPO"; }
crash_measure "$CAIRN_REPO" -- "$CAIRN" prune --max-unused 0
echo "a prune makes $n_events file events in $run_ms ms"
iterations=${PRUNE_ITERATIONS:-16}
killed=0
for i in $(seq 1 "$iterations"); do
	crash_until_killed "$i" 4 reset : -- "$CAIRN" prune --max-unused 0
	[ "$res" != killed ] || killed=$((killed + 1))
	check_all "random $i ($trigger), after the crash"
	"$CAIRN" prune --max-unused 0 > "$O/prune" 2>&1 || fail "random $i: second prune: $(cat "$O/prune")"
	check_all "random $i ($trigger), after a second prune"
	! grep -q "hold no indexed blob" "$O/check" || fail "random $i: packs left behind"
done
[ "$killed" -ge $((iterations * 2 / 3)) ] || fail "only $killed of $iterations prunes were killed"
echo "ok ($killed of $iterations random prunes killed)"
