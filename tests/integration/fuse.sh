#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs on real mounts: layout, metadata of every entry type, cp -a / rsync
# restores, sparse files, concurrent readers, EROFS, EIO on a damaged pack,
# stable inodes, /history, and new snapshots appearing while mounted.
. "$(dirname "$0")/lib.sh"
fuse_setup

# listing DIR: type, mode, owner, size (not for directories: the format does not
# keep theirs), mtime in ns, link target and count, name; NUL-separated.
listing() {
	(cd "$1" && find . -mindepth 1 ! -type d -printf '%y %m %U %G %s %T@ %l %n %P\0' &&
		find . -mindepth 1 -type d -printf '%y %m %U %G - %T@ %l %n %P\0') | sort -z
}
# xattrs and ACLs of every entry, in name order (getfattr -R follows readdir order).
xattrs() { (cd "$1" && find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex 2>/dev/null); }
acls() { (cd "$1" && find . ! -type l -print0 | sort -z | xargs -0 getfacl -p 2>/dev/null); }
same_tree() { # SRC COPY WHAT: content, metadata, xattrs and ACLs equal
	# diff(1) calls any two fifos or devices different: the listing covers them.
	# It would read all 3 GiB of the sparse file (40 s of the test): sparse_cmp
	# compares its data and skips the holes (the mount's are read whole below).
	diff -r --no-dereference -x fifo -x null -x blk -x sock -x sparse "$1" "$2" > "$W/diff" 2>&1 ||
		fail "$3: content differs: $(head "$W/diff")"
	sparse_cmp "$1/sparse" "$2/sparse" || fail "$3: the sparse file differs"
	cmp <(listing "$1") <(listing "$2") ||
		fail "$3: metadata differs: $(diff <(listing "$1" | tr '\0' '\n') <(listing "$2" | tr '\0' '\n') | head)"
	cmp <(xattrs "$1") <(xattrs "$2") || fail "$3: xattrs differ: $(diff <(xattrs "$1") <(xattrs "$2") | head)"
	cmp <(acls "$1") <(acls "$2") || fail "$3: ACLs differ: $(diff <(acls "$1") <(acls "$2") | head)"
}

# ---- a source tree with every kind of entry ------------------------------
init_repo --chunk-size 64K/128K/512K
chmod 755 "$W" # the snapshot keeps this mode: other users must get through it
T="$W/src"
mkdir -p "$T/dir/sub" "$T/other" "$T/acl-dir" "$T/big"
echo "hello" > "$T/file"
: > "$T/empty"
printf 'unchanged\n' > "$T/dir/same"
printf 'version one\n' > "$T/dir/changing"
ln -s file "$T/link"
ln -s /nowhere/dangling "$T/dir/dangling"
mkfifo "$T/fifo"
mknod "$T/null" c 1 3 2>/dev/null || echo "no mknod: character device not tested"
mknod "$T/blk" b 7 200 2>/dev/null || echo "no mknod: block device not tested"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/sock"
printf 'mode only\n' > "$T/dir/modeonly"
chmod 0644 "$T/dir/modeonly"
echo linked > "$T/dir/hard1"
ln "$T/dir/hard1" "$T/other/hard2"
setfattr -n user.text -v "some value" "$T/file"
setfattr -n user.bin -v 0x00ff0a0d7f80 "$T/file"
setfattr -n user.dir -v yes "$T/dir"
setfacl -m u:nobody:r-- "$T/dir/same"
setfacl -d -m g:nogroup:rx "$T/acl-dir"
echo odd > "$T/$(printf 'non-utf8-\xff\xfe')"
echo odd > "$T/$(printf 'new\nline')"
echo odd > "$T/$(printf 'n%.0s' $(seq 255))"
chmod 4755 "$T/file"
chmod 1777 "$T/other"
chmod 0640 "$T/dir/hard1"
chown 65534:65534 "$T/empty"
touch -h -d '2001-02-03 04:05:06.123456789' "$T/link"
touch -d '1999-12-31 23:59:59.999999999' "$T/file"
for i in 1 2 3 4; do head -c $((3000000 + i * 100000)) /dev/urandom > "$T/big/f$i"; done
# A 3 GiB sparse file with two data regions.
truncate -s 3G "$T/sparse"
head -c 1000000 /dev/urandom | dd of="$T/sparse" bs=1M seek=1024 conv=notrunc status=none
printf 'tail' | dd of="$T/sparse" bs=1 seek=$((3 * 1024 * 1024 * 1024 - 4)) conv=notrunc status=none

