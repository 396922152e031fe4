#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn tag (new snapshot with changed tags, the rest kept, the old one gone) and
# cairn rewrite (excluded paths removed from existing snapshots; with --forget
# and prune, a secret's data leaves every pack), and the locks both take.
. "$(dirname "$0")/lib.sh"

R=$(realpath "$W")
init_repo
SRC="$R/src"
mkdir -p "$SRC/app/conf" "$SRC/docs"
printf 'report\n' > "$SRC/docs/report.txt"
printf 'setting = 1\n' > "$SRC/app/conf/app.conf"
# The secret: small (one data blob), and unlike anything else in the backup.
head -c 2000 /dev/urandom | base64 > "$SRC/app/conf/secret.key"
"$CAIRN" backup --host h1 --tag daily "$SRC" > /dev/null
printf 'report v2\n' > "$SRC/docs/report.txt"
"$CAIRN" backup --host h1 --tag daily "$SRC" > /dev/null
"$CAIRN" backup --host h2 "$SRC/docs" > /dev/null
# One line per snapshot: id, time, tree, parent, tags.
state() {
	"$CAIRN" snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    print(s["id"], s["time"], s["tree"], s["parent"], s["hostname"], ",".join(s["tags"]))'
}
field() { state | awk -v n="$1" -v f="$2" 'NR == n { print $f }'; }
state > "$W/s0"

# ---- tag -------------------------------------------------------------------
old=$(field 2 1)
"$CAIRN" tag --add x,y --host h1 latest > "$W/t1" || fail "tag --add: $(cat "$W/t1")"
grep -q "^${old:0:8} -> [0-9a-f]\{8\}  tags: daily, x, y$" "$W/t1" || fail "tag output: $(cat "$W/t1")"
grep -qx "changed the tags of 1 snapshot" "$W/t1" || fail "tag summary: $(cat "$W/t1")"
state > "$W/s1"
[ "$(wc -l < "$W/s1")" = 3 ] || fail "tag: $(cat "$W/s1")"
! grep -q "^$old " "$W/s1" || fail "tag: the old snapshot is still there"
# Time, tree, parent and host kept: the same line but for the ID and tags.
[ "$(grep " daily,x,y$" "$W/s1" | cut -d' ' -f2-5)" = "$(grep "^$old " "$W/s0" | cut -d' ' -f2-5)" ] ||
	fail "tag changed more than the tags: $(cat "$W/s0" "$W/s1")"
new=$(grep " daily,x,y$" "$W/s1" | cut -d' ' -f1)
"$CAIRN" ls "$new" "$SRC/docs" | grep -qx report.txt || fail "tagged snapshot: ls"
# Without SNAP: every snapshot the filters match; unchanged ones are left alone.
"$CAIRN" tag --json --remove daily --tag daily > "$W/t2"
[ "$(grep -c '"message_type":"changed_snapshot"' "$W/t2")" = 2 ] || fail "tag --remove: $(cat "$W/t2")"
grep -q '"changed_snapshots":2}' "$W/t2" || fail "tag --json summary: $(cat "$W/t2")"
"$CAIRN" tag --add x > "$W/t3"
grep -qx "changed the tags of 2 snapshots" "$W/t3" || fail "tag --add x: $(cat "$W/t3")"
[ "$(state | awk '{ print $6 }' | sort | tr '\n' ' ')" = "x x x,y " ] || fail "tags: $(state)"
"$CAIRN" tag --set '' --tag x,y > /dev/null
[ "$(state | awk '$6 == "" { n++ } END { print n }')" = 1 ] || fail "tag --set '': $(state)"
"$CAIRN" tag -n --set z > "$W/t4"
grep -qx "would change the tags of 3 snapshots" "$W/t4" || fail "tag -n: $(cat "$W/t4")"
[ "$(state | awk '$6 == "z"' | wc -l)" = 0 ] || fail "tag -n changed tags"
expect_fail 2 "say what to change" -- "$CAIRN" tag latest
expect_fail 2 "add: a tag cannot be empty" -- "$CAIRN" tag --add "" latest
expect_fail 2 "cannot be combined" -- "$CAIRN" tag --set a --add b latest
expect_fail 2 "holds a control character" -- "$CAIRN" tag --add "$(printf 'a\tb')" latest

