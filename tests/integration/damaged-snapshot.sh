#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One damaged snapshot file does not block the others: every command that lists
# snapshots skips it with exactly one warning naming it, check reports it,
# prune refuses to run past it, and `forget ID` removes it.
. "$(dirname "$0")/lib.sh"

crashed() { grep -qE "Segmentation|Aborted|AddressSanitizer|runtime error|core dumped" "$@"; }

init_repo
mkdir -p "$W/src"
ids=()
for i in 1 2 3; do
	echo "version $i" > "$W/src/file.txt"
	echo "extra $i" > "$W/src/extra$i.txt"
	before=$(ls "$CAIRN_REPO/snapshots")
	"$CAIRN" backup "$W/src" > /dev/null
	ids+=("$(ls "$CAIRN_REPO/snapshots" | grep -vxF -e "$before" || true)")
done
for id in "${ids[@]}"; do [ ${#id} = 64 ] || fail "one new snapshot per backup expected"; done
bad=${ids[1]} a=${ids[0]:0:8} c=${ids[2]:0:8}
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(40); b=f.read(1); f.seek(40); f.write(bytes([b[0]^1]))' \
	"$CAIRN_REPO/snapshots/$bad"

# run_warn NAME -- CMD...: CMD succeeds and warns exactly once, naming the damaged snapshot.
run_warn() {
	local name=$1; shift 2
	local rc=0
	"$@" > "$W/out" 2> "$W/err" || rc=$?
	crashed "$W/err" && fail "$name crashed: $(cat "$W/err")"
	[ "$rc" = 0 ] || fail "$name with a damaged snapshot exited $rc: $(cat "$W/err")"
	[ "$(grep -c . "$W/err")" = 1 ] || fail "$name: expected one warning: $(cat "$W/err")"
	grep -q "warning: .*damaged snapshot.*${bad:0:8}" "$W/err" || fail "$name: warning does not name ${bad:0:8}: $(cat "$W/err")"
}

run_warn snapshots -- "$CAIRN" snapshots
[ "$(grep -c "$a\|$c" "$W/out")" = 2 ] || fail "snapshots lists the others: $(cat "$W/out")"
grep -q "${bad:0:8}" "$W/out" && fail "snapshots lists the damaged one"
run_warn restore -- "$CAIRN" restore "$a" --target "$W/r"
grep -q "version 1" "$W/r$W/src/file.txt" || fail "restore of another snapshot"
run_warn "restore latest" -- "$CAIRN" restore latest --target "$W/r3"
grep -q "version 3" "$W/r3$W/src/file.txt" || fail "restore of latest"
run_warn ls -- "$CAIRN" ls "$a" "$W/src"
grep -q "extra1.txt" "$W/out" || fail "ls of another snapshot: $(cat "$W/out")"
run_warn dump -- "$CAIRN" dump "$c" "$W/src/file.txt"
grep -q "version 3" "$W/out" || fail "dump of another snapshot"
run_warn diff -- "$CAIRN" diff "$a" "$c"
grep -q "extra3.txt" "$W/out" || fail "diff of two other snapshots: $(cat "$W/out")"
run_warn find -- "$CAIRN" find --snapshot "$a" 'extra*'
grep -q "extra1.txt" "$W/out" || fail "find in another snapshot: $(cat "$W/out")"
run_warn "find (all)" -- "$CAIRN" find 'extra3*'
run_warn stats -- "$CAIRN" stats "$c"
run_warn "stats (all)" -- "$CAIRN" stats
run_warn tag -- "$CAIRN" tag -n --add t1 "$a"
run_warn rewrite -- "$CAIRN" rewrite -n --exclude 'extra*' "$c"
# report also judges the 3-2-1-1-0 state, which lists the snapshots again.
run_warn report -- "$CAIRN" report --html "$W/report.html"
grep -q '>2 snapshots' "$W/report.html" || fail "report counts other than the two readable snapshots"
CAIRN_REPO="$W/copy" init_repo
run_warn copy -- "$CAIRN" -r "$W/copy" copy --from-repo "$CAIRN_REPO" --from-password-file "$CAIRN_PASSWORD_FILE"
[ "$("$CAIRN" -r "$W/copy" snapshots | grep -c '^[0-9a-f]\{8\}  ')" = 2 ] || fail "copy of the two others"

# check reports it; prune will not run past a snapshot it cannot read.
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "check of a damaged snapshot exited $rc"
grep -q "${bad:0:8}" "$W/out" || fail "check does not name the damaged snapshot: $(cat "$W/out")"
rc=0; "$CAIRN" prune > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "prune past a damaged snapshot exited $rc"
grep -q "${bad:0:8}" "$W/out" || fail "prune does not name the damaged snapshot: $(cat "$W/out")"

# forget removes it by its ID (a prefix); a dry run only says so.
"$CAIRN" forget -n "${bad:0:12}" > "$W/out" 2> /dev/null || fail "forget -n of a damaged snapshot failed"
grep -q "would remove damaged snapshot ${bad:0:8}" "$W/out" || fail "forget -n: $(cat "$W/out")"
[ -e "$CAIRN_REPO/snapshots/$bad" ] || fail "forget -n removed the snapshot"
"$CAIRN" forget "${bad:0:12}" > "$W/out" 2> "$W/err" || fail "forget of a damaged snapshot failed: $(cat "$W/err")"
[ -e "$CAIRN_REPO/snapshots/$bad" ] && fail "forget left the damaged snapshot"
"$CAIRN" snapshots > "$W/out" 2> "$W/err"
[ -s "$W/err" ] && fail "a warning after the damaged snapshot was removed: $(cat "$W/err")"
[ "$(grep -c "$a\|$c" "$W/out")" = 2 ] || fail "forget removed another snapshot: $(cat "$W/out")"
"$CAIRN" check > /dev/null || fail "check after forget"
"$CAIRN" prune > /dev/null || fail "prune after forget"

# ---- a snapshot whose trees cannot be read -----------------------------------
# Its file verifies, but the pack of its new trees is gone: find and stats over
# every snapshot name it by ID, go on with the others, and exit 1.
echo "extra 4" > "$W/src/extra4.txt"
before=$(ls "$CAIRN_REPO/snapshots")
packs=$(cd "$CAIRN_REPO/packs" && find . -type f | sort)
"$CAIRN" backup "$W/src" > /dev/null
d=$(ls "$CAIRN_REPO/snapshots" | grep -vxF -e "$before")
d=${d:0:8}
(cd "$CAIRN_REPO/packs" && find . -type f | sort) | grep -vxF -e "$packs" |
	(cd "$CAIRN_REPO/packs" && xargs rm)
rc=0; "$CAIRN" find 'extra1*' > "$W/out" 2> "$W/err" || rc=$?
crashed "$W/err" && fail "find crashed: $(cat "$W/err")"
[ "$rc" = 1 ] || fail "find past a snapshot with a damaged tree exited $rc: $(cat "$W/err")"
[ "$(grep -c "extra1.txt" "$W/out")" = 2 ] || fail "find in the other snapshots: $(cat "$W/out")"
grep -q "^cairn: snapshot $d: " "$W/err" || fail "find does not name snapshot $d: $(cat "$W/err")"
grep -q "^cairn: 1 snapshot could not be read" "$W/err" || fail "find: $(cat "$W/err")"
rc=0; "$CAIRN" stats > "$W/out" 2> "$W/err" || rc=$?
crashed "$W/err" && fail "stats crashed: $(cat "$W/err")"
[ "$rc" = 1 ] || fail "stats past a snapshot with a damaged tree exited $rc: $(cat "$W/err")"
grep -q "^snapshots  *2$" "$W/out" || fail "stats of the other snapshots: $(cat "$W/out")"
grep -q "^cairn: snapshot $d: " "$W/err" || fail "stats does not name snapshot $d: $(cat "$W/err")"

# A read error names the pack once: one that is gone, and one cut short.
once() { # FILE: each line naming a pack names it once
	local line hex
	while IFS= read -r line; do
		hex=$(grep -o '[0-9a-f]\{64\}' <<< "$line" | head -1)
		[ -z "$hex" ] || [ "$(grep -o "$hex" <<< "$line" | wc -l)" = 1 ] ||
			fail "the pack is named more than once: $line"
	done < "$1"
}
grep "^cairn: snapshot $d: " "$W/err" > "$W/lines"
grep -q "pack 'packs/.*' is missing" "$W/lines" || fail "a pack that is gone: $(cat "$W/lines")"
once "$W/lines"
"$CAIRN" forget "$d" > /dev/null
big=$(find "$CAIRN_REPO/packs" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
truncate -s 100 "$big"
rc=0; "$CAIRN" restore "$c" --target "$W/rt" > /dev/null 2> "$W/err" || rc=$?
crashed "$W/err" && fail "restore crashed: $(cat "$W/err")"
[ "$rc" != 0 ] || fail "restore from a pack cut short succeeded"
grep -q "is truncated before offset" "$W/err" || fail "a pack cut short: $(cat "$W/err")"
once "$W/err"
echo ok