"$CAIRN" backup --tag first --host testhost "$T" > /dev/null
snap1=$(ls "$CAIRN_REPO/snapshots")
mount_fs

# ---- the mount lock: informational, shown by 'cairn unlock --list' ----------------
"$CAIRN" unlock --list | grep -q "^mount lock [0-9a-f]*: mount on host .* pid $fspid since" ||
	fail "no mount lock: $("$CAIRN" unlock --list)"

# ---- layout --------------------------------------------------------------
[ "$(ls "$MNT")" = "$(printf 'history\nhosts\nids\nlatest\nshadow\nsnapshots\ntags')" ] ||
	fail "top level: $(ls "$MNT")"
name1=$(ls "$MNT/snapshots")
[[ "$name1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] || fail "snapshot name '$name1'"
[ "$(readlink "$MNT/latest")" = "snapshots/$name1" ] || fail "latest -> $(readlink "$MNT/latest")"
[ "$(readlink "$MNT/hosts/testhost/$name1")" = "../../snapshots/$name1" ] || fail "hosts/"
[ "$(readlink "$MNT/tags/first/$name1")" = "../../snapshots/$name1" ] || fail "tags/"
[ "$(readlink "$MNT/ids/${snap1:0:8}")" = "../snapshots/$name1" ] || fail "ids/: $(ls "$MNT/ids")"
[ -d "$MNT/ids/${snap1:0:8}$T" ] || fail "ids/ does not lead to the snapshot"
[ ! -e "$MNT/snapshots/1999-01-01T00:00:00" ] || fail "a snapshot that does not exist"
gmt1=$(TZ=UTC0 date -d "@$(date -d "$name1" +%s)" +@GMT-%Y.%m.%d-%H.%M.%S)
[ "$(ls "$MNT/shadow")" = testhost ] && [ "$(ls "$MNT/shadow/testhost")" = "$gmt1" ] ||
	fail "shadow/: $(ls -R "$MNT/shadow" | head), want testhost/$gmt1"
[ "$(stat -c %i "$MNT/shadow/testhost/$gmt1")" = "$(stat -c %i "$MNT/snapshots/$name1")" ] &&
	cmp -s "$MNT/shadow/testhost/$gmt1$T/dir/same" "$T/dir/same" || fail "shadow/ does not lead to the snapshot"
M="$MNT/latest$T"
dotdot() { ls -ia "$1" | awk '$2 == ".." { print $1 }'; }
[ "$(dotdot "$M/dir")" = "$(stat -c %i "$M")" ] || fail "'..' of a directory: $(dotdot "$M/dir")"
[ "$(dotdot "$MNT/snapshots/$name1")" = "$(stat -c %i "$MNT/snapshots")" ] || fail "'..' of a snapshot"

# ---- metadata and content of every entry type ------------------------------
same_tree "$T" "$M" "mount"
[ "$(stat -c %t,%T "$M/null" 2>/dev/null)" = "$(stat -c %t,%T "$T/null" 2>/dev/null)" ] || fail "rdev"
[ "$(stat -c %F,%t,%T "$M/blk" 2>/dev/null)" = "$(stat -c %F,%t,%T "$T/blk" 2>/dev/null)" ] || fail "block device"
[ "$(stat -c %F,%a,%s,%b "$M/sock")" = "socket,$(stat -c %a "$T/sock"),0,0" ] || fail "socket: $(stat -c %F,%a,%s,%b "$M/sock")"
[ "$(stat -c %i "$M/dir/hard1")" = "$(stat -c %i "$M/other/hard2")" ] || fail "hard links: two inodes"
[ "$(stat -c %h "$M/dir/hard1")" = 2 ] || fail "hard link count"
[ "$(stat -c %y "$M/file")" = "$(stat -c %y "$T/file")" ] || fail "nanosecond mtime"
[ "$(stat -c %z "$M/file")" = "$(stat -c %z "$T/file")" ] || fail "ctime"
[ "$(getfattr --only-values -n user.bin -e hex "$M/file" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = \
	"00ff0a0d7f80" ] || fail "binary xattr value"
getfacl -p "$M/dir/same" 2>/dev/null | grep -q '^user:nobody:r--' || fail "access ACL not shown"
getfacl -p "$M/acl-dir" 2>/dev/null | grep -q '^default:group:nogroup:r-x' || fail "default ACL not shown"

# Sparse: few blocks, right content, SEEK_DATA/SEEK_HOLE.
[ "$(stat -c %b "$M/sparse")" -lt 4096 ] || fail "sparse file has $(stat -c %b "$M/sparse") blocks"
[ "$(stat -c %s "$M/sparse")" = $((3 * 1024 * 1024 * 1024)) ] || fail "sparse file size"
cmp "$T/sparse" "$M/sparse" || fail "sparse file content"
python3 - "$M/sparse" <<'EOF' || fail "SEEK_DATA/SEEK_HOLE"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.lseek(fd, 0, os.SEEK_DATA) == 1 << 30, os.lseek(fd, 0, os.SEEK_DATA)
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
assert os.lseek(fd, (1 << 30) + 10, os.SEEK_HOLE) >= (1 << 30) + 1000000
EOF

# ---- restores: cp -a and rsync -aHAX -------------------------------------
cp -a --sparse=always "$M" "$W/cp"
same_tree "$T" "$W/cp" "cp -a"
[ "$(stat -c %i "$W/cp/dir/hard1")" = "$(stat -c %i "$W/cp/other/hard2")" ] || fail "cp -a: hard link lost"
[ "$(stat -c %b "$W/cp/sparse")" -lt 10000 ] || fail "cp --sparse=always: not sparse"
rm -rf "$W/cp"
if command -v rsync > /dev/null; then
	rsync -aHAX --sparse "$M/" "$W/rs/"
	same_tree "$T" "$W/rs" "rsync -aHAX"
	[ "$(stat -c %i "$W/rs/dir/hard1")" = "$(stat -c %i "$W/rs/other/hard2")" ] || fail "rsync -H"
	rm -rf "$W/rs"
else
	echo "rsync not installed: rsync restore not tested"
fi

# ---- concurrent readers -----------------------------------------------------
for i in 1 2 3 4; do sha256sum < "$T/big/f$i" > "$W/sum$i"; done
for r in 1 2; do
	for i in 1 2 3 4; do sha256sum < "$M/big/f$i" > "$W/got$i.$r" & done
done
wait $(jobs -p | grep -v "^$fspid$") 2>/dev/null || true
for r in 1 2; do
	for i in 1 2 3 4; do cmp -s "$W/sum$i" "$W/got$i.$r" || fail "concurrent read of f$i differs"; done
done

# ---- read-only ---------------------------------------------------------------
for cmd in "touch $M/new" "mkdir $M/newdir" "rm $M/file" "chmod 600 $M/file" \
	"setfattr -n user.x -v 1 $M/file" "ln $M/file $M/file2" "mv $M/file $M/file3"; do
	if $cmd 2> "$W/err"; then fail "'$cmd' succeeded"; fi
	grep -q "Read-only file system" "$W/err" || fail "'$cmd': $(cat "$W/err")"
done
if (echo x >> "$M/file") 2> "$W/err"; then fail "append succeeded"; fi
grep -q "Read-only file system" "$W/err" || fail "open for writing: $(cat "$W/err")"

# ---- stable inodes, permissions for other users -------------------------------
paths=("$M" "$M/file" "$M/dir/hard1" "$M/other/hard2" "$M/sparse" "$MNT/snapshots/$name1" "$MNT/hosts")
stat -c %i "${paths[@]}" > "$W/ino1"
umount_fs
mount_fs -o allow_other
stat -c %i "${paths[@]}" > "$W/ino2"
cmp -s "$W/ino1" "$W/ino2" || fail "inode numbers changed across remounts: $(paste "$W/ino1" "$W/ino2")"
if command -v setpriv > /dev/null; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	chmod 755 "$W" # so that nobody can reach the mount point
	as_nobody cat "$M/dir/same" > /dev/null || fail "nobody cannot read a world-readable file"
	if as_nobody cat "$M/dir/hard1" > /dev/null 2>&1; then fail "nobody read a 0640 file"; fi
fi

# ---- new snapshots while mounted; /history ---------------------------------
# latest_after NAME: the snapshot latest points to once it has moved from NAME
# (or NAME, after 30 s).
latest_after() {
	for _ in $(seq 600); do
		[ "$(readlink "$MNT/latest")" != "snapshots/$1" ] && break
		sleep 0.05
	done
	readlink "$MNT/latest" | sed 's#snapshots/##'
}
printf 'version two, longer\n' > "$T/dir/changing"
sleep 1 # a different second: a name without suffix
"$CAIRN" backup --host testhost "$T" > /dev/null
name2=$(latest_after "$name1")
[ "$name2" != "$name1" ] || fail "latest did not move after a backup"
[ "$(ls "$MNT/snapshots" | wc -l)" = 2 ] || fail "snapshots/: $(ls "$MNT/snapshots")"
[ "$(ls "$MNT/hosts/testhost")" = "$(printf '%s\n%s\nlatest' "$name1" "$name2")" ] ||
	fail "hosts/testhost: $(ls "$MNT/hosts/testhost")"
[ "$(cat "$MNT/latest$T/dir/changing")" = "version two, longer" ] || fail "new content"
[ "$(cat "$MNT/snapshots/$name1$T/dir/changing")" = "version one" ] || fail "old content"
H="$MNT/history$T"
ls "$H" | grep -qx dir || fail "history lacks the child 'dir': $(ls "$H")"
[ "$(ls "$H/dir/changing")" = "$(printf '%s\n%s' "$name1" "$name2")" ] ||
	fail "history of a changed file: $(ls "$H/dir/changing")"
[ "$(ls "$H/dir/same")" = "$name1" ] || fail "history of an unchanged file: $(ls "$H/dir/same")"
[ "$(cat "$H/dir/changing/$name1")" = "version one" ] || fail "history content"
[ "$(stat -c %i "$H/dir/same/$name1")" = "$(stat -c %i "$MNT/snapshots/$name1$T/dir/same")" ] ||
	fail "a history entry is not the snapshot's entry"
# A metadata-only change (chmod, same content) is a new version too.
chmod 0600 "$T/dir/modeonly"
sleep 1
"$CAIRN" backup --host testhost "$T" > /dev/null
name3=$(latest_after "$name2")
[ "$(ls "$H/dir/modeonly")" = "$(printf '%s\n%s' "$name1" "$name3")" ] ||
	fail "history after a chmod: $(ls "$H/dir/modeonly")"
[ "$(stat -c %a "$H/dir/modeonly/$name3")" = 600 ] && [ "$(stat -c %a "$H/dir/modeonly/$name1")" = 644 ] ||
	fail "history versions of a chmod: modes $(stat -c %a "$H/dir/modeonly"/*)"
[ "$(ls "$H/dir/same")" = "$name1" ] || fail "an unchanged file got a version: $(ls "$H/dir/same")"

# ---- two snapshots in one second; forget and prune while mounted ----------------
# snapid OUTPUT-OF-backup---json: the snapshot ID
snapid() { sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' <<< "$1"; }
# name_of ID: the snapshot's directory name, once the mount shows it
name_of() {
	local t
	for _ in $(seq 600); do
		t=$(readlink "$MNT/ids/${1:0:8}" 2> /dev/null) && { echo "${t#../snapshots/}"; return; }
		sleep 0.05
	done
	fail "snapshot ${1:0:8} did not appear in the mount"
}
P="$W/pair"
mkdir -p "$P"
head -c 2000000 /dev/urandom > "$P/keep"
pa= pb=
for _ in $(seq 20); do # backups take milliseconds: two land in one second soon
	head -c 700000 /dev/urandom > "$P/drop"
	echo first > "$P/which"
	pa=$(snapid "$("$CAIRN" backup --json --host pairhost "$P")")
	rm "$P/drop"
	echo second > "$P/which"
	pb=$(snapid "$("$CAIRN" backup --json --host pairhost "$P")")
	[ "$(name_of "$pb")" = "$(name_of "$pa")-1" ] && break
	"$CAIRN" forget "$pa" "$pb" > /dev/null
	pa= pb=
done
[ -n "$pa" ] || fail "no two backups in one second after 20 tries"
na=$(name_of "$pa")
[ -d "$MNT/snapshots/$na-1" ] && [ "$(readlink "$MNT/hosts/pairhost/$na-1")" = "../../snapshots/$na-1" ] ||
	fail "same-second suffix: $(ls "$MNT/snapshots")"
[ "$(cat "$MNT/snapshots/$na$P/which")" = first ] || fail "$na is not the first of the pair"
[ "$(cat "$MNT/snapshots/$na-1$P/which")" = second ] || fail "$na-1 is not the second of the pair"
cmp -s "$P/keep" "$MNT/snapshots/$na-1$P/keep" || fail "same-second snapshot content"
# Forgetting the first renames the second to "$na": the kernel must not keep the
# old name -> snapshot binding (it caches names in virtual directories briefly),
# nor the listings it has read (it keeps them until the directory's mtime moves).
ls "$MNT/snapshots" "$MNT/ids" > /dev/null
"$CAIRN" forget "$pa" > /dev/null
for _ in $(seq 600); do
	[ ! -e "$MNT/snapshots/$na-1" ] && [ ! -e "$MNT/snapshots/$na$P/drop" ] && break
	sleep 0.05
done
[ ! -e "$MNT/snapshots/$na-1" ] || fail "a forgotten snapshot's name stays"
[ ! -e "$MNT/snapshots/$na$P/drop" ] || fail "'$na' still shows the forgotten snapshot"
[ ! -e "$MNT/ids/${pa:0:8}" ] || fail "ids/ keeps a forgotten snapshot"
listed() { ls "$MNT/snapshots" | grep -qx -- "$na-1" || ls "$MNT/ids" | grep -qx -- "${pa:0:8}"; }
for _ in $(seq 600); do listed || break; sleep 0.05; done
! listed || fail "snapshots/ or ids/ still lists a forgotten snapshot"
[ "$(cat "$MNT/snapshots/$na$P/which")" = second ] || fail "'$na' is not the remaining snapshot"
# prune moves keep's blobs out of the pack that drop's made mostly unused; a file
# opened before prune, and the mount, still read it.
exec 7< "$MNT/snapshots/$na$P/keep"
find "$CAIRN_REPO/packs" -type f -printf '%f\n' | sort > "$W/packs.before"
"$CAIRN" prune --max-unused 0 > /dev/null || fail "prune while mounted"
find "$CAIRN_REPO/packs" -type f -printf '%f\n' | sort > "$W/packs.after"
[ -n "$(comm -23 "$W/packs.before" "$W/packs.after")" ] ||
	fail "prune deleted no pack: nothing moved"
cmp -s "$P/keep" - <&7 || fail "a file opened before prune reads wrong"
exec 7<&-
cmp -s "$P/keep" "$MNT/snapshots/$na$P/keep" || fail "a remaining snapshot reads wrong after prune"
cmp -s "$T/big/f2" "$MNT/snapshots/$name1$T/big/f2" || fail "an older snapshot reads wrong after prune"

# ---- a missing pack: EIO while it is away, the file reads once it is back --------
head -c 1500000 /dev/urandom > "$P/lost"
touch "$W/marker"
sleep 1
pl=$(snapid "$("$CAIRN" backup --json --host pairhost "$P")")
L="$MNT/snapshots/$(name_of "$pl")$P/lost"
stat "$L" > /dev/null # the trees are loaded before the pack goes
mkdir "$W/away"
for pack in $(find "$CAIRN_REPO/packs" -type f -newer "$W/marker"); do
	"$CAIRN" cat pack "$(basename "$pack")" | awk '$2 == "data" { f = 1 } END { exit !f }' &&
		mv "$pack" "$W/away/"
done
[ -n "$(ls "$W/away")" ] || fail "no new pack with data"
if cat "$L" > /dev/null 2> "$W/err"; then fail "a file in a missing pack was read"; fi
grep -q "Input/output error" "$W/err" || fail "missing pack: $(cat "$W/err")"
grep -q "cannot read 'lost'" "$W/fs.log" || fail "no log line for the missing pack"
for pack in "$W/away"/*; do
	# packs/<2 hex>/<name>: the directory is the name's first two characters
	b=$(basename "$pack")
	mv "$pack" "$CAIRN_REPO/packs/${b:0:2}/"
done
cmp -s "$P/lost" "$L" || fail "the file does not read once its pack is back"

# ---- a damaged pack: EIO for the file, the rest still reads ---------------------
head -c 1500000 /dev/urandom > "$T/victim"
touch "$W/marker"
sleep 1
"$CAIRN" backup --host testhost "$T" > /dev/null
# The victim's blobs are the only new data blobs: the first one in a new pack.
off=
for pack in $(find "$CAIRN_REPO/packs" -type f -newer "$W/marker"); do
	off=$("$CAIRN" cat pack "$(basename "$pack")" | awk '$2 == "data" && $6 > 1000 { print $4; exit }')
	[ -z "$off" ] || break
done
[ -n "$off" ] || fail "no data blob in the new packs"
cp "$pack" "$W/pack.good"
flip_byte "$pack" $((off + 500))
for _ in $(seq 600); do [ -e "$MNT/latest$T/victim" ] && break; sleep 0.05; done
if cat "$MNT/latest$T/victim" > /dev/null 2> "$W/err"; then fail "a damaged blob was read"; fi
grep -q "Input/output error" "$W/err" || fail "damaged blob: $(cat "$W/err")"
grep -q "cannot read 'victim' (snapshot [0-9a-f]\{8\})" "$W/fs.log" || fail "no log line for the damaged blob"
# One line for the file and blob, however many requests meet it.
if cat "$MNT/latest$T/victim" > /dev/null 2>&1; then fail "a damaged blob was read, again"; fi
[ "$(grep -c "cannot read 'victim'" "$W/fs.log")" = 1 ] ||
	fail "one damaged blob logged $(grep -c "cannot read 'victim'" "$W/fs.log") lines"
cmp "$T/big/f1" "$MNT/latest$T/big/f1" || fail "other files unreadable after a damaged blob"
# repaired the usual way, a good copy renamed over it: read at once
cp "$W/pack.good" "$pack.tmp" && mv "$pack.tmp" "$pack"
cmp "$T/victim" "$MNT/latest$T/victim" || fail "the file does not read once its pack is replaced"

# ---- damaged trees: EIO and one log line per failed request; put back, they read
before=$(latest_after none)
mkdir -p "$T/tv/sub" && echo tv > "$T/tv/sub/f"
touch "$W/marker"
sleep 1
"$CAIRN" backup --host testhost "$T" > /dev/null
tv=$(latest_after "$before")
tpack=
for pack in $(find "$CAIRN_REPO/packs" -type f -newer "$W/marker"); do
	"$CAIRN" cat pack "$(basename "$pack")" | awk '$2 == "tree" { f = 1 } END { exit !f }' &&
		tpack=$pack
done
[ -n "$tpack" ] || fail "no new pack with trees"
cp "$tpack" "$W/tpack.good"
"$CAIRN" cat pack "$(basename "$tpack")" | awk '$2 == "tree" { print $4 + int($6 / 2) }' |
	while read -r at; do flip_byte "$tpack" "$at"; done
cmp -s "$tpack" "$W/tpack.good" && fail "the tree pack was not damaged"
lines=$(grep -c "cannot read a directory" "$W/fs.log" || true)
if ls "$MNT/snapshots/$tv/" > /dev/null 2> "$W/err"; then fail "a damaged root tree was listed"; fi
grep -q "Input/output error" "$W/err" || fail "damaged tree: $(cat "$W/err")"
[ "$(grep -c "cannot read a directory" "$W/fs.log")" = $((lines + 1)) ] ||
	fail "a failed listing logged $(($(grep -c "cannot read a directory" "$W/fs.log") - lines)) lines, not 1"
[ "$(ls "$MNT/snapshots/$name1$T/dir" | wc -l)" -gt 0 ] || fail "an older snapshot no longer lists"
cp "$W/tpack.good" "$tpack"
[ "$(cat "$MNT/snapshots/$tv$T/tv/sub/f")" = tv ] || fail "the trees do not read once repaired"
kill -0 "$fspid" && mountpoint -q "$MNT" || fail "the daemon died"
umount_fs

# ---- large reads: 1 MiB requests (-d logs each request) ----------------------------
start=$(($(wc -l < "$W/fs.log") + 1))
mount_fs -d
if [ "$(id -u)" = 0 ]; then
	ra=$(cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb")
	[ "$ra" = 1024 ] || fail "read-ahead of the mount is $ra KiB"
fi
dd if="$MNT/snapshots/$name1$T/big/f3" bs=1M of=/dev/null status=none
# Round trips saved: files and directories are not opened in the daemon (only
# the first of each, which tells the kernel so), and the kernel keeps the
# target of "latest" however many paths go through it.
for f in file dir/same other/hard2 big/f1; do cat "$MNT/latest$T/$f" > /dev/null; done
for d in dir other big; do ls "$MNT/latest$T/$d" > /dev/null; done
umount_fs
grep -q "opcode: READ" "$W/fs.log" || fail "-d logs no requests"
ops() { tail -n +"$start" "$W/fs.log" | grep -ac "opcode: $1 " || true; }
[ "$(ops OPEN)" -le 1 ] || fail "$(ops OPEN) OPEN requests for 5 files"
[ "$(ops OPENDIR)" -le 1 ] || fail "$(ops OPENDIR) OPENDIR requests for 3 directories"
[ "$(ops RELEASE)" = 0 ] || fail "$(ops RELEASE) RELEASE requests"
[ "$(ops READLINK)" = 1 ] || fail "$(ops READLINK) READLINK requests for 7 paths through latest"
# A 1 MiB read is answered with 16 bytes of header and the data.
if [ "$(id -u)" = 0 ]; then
	grep -q "success, outsize: 1048592" "$W/fs.log" || fail "no 1 MiB read: $(grep -A1 'opcode: READ ' "$W/fs.log" | grep -o 'outsize: [0-9]*' | sort | uniq -c)"
fi

# ---- memory is bounded by cache_size, not by the number of entries looked at -----
# 50,000 empty files: nodes the kernel holds cost a small fixed size each, trees
# stay in the tree cache (a quarter of cache_size). Sanitizers change the
# daemon's memory use beyond any bound: there the listing runs, unchecked.
# The files are made in tmpfs when there is one: 50,000 creations take 40 s on
# a busy disk here, 3 s in memory.
if MANY=$(mktemp -d /dev/shm/cairn-many-XXXXXX 2>/dev/null); then
	cleanup_hooks+=('rm -rf "$MANY"')
else
	MANY="$W/many"
fi
for d in $(seq -w 100); do
	mkdir -p "$MANY/d$d"
	(cd "$MANY/d$d" && seq -f "an-empty-file-with-a-rather-long-name-%04g" 500 | xargs touch)
done
pm=$("$CAIRN" backup --json --host manyhost "$MANY" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
mount_fs -o cache_size=4M
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$fspid/status"; }
base=$(kb VmRSS)
for pass in 1 2; do
	[ "$(find "$MNT/ids/${pm:0:8}$MANY/" -ls | wc -l)" = 50101 ] || fail "find over the mount, pass $pass"
done
hwm=$(kb VmHWM)
# The budget: what the daemon had once mounted, the caches (4 MiB), and 320
# bytes for each of the 50,000 nodes (a node takes about 140).
bound=$((base + 4096 + 50000 * 320 / 1024))
if grep -qa -e __asan_init -e __tsan_init "$CAIRNFS"; then
	echo "sanitizer build: memory bound not checked (peak $hwm KiB, bound $bound KiB)"
elif [ "$hwm" -gt "$bound" ]; then
	fail "cairnfs peak memory $hwm KiB after find over 50000 entries, bound $bound KiB (at mount $base KiB)"
fi
# Backups and prune ran while mounted (above); unmounting releases the lock.
umount_fs
rm -rf "$MANY"
[ -z "$("$CAIRN" unlock --list | grep '^mount lock')" ] || fail "unmounted, the mount lock stays"

# ---- cairn mount, and the daemon in the background (as from fstab) ---------------
"$CAIRN" mount -f "$MNT" 2>> "$W/fs.log" &
fspid=$!
wait_mounted
[ -L "$MNT/latest" ] || fail "cairn mount: no latest"
umount_fs
# --cache-dir reaches cairnfs as one value: a ',' in it adds no mount option...
"$CAIRN" mount --cache-dir "$W/cache,allow_other" -f "$MNT" 2>> "$W/fs.log" &
fspid=$!
wait_mounted
opts=$(findmnt -no OPTIONS "$MNT") || fail "cairn mount --cache-dir: no mount: $(tail -3 "$W/fs.log")"
[[ ",$opts," != *",allow_other,"* ]] || fail "a ',' in --cache-dir added a mount option: $opts"
umount_fs
# ... and arrives whole: an s3:// mount makes its cache there before it finds that
# the endpoint (a closed port here) cannot be reached.
AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y CAIRN_S3_RETRIES=1 \
	expect_fail 1 "cannot open repository" -- "$CAIRN" mount --cache-dir "$W/c,x\\y" -f s3://bucket/p "$MNT"
[ -d "$W/c,x\\y" ] && [ ! -e "$W/c" ] || fail "cache_dir arrived as: $(ls -d "$W"/c*)"
"$CAIRNFS" -o cache_size=64M "$CAIRN_REPO" "$MNT" 2>> "$W/fs.log" || fail "background start failed"
mountpoint -q "$MNT" || fail "cairnfs returned before the mount was up"
pid=$(pgrep -n -f "cairnfs -o cache_size=64M $CAIRN_REPO") || fail "no daemon process"
umount_daemon "$pid"
# A background start returns once the mount answers: on a loaded machine (the
# daemon serving late) an unmount right after it found the mount busy with the
# daemon's own first look at it.
SLOWLOOP_MS=1500 LD_PRELOAD="$SLOWLOOP_SHIM" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$CAIRNFS" "$CAIRN_REPO" "$MNT" 2>> "$W/fs.log" ||
	fail "background start, serving late, failed"
pid=$(pgrep -n -f "cairnfs $CAIRN_REPO $MNT") || fail "no daemon process"
umount_daemon "$pid"
# Once mounted, the daemon holds none of its caller's output open: a command
# substitution (or ssh) reading its stderr ends. Errors before the mount still
# reach it, and stderr stays where systemd says it is the journal.
# A pipe's reader, in the background: it ends only when every writer is gone.
{ "$CAIRNFS" -v "$CAIRN_REPO" "$MNT" 2>&1 || echo "exit status $?"; } | cat > "$W/start.out" &
reader=$!
for _ in $(seq 600); do kill -0 $reader 2>/dev/null || break; sleep 0.05; done
! kill -0 $reader 2>/dev/null || fail "the background daemon holds its caller's pipe open"
wait $reader
out=$(cat "$W/start.out")
[[ "$out" != *"exit status"* ]] || fail "background start failed: $out"
mountpoint -q "$MNT" || fail "no mount after a start with stderr on a pipe"
[[ "$out" == *"mounted '$CAIRN_REPO'"* ]] || fail "the start's messages did not reach the caller: $out"
pid=$(pgrep -n -f "cairnfs -v $CAIRN_REPO") || fail "no daemon process"
[ "$(readlink "/proc/$pid/fd/2")" = /dev/null ] || fail "the daemon kept stderr: $(readlink "/proc/$pid/fd/2")"
umount_daemon "$pid"
# Nor any other descriptor it was given (a status pipe, a make jobserver): here
# fd 3 is a pipe whose reader waits for its end.
{ "$CAIRNFS" -o cache_size=63M "$CAIRN_REPO" "$MNT" 3>&1 > /dev/null 2>> "$W/fs.log" ||
	echo "exit status $?"; } | cat > "$W/start.out" &
reader=$!
for _ in $(seq 600); do kill -0 $reader 2>/dev/null || break; sleep 0.05; done
pid=$(pgrep -n -f "cairnfs -o cache_size=63M $CAIRN_REPO") || fail "no daemon process"
! kill -0 $reader 2>/dev/null || { umount_daemon "$pid"; fail "the daemon holds an inherited descriptor open"; }
wait $reader
[ ! -s "$W/start.out" ] || fail "background start with fd 3 failed: $(cat "$W/start.out")"
umount_daemon "$pid"
out=$(CAIRN_PASSWORD=wrong CAIRN_PASSWORD_FILE= timeout 20 "$CAIRNFS" "$CAIRN_REPO" "$MNT" 2>&1) &&
	fail "a wrong password mounted"
[[ "$out" == *"wrong password"* ]] || fail "a failed start said: $out"
: > "$W/journal"
JOURNAL_STREAM=$(stat -c %d:%i "$W/journal") "$CAIRNFS" "$CAIRN_REPO" "$MNT" 2>> "$W/journal" ||
	fail "background start with a journal failed"
pid=$(pgrep -n -f "cairnfs $CAIRN_REPO") || fail "no daemon process"
[ "$(readlink "/proc/$pid/fd/2")" = "$W/journal" ] || fail "the journal stream was not kept"
umount_daemon "$pid"

# ---- as from /etc/fstab: mount.fuse3 adds dev,suid; the mount stays ro,nosuid,nodev --
if [ "$(id -u)" = 0 ] && command -v mount.fuse3 > /dev/null; then
	# mount(8) runs mount.fuse3 for type fuse.cairnfs; it runs 'cairnfs' from PATH.
	PATH="$(dirname "$CAIRNFS"):$PATH" mount.fuse3 "$CAIRN_REPO" "$MNT" -t cairnfs \
		-o "allow_other,rw,suid,dev,password_file=$W/pw,x-systemd.device-timeout=5,_netdev" \
		2>> "$W/fs.log" || fail "mount.fuse3 failed: $(tail -3 "$W/fs.log")"
	opts=$(findmnt -no OPTIONS "$MNT") || fail "mount.fuse3 returned, no mount: $(tail -3 "$W/fs.log")"
	pid=$(pgrep -n -f "cairnfs $CAIRN_REPO $MNT") || fail "no daemon process"
	for o in ro nosuid nodev allow_other; do
		[[ ",$opts," == *",$o,"* ]] || fail "fstab-style mount lacks $o: $opts"
	done
	[ "$(stat -c %a "$MNT/snapshots/$name1$T/file")" = 4755 ] || fail "fstab-style mount: no setuid bit shown"
	umount_daemon "$pid"
else
	echo "not root: fstab-style mount not tested"
fi

# Bad usage: fuse-usage.sh.
echo ok