# ---- locks: shared, like backup ----------------------------------------------
sleep 600 & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
live_lock() {
	local name
	name=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf 'cairn-lock 1\nkind = %s\ncommand = %s\nhost = %s\npid = %s\nstart = %s\n' \
		"$1" "$2" "$(hostname)" "$holder" "$(date +%s)" > "$CAIRN_REPO/locks/$name"
	echo "$name"
}
lock=$(live_lock shared backup)
"$CAIRN" tag --add beside-backup latest > /dev/null || fail "tag must run beside a backup"
"$CAIRN" rewrite --exclude nothing-matches latest > /dev/null || fail "rewrite beside a backup"
rm "$CAIRN_REPO/locks/$lock"
lock=$(live_lock exclusive prune)
expect_fail 1 "locked exclusively by prune" -- "$CAIRN" tag --add x latest
expect_fail 1 "locked exclusively by prune" -- "$CAIRN" rewrite --exclude '*.key' latest
rm "$CAIRN_REPO/locks/$lock"

# ---- rewrite -----------------------------------------------------------------
secret=$("$CRAFT" blob-id "$SRC/app/conf/secret.key")
"$CAIRN" cat blob "$secret" | cmp - "$SRC/app/conf/secret.key" || fail "craft blob-id: wrong ID"
state > "$W/r0"
"$CAIRN" rewrite -n --exclude '*.key' > "$W/r1"
[ "$(grep -c "would remove $SRC/app/conf/secret.key$" "$W/r1")" = 2 ] || fail "rewrite -n: $(cat "$W/r1")"
grep -qx "would rewrite 2 snapshots" "$W/r1" || fail "rewrite -n summary: $(cat "$W/r1")"
state | cmp -s - "$W/r0" || fail "rewrite -n changed snapshots"
# Without --forget the originals stay.
"$CAIRN" rewrite --exclude '*.key' --host h1 latest > "$W/r2"
[ "$(state | wc -l)" = 4 ] || fail "rewrite kept: $(state)"
grep -q "1 entry removed$" "$W/r2" || fail "rewrite: $(cat "$W/r2")"
# The copy: same parent, host and tags, the time 1 ns later, a new tree, no
# secret, the rest.
read -r o8 _ n8 _ < <(grep -- ' -> ' "$W/r2")
was=$(grep "^$o8" "$W/r0") now=$(state | grep "^$n8")
[ -n "$was" ] && [ -n "$now" ] || fail "rewrite: snapshots $o8 -> $n8 not found: $(state)"
[ "$(echo "$was" | cut -d' ' -f4-6)" = "$(echo "$now" | cut -d' ' -f4-6)" ] ||
	fail "rewrite changed more than the tree: $was / $now"
ns() { # RFC 3339 time with 9 decimals -> its nanoseconds within the minute
	echo "$1" | sed 's/^.*:\([0-9][0-9]\)\.\([0-9]\{9\}\)+.*$/1\1\2/'
}
[ "$(echo "$was" | cut -d' ' -f2 | cut -c1-16)" = "$(echo "$now" | cut -d' ' -f2 | cut -c1-16)" ] &&
	[ $(($(ns "$(echo "$now" | cut -d' ' -f2)") - $(ns "$(echo "$was" | cut -d' ' -f2)"))) = 1 ] ||
	fail "the copy is not 1 ns after its original: $was / $now"
[ "$(echo "$was" | cut -d' ' -f3)" != "$(echo "$now" | cut -d' ' -f3)" ] || fail "rewrite kept the tree"
set -- $now
"$CAIRN" ls "$1" "$SRC/app/conf" > "$W/ls"
[ "$(cat "$W/ls")" = app.conf ] || fail "rewritten snapshot: $(cat "$W/ls")"
"$CAIRN" restore -t "$W/rt" "$1" > /dev/null
diff -r "$SRC/docs" "$W/rt$SRC/docs" && cmp "$SRC/app/conf/app.conf" "$W/rt$SRC/app/conf/app.conf" ||
	fail "rewritten snapshot lost other files"
