#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs: hosts/<host>/latest and tags/<tag>/latest (docs/MOUNT.md), with two
# hosts and two tags. Each leads to the newest snapshot of its host or tag; a
# backup of one host moves its latest (to a new inode) and that of its tag, and
# leaves the other host's and tag's alone; a forget moves it back. A repository
# that goes away keeps the last view (one line logged per failed rescan).
. "$(dirname "$0")/lib.sh"
fuse_setup
export LC_ALL=C

init_repo
for h in ha hb; do mkdir -p "$W/$h"; done
# backup HOST TAG CONTENT: prints the snapshot ID.
backup() {
	echo "$3" > "$W/$1/f"
	"$CAIRN" backup --json --host "$1" --tag "$2" "$W/$1" |
		sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p'
}
a1=$(backup ha ta "ha one")
b1=$(backup hb tb "hb one")
a2=$(backup ha tb "ha two")
[ -n "$a1" ] && [ -n "$b1" ] && [ -n "$a2" ] || fail "no snapshot ID from backup --json"

# name ID: the snapshot's name in the mount, through ids/.
name() {
	local t
	t=$(readlink "$MNT/ids/${1:0:8}") || { echo "(no ids/${1:0:8})"; return; }
	echo "${t#../snapshots/}"
}
# want LINK ID HOST CONTENT: LINK (under $MNT) leads to snapshot ID, whose file
# is CONTENT. Returns 1 instead of failing while FAIL_SOFT is set.
want() {
	local up=../../ got exp
	[ "$1" = latest ] && up=
	got=$(readlink "$MNT/$1") || got="(none)"
	exp=${up}snapshots/$(name "$2")
	if [ "$got" != "$exp" ] || [ "$(cat "$MNT/$1$W/$3/f" 2>&1)" != "$4" ]; then
		[ -n "${FAIL_SOFT:-}" ] && return 1
		fail "$1 -> $got, expected $exp ($4)"
	fi
}
check_all() {
	want latest "$1" "$2" "$3" && want hosts/ha/latest "$4" ha "$5" &&
		want hosts/hb/latest "$6" hb "$7" && want tags/ta/latest "$8" "$9" "${10}" &&
		want tags/tb/latest "${11}" "${12}" "${13}"
}

mount_fs
check_all "$a2" ha "ha two" "$a2" "ha two" "$b1" "hb one" "$a1" ha "ha one" "$a2" ha "ha two"
# A host's directory lists its snapshots and latest; latest is a symlink.
[ "$(ls "$MNT/hosts/ha")" = "$(printf '%s\n%s\nlatest' "$(name "$a1")" "$(name "$a2")" | sort)" ] ||
	fail "hosts/ha lists $(ls "$MNT/hosts/ha" | tr '\n' ' ')"
[ "$(ls "$MNT/tags/ta")" = "$(printf '%s\nlatest' "$(name "$a1")" | sort)" ] ||
	fail "tags/ta lists $(ls "$MNT/tags/ta" | tr '\n' ' ')"
[ -L "$MNT/hosts/hb/latest" ] && [ -L "$MNT/tags/tb/latest" ] || fail "latest is not a symlink"
[ ! -e "$MNT/shadow/ha/latest" ] || fail "shadow/ha has a latest (Samba parses every name there)"
ino_a=$(stat -c %i "$MNT/hosts/ha/latest")
ino_b=$(stat -c %i "$MNT/hosts/hb/latest")
ino_tb=$(stat -c %i "$MNT/tags/tb/latest")

# A new backup of hb, tagged ta: hb's latest and ta's move, ha's and tb's stay.
b2=$(backup hb ta "hb two")
for _ in $(seq 100); do
	FAIL_SOFT=1 want hosts/hb/latest "$b2" hb "hb two" && break
	sleep 0.1
done
want hosts/hb/latest "$b2" hb "hb two"
# Every name looked up before the backup has expired in the kernel after a
# second (FS_VIRTUAL_TIMEOUT): what follows is the daemon's answer.
sleep 1.2
check_all "$b2" hb "hb two" "$a2" "ha two" "$b2" "hb two" "$b2" hb "hb two" "$a2" ha "ha two"
[ "$(stat -c %i "$MNT/hosts/hb/latest")" != "$ino_b" ] || fail "hosts/hb/latest moved, its inode did not"
[ "$(stat -c %i "$MNT/hosts/ha/latest")" = "$ino_a" ] || fail "hosts/ha/latest changed its inode"
[ "$(stat -c %i "$MNT/tags/tb/latest")" = "$ino_tb" ] || fail "tags/tb/latest changed its inode"

# Forgetting hb's newest moves its latest back; forgetting ha's tb snapshot
# moves tb's latest to hb's first.
"$CAIRN" forget "$b2" "$a2" > /dev/null
for _ in $(seq 100); do
	FAIL_SOFT=1 want hosts/hb/latest "$b1" hb "hb one" && break
	sleep 0.1
done
sleep 1.2
check_all "$b1" hb "hb one" "$a1" "ha one" "$b1" "hb one" "$a1" ha "ha one" "$b1" hb "hb one"

# A repository that goes away (its disk unmounted, moved) is not an empty one:
# the rescan fails with one line each time and the view stays as it was.
# gone WHAT: the mount logs a failed rescan, and still shows every snapshot.
gone() {
	local before n
	before=$(grep -c "cannot rescan snapshots" "$W/fs.log" || true)
	for _ in $(seq 300); do
		ls "$MNT/snapshots" > /dev/null
		n=$(grep -c "cannot rescan snapshots" "$W/fs.log" || true)
		[ "$n" -gt "$before" ] && break
		sleep 0.1
	done
	[ "$n" -gt "$before" ] || fail "$1: no rescan failure logged: $(tail -3 "$W/fs.log")"
	[ "$(ls "$MNT/snapshots" | wc -l)" = 2 ] || fail "$1: snapshots/: $(ls "$MNT/snapshots")"
	[ "$(readlink "$MNT/hosts/hb/latest")" = "../../snapshots/$(name "$b1")" ] || fail "$1: hosts/hb/latest"
	[ -e "$MNT/latest" ] || fail "$1: latest is gone"
}
mv "$CAIRN_REPO" "$CAIRN_REPO.moved"
gone "repository moved away"
mv "$CAIRN_REPO.moved" "$CAIRN_REPO"
mv "$CAIRN_REPO/snapshots" "$CAIRN_REPO/snapshots.x"
gone "snapshots/ moved away"
mv "$CAIRN_REPO/snapshots.x" "$CAIRN_REPO/snapshots"

# A '/' in a host name is %2F (docs/MOUNT.md), never '_': hosts "a/b" and "a_b"
# keep a directory each.
mkdir -p "$W/slash"
"$CAIRN" backup --host a/b "$W/slash" > /dev/null
"$CAIRN" backup --host a_b "$W/slash" > /dev/null
for _ in $(seq 100); do [ -d "$MNT/hosts/a_b" ] && [ -d "$MNT/hosts/a%2Fb" ] && break; sleep 0.1; done
[ "$(ls "$MNT/hosts/a%2Fb" | wc -l)" = 2 ] || fail "hosts/a%2Fb: $(ls "$MNT/hosts")"
[ "$(ls "$MNT/hosts/a_b" | wc -l)" = 2 ] || fail "hosts/a_b: $(ls "$MNT/hosts")"
umount_fs
echo ok
