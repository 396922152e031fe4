#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs names of snapshots taken in one second: six backups of six hosts at
# once. Every name is unique, follows the rule of docs/MOUNT.md (time order, then
# ID), stays the same across a remount and after a forget, and latest, ids/,
# hosts/ and tags/ (and their own latest) lead to the right snapshot's content.
. "$(dirname "$0")/lib.sh"
fuse_setup
export LC_ALL=C # ls sorts names byte by byte

init_repo
HOSTS="h1 h2 h3 h4 h5 h6"
for h in $HOSTS; do
	mkdir -p "$W/$h"
	echo "content of $h" > "$W/$h/f"
done
# One snapshot of h1 before the burst, named without a suffix.
early=$("$CAIRN" backup --json --host h1 --tag early "$W/h1" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$early" ] || fail "no snapshot ID from backup --json"

# burst: one backup per host, all started at once just after a second begins
# (they take milliseconds together).
burst() {
	local pids=() p
	until [[ "$EPOCHREALTIME" =~ [.,]0 ]]; do sleep 0.01; done
	for h in $HOSTS; do
		"$CAIRN" backup --host "$h" --tag all --tag "t$h" "$W/$h" > /dev/null 2> "$W/err.$h" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail "backup: $(cat "$W"/err.*)"; done
}
# expected: "ID NAME HOST" per snapshot, oldest first, from cairn's own list and
# the rule: local time to the second, then "-1", "-2" ... among equal names in
# the order of time (ns) and ID, into $W/exp; prints how many share one name at most.
expected() {
	"$CAIRN" snapshots --json | python3 -c '
import datetime, json, sys, time
snaps = []
for s in json.load(sys.stdin):
    sec, rest = s["time"].split(".")
    frac, off = rest[:9], rest[9:]
    t = int(datetime.datetime.strptime(sec + off, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    snaps.append((t * 10**9 + int(frac), s["id"], t, s["hostname"]))
seen = {}
for ns, sid, t, host in sorted(snaps):
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
    k = seen[base] = seen.get(base, -1) + 1
    print(sid, base if k == 0 else "%s-%d" % (base, k), host)
print(max(seen.values()) + 1, file=sys.stderr)
' 2>&1 > "$W/exp"
}
ok=
for try in $(seq 20); do
	burst
	[ "$(expected)" -ge 6 ] && { ok=1; break; }
	echo "try $try: the six backups spread over two seconds"
	"$CAIRN" forget $(awk -v e="$early" '$1 != e { print $1 }' "$W/exp") > /dev/null
done
[ -n "$ok" ] || fail "no six backups in one second after 20 tries"

# check: the mount shows exactly what $W/exp says.
check() {
	local id name host
	[ "$(ls "$MNT/snapshots")" = "$(awk '{ print $2 }' "$W/exp" | sort)" ] ||
		fail "$1: snapshots/ lists $(ls "$MNT/snapshots" | tr '\n' ' '), expected $(awk '{ print $2 }' "$W/exp" | tr '\n' ' ')"
	[ -z "$(ls "$MNT/snapshots" | uniq -d)" ] || fail "$1: names not unique: $(ls "$MNT/snapshots")"
	while read -r id name host; do
		[ "$(ls "$MNT/snapshots/$name$W")" = "$host" ] && [ "$(cat "$MNT/snapshots/$name$W/$host/f")" = "content of $host" ] ||
			fail "$1: snapshots/$name is not the snapshot of $host"
		[ "$(readlink "$MNT/ids/${id:0:8}")" = "../snapshots/$name" ] ||
			fail "$1: ids/${id:0:8} -> $(readlink "$MNT/ids/${id:0:8}"), expected $name"
		[ "$(readlink "$MNT/hosts/$host/$name")" = "../../snapshots/$name" ] &&
			[ "$(cat "$MNT/hosts/$host/$name$W/$host/f")" = "content of $host" ] ||
			fail "$1: hosts/$host/$name"
		[ "$(ls "$MNT/hosts/$host")" = "$(awk -v h="$host" '$3 == h { print $2 } END { print "latest" }' "$W/exp" | sort)" ] ||
			fail "$1: hosts/$host lists $(ls "$MNT/hosts/$host" | tr '\n' ' ')"
		# hosts/<host>/latest: the host's last in the order of the names.
		name=$(awk -v h="$host" '$3 == h { n = $2 } END { print n }' "$W/exp")
		[ "$(readlink "$MNT/hosts/$host/latest")" = "../../snapshots/$name" ] ||
			fail "$1: hosts/$host/latest -> $(readlink "$MNT/hosts/$host/latest"), expected $name"
	done < "$W/exp"
	[ "$(ls "$MNT/hosts")" = "$(awk '{ print $3 }' "$W/exp" | sort -u)" ] || fail "$1: hosts/: $(ls "$MNT/hosts")"
	for h in $HOSTS; do
		# tags/t$h: the burst's snapshot of $h, if not forgotten (not h1's early one).
		name=$(awk -v h="$h" -v e="$early" '$3 == h && $1 != e { n = $2 } END { print n }' "$W/exp")
		if [ -z "$name" ]; then
			[ ! -e "$MNT/tags/t$h" ] || fail "$1: tags/t$h stays without snapshots"
			continue
		fi
		[ "$(ls "$MNT/tags/t$h")" = "$(printf '%s\nlatest' "$name")" ] &&
			[ "$(cat "$MNT/tags/t$h/$name$W/$h/f")" = "content of $h" ] &&
			[ "$(readlink "$MNT/tags/t$h/latest")" = "../../snapshots/$name" ] ||
			fail "$1: tags/t$h lists $(ls "$MNT/tags/t$h" | tr '\n' ' '), expected $name and latest"
	done
	read -r id name host < <(tail -1 "$W/exp")
	[ "$(readlink "$MNT/latest")" = "snapshots/$name" ] && [ "$(cat "$MNT/latest$W/$host/f")" = "content of $host" ] ||
		fail "$1: latest -> $(readlink "$MNT/latest"), expected $name ($host)"
}

mount_fs
check "first mount"
ls -l "$MNT/snapshots" "$MNT/ids" "$MNT/hosts"/* > "$W/ls1"
umount_fs
mount_fs
check "remount"
ls -l "$MNT/snapshots" "$MNT/ids" "$MNT/hosts"/* > "$W/ls2"
cmp -s "$W/ls1" "$W/ls2" || fail "listings differ across a remount: $(diff "$W/ls1" "$W/ls2")"
# Forget the first of the burst while mounted: the others move up one suffix.
second=$(awk '$2 ~ /-1$/ { print $2; exit }' "$W/exp")
first=$(awk -v n="${second%-1}" '$2 == n { print $1 }' "$W/exp")
"$CAIRN" forget "$first" > /dev/null
expected > /dev/null
# The kernel keeps each name of a virtual directory for a second from its
# lookup: until the last one expires, some may still lead to the old targets.
for _ in $(seq 50); do (check "after a forget") 2> /dev/null && break; sleep 0.2; done
check "after a forget"
umount_fs
echo ok