# A directory pattern removes the directory and all it holds.
"$CAIRN" rewrite -n --exclude "$SRC/app" "$1" | grep -q "would remove $SRC/app/$" ||
	fail "rewrite of a directory"
expect_fail 2 "say what to remove" -- "$CAIRN" rewrite latest

# ---- the copy counts as newer than its original --------------------------------
# Whichever of their IDs sorts first: 'latest', forget --keep-last and the
# parent of the next backup take the copy. Fresh repositories until both orders
# of the IDs have been seen (each is a coin toss: 40 tries fail 1 in 2^39).
orders=""
for i in $(seq 40); do
	tr=$W/tie$i
	CAIRN_REPO=$tr init_repo
	mkdir -p "$W/tiesrc"
	echo "$i" > "$W/tiesrc/ok"
	echo pw > "$W/tiesrc/secret"
	CAIRN_REPO=$tr "$CAIRN" backup "$W/tiesrc" > /dev/null
	read -r o8 _ n8 _ < <(CAIRN_REPO=$tr "$CAIRN" rewrite --exclude secret | grep -- ' -> ')
	[ -n "$o8" ] && [ -n "$n8" ] || fail "tie $i: no rewrite"
	[[ $o8 < $n8 ]] && order=lt || order=gt
	CAIRN_REPO=$tr "$CAIRN" ls latest "$W/tiesrc" > "$W/tie.ls"
	[ "$(cat "$W/tie.ls")" = ok ] || fail "tie $i ($order): latest is the original: $(cat "$W/tie.ls")"
	CAIRN_REPO=$tr "$CAIRN" forget -n --keep-last 1 > "$W/tie.f"
	grep -q "keep *$n8" "$W/tie.f" && grep -q "remove *$o8" "$W/tie.f" ||
		fail "tie $i ($order): forget --keep-last 1 keeps the original: $(cat "$W/tie.f")"
	CAIRN_REPO=$tr "$CAIRN" backup --json "$W/tiesrc" > "$W/tie.b"
	CAIRN_REPO=$tr "$CAIRN" snapshots --json | python3 -c '
import json, sys
print(json.load(sys.stdin)[-1]["parent"])' | grep -q "^$n8" ||
		fail "tie $i ($order): the next backup's parent is not the copy"
	rm -rf "$tr"
	case "$orders" in *$order*) ;; *) orders="$orders $order" ;; esac
	[ "$orders" = " lt gt" ] || [ "$orders" = " gt lt" ] && break
done
[ "${#orders}" = 6 ] || fail "40 repositories and the IDs always sorted $orders"

# ---- a secret backed up by mistake, gone for good ------------------------------
"$CAIRN" rewrite --forget --exclude 'secret.key' > "$W/r3"
grep -q "original removed$" "$W/r3" || fail "rewrite --forget: $(cat "$W/r3")"
[ -z "$("$CAIRN" find secret.key)" ] || fail "find still finds the secret: $("$CAIRN" find secret.key)"
[ "$(state | wc -l)" = 3 ] || fail "rewrite --forget: $(state)"
"$CAIRN" check > /dev/null || fail "check after rewrite"
"$CAIRN" cat blob "$secret" > /dev/null 2>&1 || fail "the secret went before prune"
"$CAIRN" prune --max-unused 0 > /dev/null
expect_fail 1 "no blob matches\|not in the index" -- "$CAIRN" cat blob "$secret"
# Not in the index, nor in any pack header: the index rebuilt from the packs
# does not know it either.
"$CAIRN" rebuild-index > /dev/null
expect_fail 1 "no blob matches\|not in the index" -- "$CAIRN" cat blob "$secret"
for p in $(find "$CAIRN_REPO/packs" -type f); do
	! "$CAIRN" cat pack "$(basename "$p")" | grep -q "^$secret " || fail "pack $p still holds the secret"
done
"$CAIRN" check --read-data > /dev/null || fail "check after prune"
echo "ok"
