#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn restore, ls, dump and snapshots end to end: every entry type, sparse and
# large files, hard links, xattrs and ACLs, odd names; --include/--exclude and
# subtrees, replacing what is in the target, corrupt blobs, and bad input.
. "$(dirname "$0")/lib.sh"

ROOT=false
[ "$(id -u)" = 0 ] && ROOT=true
GiB=$((1024 * 1024 * 1024))
umask 022
# Snapshots record real paths: name everything backed up by its real path.
R=$(realpath "$W")
init_repo --chunk-size 64K/128K/512K

# ---- the tree to back up -------------------------------------------------
SRC="$R/src"
mkdir -p "$SRC"/{a/deep/er,b,c,empty,ro}
printf 'hello\n' > "$SRC/a/hello.txt"
printf 'deep\n' > "$SRC/a/deep/er/file.txt"
: > "$SRC/empty-file"
head -c 3000000 /dev/urandom > "$SRC/a/multi.bin" # many chunks
# Sparse: 3 GiB with 1 MB of data in the middle, and 5 GiB with data past 4 GiB.
truncate -s 3G "$SRC/sparse3g"
head -c 1000000 /dev/urandom | dd of="$SRC/sparse3g" bs=1M seek=1536 conv=notrunc status=none
truncate -s 5G "$SRC/b/sparse5g"
printf 'past 4 GiB' | dd of="$SRC/b/sparse5g" bs=1 seek=$((4 * GiB + 12345)) conv=notrunc status=none
printf 'tail' >> "$SRC/b/sparse5g"
ln -s hello.txt "$SRC/a/rel-link"
ln -s /etc/hostname "$SRC/a/abs-link"
ln -s does/not/exist "$SRC/a/dangling"
mkfifo -m 644 "$SRC/a/fifo"
# Hard links across directories, and a file with its own name twice in one.
printf 'linked\n' > "$SRC/a/h1"
ln "$SRC/a/h1" "$SRC/b/h2"
ln "$SRC/a/h1" "$SRC/c/h3"
ln "$SRC/a/multi.bin" "$SRC/a/multi-again.bin"
# Extended attributes (binary values) and POSIX ACLs (access and default).
printf 'xattr\n' > "$SRC/a/xattr"
setfattr -n user.bin -v 0x00ff0a0d7f00 "$SRC/a/xattr"
setfattr -n user.text -v "some text" "$SRC/a/xattr"
setfattr -n user.empty "$SRC/a/xattr"
setfacl -m u:65534:r-x,g:65534:rw- "$SRC/a/hello.txt"
setfacl -d -m u:65534:rwx "$SRC/c"
# Odd names.
printf 'odd\n' > "$SRC/c/$(printf 'bad\xff\xfename')"
printf 'nl\n' > "$SRC/c/$(printf 'new\nline')"
: > "$SRC/c/$(head -c 255 /dev/zero | tr '\0' n)"
: > "$SRC/c/-leading-dash"
: > "$SRC/c/with  spaces "
: > "$SRC/c/back\\slash"
# Modes and owners.
printf '#!/bin/sh\n' > "$SRC/a/suid" && chmod 4755 "$SRC/a/suid"
printf 'g\n' > "$SRC/a/sgid" && chmod 2750 "$SRC/a/sgid"
chmod 1777 "$SRC/b"
printf 'ro\n' > "$SRC/ro/inside"
chmod 444 "$SRC/ro/inside"
if $ROOT; then
	mknod "$SRC/c/null" c 1 3
	printf 'secret\n' > "$SRC/a/nothing" && chmod 000 "$SRC/a/nothing"
	printf 'owned\n' > "$SRC/b/owned" && chown 1234:5678 "$SRC/b/owned"
	printf 'ours\n' > "$SRC/b/suid-nobody" && chown 65534:65534 "$SRC/b/suid-nobody"
	chmod 6755 "$SRC/b/suid-nobody"
	chown -h 4321:4321 "$SRC/a/rel-link"
fi
# Times last: nanoseconds, a symlink's own, and directories.
touch -d '1999-12-31 23:59:59.123456789' "$SRC/a/hello.txt"
touch -a -d '2010-01-01 00:00:00.25' "$SRC/a/multi.bin"
touch -h -d '2001-02-03 04:05:06.987654321' "$SRC/a/rel-link"
touch -d '2005-05-05 05:05:05.555555555' "$SRC/a/deep/er" "$SRC/empty"
chmod 555 "$SRC/ro"

acls() {
	(cd "$1" && getfacl -R -P -p . 2>/dev/null) |
		awk -v RS= '{ gsub("\n", " | "); print }' | LC_ALL=C sort
}
# same SRC DST: restored tree DST equals SRC in content and metadata. The
# listing of SRC is the one taken before anything read it (atimes).
same() {
	meta "$2" > "$W/meta.dst"
	diff "$W/meta.src" "$W/meta.dst" >&2 || fail "metadata differs for $2"
	xattrs "$1" > "$W/x.src"
	xattrs "$2" > "$W/x.dst"
	[ -s "$W/x.src" ] || fail "no xattrs listed"
	diff "$W/x.src" "$W/x.dst" >&2 || fail "xattrs differ for $2"
	acls "$1" > "$W/acl.src"
	acls "$2" > "$W/acl.dst"
	diff "$W/acl.src" "$W/acl.dst" >&2 || fail "ACLs differ for $2"
	# After the listings: diff reads the files and moves their atimes.
	same_content "$1" "$2" || fail "content differs for $2"
}
# same_content A B: the files of two trees are equal. Special files are compared
# by the listing (diff reports two devices as different). diff would read all
# 8 GiB of the sparse files (a minute of this test): sparse_cmp compares their
# data and skips the holes.
same_content() {
	local f
	diff -r --no-dereference -x fifo -x null -x 'sparse[35]g' "$1" "$2" >&2 || return 1
	for f in $({ (cd "$1" && find . -name 'sparse[35]g') && (cd "$2" && find . -name 'sparse[35]g'); } |
		sort -u); do
		sparse_cmp "$1/$f" "$2/$f" || { echo "$f differs" >&2; return 1; }
	done
}

"$CAIRN" backup --tag t1 --host h1 "$SRC" > /dev/null
meta "$SRC" > "$W/meta.src"

# ---- restore everything --------------------------------------------------
DST="$W/full" # not $W/out: expect_fail writes there
"$CAIRN" restore latest --target "$DST" > "$W/restore.out"
grep -q "^restored .* files" "$W/restore.out" || fail "no summary: $(cat "$W/restore.out")"
meta "$SRC" | diff "$W/meta.src" - >&2 || fail "the restore changed the source"
same "$SRC" "$DST$SRC"
[ -p "$DST$SRC/a/fifo" ] || fail "fifo not restored"
if $ROOT; then
	[ -c "$DST$SRC/c/null" ] || fail "device not restored"
	[ "$(stat -c %u:%g "$DST$SRC/b/owned")" = 1234:5678 ] || fail "owner not restored"
fi
[ "$(stat -c %s "$DST$SRC/sparse3g")" = $((3 * GiB)) ] || fail "sparse3g size"
[ "$(stat -c %s "$DST$SRC/b/sparse5g")" = $((5 * GiB + 4)) ] || fail "sparse5g size"
for f in sparse3g b/sparse5g; do
	blocks=$(stat -c %b "$DST$SRC/$f")
	[ $((blocks * 512)) -lt $((64 * 1024 * 1024)) ] ||
		fail "$f is not sparse after restore: $blocks blocks"
done
[ -z "$(find "$DST" -name '.cairn-tmp*')" ] || fail "temporary files left"

# Again over the restored tree, after damaging it: everything is replaced,
# symlinks planted in the target are replaced, not followed.
mkdir "$W/outside"
chmod 755 "$DST$SRC/ro"
echo changed > "$DST$SRC/a/hello.txt"
rm "$DST$SRC/c/h3"
rm -r "$DST$SRC/empty" && echo file > "$DST$SRC/empty"
rm "$DST$SRC/a/multi.bin" && ln -s "$W/outside/victim" "$DST$SRC/a/multi.bin"
rm -r "$DST$SRC/a/deep" && ln -s "$W/outside" "$DST$SRC/a/deep"
"$CAIRN" restore latest --target "$DST" > /dev/null
same "$SRC" "$DST$SRC"
[ -z "$(ls -A "$W/outside")" ] || fail "restore wrote through a symlink: $(ls "$W/outside")"
[ -z "$(find "$DST" -name '.cairn-tmp*')" ] || fail "temporary files left"

# Into a directory with a default ACL: what is made there inherits it, but an
# entry the snapshot has without an ACL gets none (as with cp -a). A directory
# restored over loses the xattrs and ACL entries its snapshot entry lacks.
ACLS=true
mkdir "$W/inherit"
setfacl -d -m u:1234:rwx,o::rwx "$W/inherit" 2> /dev/null || ACLS=false
if $ACLS; then
	"$CAIRN" restore latest --target "$W/inherit" > /dev/null
	same "$SRC" "$W/inherit$SRC"
	setfacl -m u:4321:rwx "$DST$SRC/a"
else
	echo "no ACLs on the file system of $W: restore into a default ACL not tested"
fi
setfattr -n user.stale -v old "$DST$SRC/a"
"$CAIRN" restore latest --target "$DST" > /dev/null
same "$SRC" "$DST$SRC"

# ---- ls ------------------------------------------------------------------
"$CAIRN" ls latest "$SRC" > "$W/ls"
printf '%s\n' a b c empty empty-file ro sparse3g | diff - "$W/ls" >&2 || fail "ls names"
"$CAIRN" ls latest "$SRC/c" | grep -qx 'new\\x0aline' || fail "ls: newline in a name not escaped"
"$CAIRN" ls latest "$SRC/c" | LC_ALL=C grep -qx "$(printf 'bad\xff\xfename')" || fail "ls: raw bytes"
"$CAIRN" ls -l latest "$SRC/a" > "$W/ls-l"
grep -q '^-rwsr-xr-x .* suid$' "$W/ls-l" || fail "ls -l: setuid"
grep -q '^-rwxr-s--- .* sgid$' "$W/ls-l" || fail "ls -l: setgid"
grep -q '^lrwxrwxrwx .* rel-link -> hello.txt$' "$W/ls-l" || fail "ls -l: symlink"
grep -q '^prw-r--r-- .* fifo$' "$W/ls-l" || fail "ls -l: fifo"
grep -q '^-rw-r--r-- .* 3000000 .* multi.bin$' "$W/ls-l" || fail "ls -l: size"
grep -q ' 1999-12-31 23:59:59 hello.txt$' "$W/ls-l" || fail "ls -l: local mtime"
"$CAIRN" ls -l latest "$SRC" | grep -q '^drwxrwxrwt .* b$' || fail "ls -l: sticky"
if $ROOT; then
	# c has a default ACL with rwx: its mask makes the node's group bits rw.
	"$CAIRN" ls -l latest "$SRC/c" | grep -q '^crw-rw-r-- .* 1, *3 .* null$' || fail "ls -l: device"
	"$CAIRN" ls -l latest "$SRC/b" | grep -q '^-rw-r--r-- 1234 *5678 ' || fail "ls -l: numeric owner"
fi
[ "$("$CAIRN" ls -l latest "$SRC/a/hello.txt" | wc -l)" = 1 ] || fail "ls of a file"
"$CAIRN" ls latest "$SRC/a/hello.txt" | grep -qx "$SRC/a/hello.txt" || fail "ls of a file: path"
n_src=$(find "$SRC" -mindepth 1 -printf . | wc -c)
[ "$("$CAIRN" ls -R latest "$SRC" | wc -l)" = "$n_src" ] || fail "ls -R: entry count"
"$CAIRN" ls -R latest "$SRC" | grep -qx "$SRC/a/deep/er/file.txt" || fail "ls -R: full paths"
"$CAIRN" ls --json latest "$SRC/c" > "$W/ls.json"
[ "$(wc -l < "$W/ls.json")" = "$(find "$SRC/c" -mindepth 1 -maxdepth 1 -printf . | wc -c)" ] ||
	fail "ls --json: one line per entry"
grep -q '"name":"new\\nline"' "$W/ls.json" || fail "ls --json: newline"
# Bytes that are not UTF-8 as surrogate escapes (tools/cli.c), so they stay recoverable.
grep -q '"name":"bad\\udcff\\udcfename"' "$W/ls.json" || fail "ls --json: raw bytes"
"$CAIRN" ls --json latest "$SRC/a/xattr" |
	grep -q '"xattrs":\["user.bin","user.empty","user.text"\]' || fail "ls --json: xattrs"
"$CAIRN" ls --json latest "$SRC/a/hello.txt" |
	grep -Eq '"mtime":"1999-12-31T23:59:59\.123456789[+-][0-9]{2}:[0-9]{2}"' || fail "ls --json: mtime"
"$CAIRN" ls --json latest "$SRC/b/h2" | grep -q '"nlink":3' || fail "ls --json: nlink"
"$CAIRN" ls --json latest "$SRC/a/rel-link" | grep -q '"target":"hello.txt"' || fail "ls --json: target"
expect_fail 1 "is not in the snapshot" -- "$CAIRN" ls latest "$SRC/nope"
expect_fail 1 "is not a directory" -- "$CAIRN" ls latest "$SRC/a/hello.txt/x"

# ---- dump ----------------------------------------------------------------
"$CAIRN" dump latest "$SRC/a/multi.bin" | cmp - "$SRC/a/multi.bin" || fail "dump multi.bin"
"$CAIRN" dump latest "$SRC/sparse3g" | sparse_cmp - "$SRC/sparse3g" || fail "dump sparse3g"
[ -z "$("$CAIRN" dump latest "$SRC/empty-file")" ] || fail "dump of an empty file"
"$CAIRN" dump latest "$SRC/c/$(printf 'new\nline')" | grep -qx nl || fail "dump: odd name"
# A directory comes out as a tar archive (tests/integration/dump-tar.sh).
"$CAIRN" dump latest "$SRC/a/deep" | tar -t 2> /dev/null | grep -qx "${SRC#/}/a/deep/er/file.txt" ||
	fail "dump of a directory"
expect_fail 1 "not a regular file" -- "$CAIRN" dump latest "$SRC/a/rel-link"
expect_fail 1 "is not in the snapshot" -- "$CAIRN" dump latest "$SRC/missing"
expect_fail 2 "give a snapshot and a path" -- "$CAIRN" dump latest

# ---- snapshots -----------------------------------------------------------
"$CAIRN" backup --tag t2 --tag extra --host h2 "$SRC/a" > /dev/null
"$CAIRN" snapshots > "$W/snaps"
[ "$(grep -c '^[0-9a-f]\{8\}  ' "$W/snaps")" = 2 ] || fail "snapshots: rows: $(cat "$W/snaps")"
grep -q "^[0-9a-f]\{8\}  [0-9-]\{10\} [0-9:]\{8\}  h1 .* t1 .* $SRC$" "$W/snaps" ||
	fail "snapshots: first row: $(cat "$W/snaps")"
[ "$(grep -n "  h1  " "$W/snaps" | cut -d: -f1)" -lt "$(grep -n "  h2  " "$W/snaps" | cut -d: -f1)" ] ||
	fail "snapshots: not oldest first"
[ "$("$CAIRN" snapshots --host h1 | grep -c '^[0-9a-f]\{8\}  ')" = 1 ] || fail "--host"
[ "$("$CAIRN" snapshots --tag t2 --tag extra | grep -c '^[0-9a-f]\{8\}  ')" = 1 ] || fail "--tag"
[ "$("$CAIRN" snapshots --tag t1,t2 | grep -c '^[0-9a-f]\{8\}  ')" = 0 ] || fail "--tag: all"
[ "$("$CAIRN" snapshots --tag t1 --tag t2 | grep -c '^[0-9a-f]\{8\}  ')" = 2 ] || fail "--tag: any"
[ "$("$CAIRN" snapshots --path "$SRC/a/" | grep -c '^[0-9a-f]\{8\}  ')" = 1 ] || fail "--path"
"$CAIRN" snapshots --json > "$W/snaps.json"
if command -v python3 > /dev/null; then
	python3 - "$W/snaps.json" "$SRC" << 'EOF' || fail "snapshots --json: $(cat "$W/snaps.json")"
import json, re, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 2, v
a, b = v
assert re.fullmatch(r"[0-9a-f]{64}", a["id"]) and a["short_id"] == a["id"][:8]
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d", a["time"]), a["time"]
assert a["hostname"] == "h1" and a["tags"] == ["t1"] and a["paths"] == [sys.argv[2]]
assert b["hostname"] == "h2" and sorted(b["tags"]) == ["extra", "t2"] and b["paths"] == [sys.argv[2] + "/a"]
assert a["parent"] is None and re.fullmatch(r"[0-9a-f]{64}", a["tree"])
assert a["partial"] is False and a["summary"]["errors"] == 0 and a["summary"]["files_new"] > 10
assert a["program_version"].startswith("cairn ") and a["username"] != ""
EOF
fi
grep -q '"short_id":"[0-9a-f]\{8\}"' "$W/snaps.json" || fail "snapshots --json: short_id"
first=$(grep -o '"short_id":"[0-9a-f]*"' "$W/snaps.json" | head -1 | cut -d'"' -f4)
expect_fail 2 "unexpected argument" -- "$CAIRN" snapshots extra

# ---- partial restores ----------------------------------------------------
# By ID prefix, a subtree: only it and the directories leading to it, which
# get their metadata too.
"$CAIRN" restore "$first" --target "$W/sub" "$SRC/a/deep" > /dev/null
[ "$(ls -A "$W/sub$SRC/a")" = deep ] || fail "subtree: siblings restored"
[ "$(ls -A "$W/sub$SRC")" = a ] || fail "subtree: siblings of parents restored"
diff -r "$SRC/a/deep" "$W/sub$SRC/a/deep" >&2 || fail "subtree content"
[ "$(stat -c %Y "$W/sub$SRC/a")" = "$(stat -c %Y "$SRC/a")" ] || fail "subtree: parent mtime"
# A single file.
"$CAIRN" restore "$first" --target "$W/one" "$SRC/a/hello.txt" > /dev/null
[ "$(find "$W/one" -type f)" = "$W/one$SRC/a/hello.txt" ] || fail "single file restore"
# Directories already in the target that only lead to what is asked for (PATH
# or --include) keep their owner, mode and times; the ones made get the
# snapshot's metadata.
P="$W/lead"
mkdir -p "$P$SRC/a"
chmod 750 "$P$SRC"
chmod 700 "$P$SRC/a"
touch -d '2020-02-02 02:02:02' "$P$SRC"
! $ROOT || chown 65534:65534 "$P$SRC"
lead() { echo "$(stat -c '%a %u %g %Y' "$P$SRC") $(stat -c '%a %u %g' "$P$SRC/a")"; }
before=$(lead)
"$CAIRN" restore "$first" --target "$P" "$SRC/a/hello.txt" > /dev/null
cmp "$SRC/a/hello.txt" "$P$SRC/a/hello.txt" || fail "single file into existing directories"
[ "$(lead)" = "$before" ] || fail "a PATH restore changed the directories leading to it: $before -> $(lead)"
"$CAIRN" restore "$first" --target "$P" --include "$SRC/a/deep/er/file.txt" > /dev/null
cmp "$SRC/a/deep/er/file.txt" "$P$SRC/a/deep/er/file.txt" || fail "--include into existing directories"
[ "$(lead)" = "$before" ] || fail "an --include restore changed the directories leading to it: $before -> $(lead)"
[ "$(stat -c '%a %Y' "$P$SRC/a/deep/er")" = "$(stat -c '%a %Y' "$SRC/a/deep/er")" ] ||
	fail "a directory made on the way lacks the snapshot's metadata"
# --include: matching entries and the directories leading to them.
"$CAIRN" restore "$first" --target "$W/inc" --include '*.txt' > /dev/null
(cd "$W/inc$SRC" && find . -type f | LC_ALL=C sort) > "$W/inc.list"
printf '%s\n' ./a/deep/er/file.txt ./a/hello.txt | diff - "$W/inc.list" >&2 || fail "--include *.txt"
[ ! -e "$W/inc$SRC/b" ] || fail "--include: directory without matches restored"
"$CAIRN" restore "$first" --target "$W/inc2" --include "$SRC/c" > /dev/null
diff -r --no-dereference -x null "$SRC/c" "$W/inc2$SRC/c" >&2 || fail "--include of a directory"
[ "$(ls -A "$W/inc2$SRC")" = c ] || fail "--include of a directory: others restored"
# --exclude, also from a file.
printf '# big ones\n\nsparse*\r\n' > "$W/excl"
"$CAIRN" restore "$first" --target "$W/exc" --exclude-file "$W/excl" --exclude "$SRC/c" > /dev/null
[ -z "$(find "$W/exc" -name 'sparse*')" ] || fail "--exclude-file"
[ ! -e "$W/exc$SRC/c" ] || fail "--exclude of a directory"
[ -f "$W/exc$SRC/a/multi.bin" ] || fail "--exclude left out too much"

# ---- bad input -----------------------------------------------------------
expect_fail 1 "no snapshot matches" -- "$CAIRN" restore ffffffff --target "$W/x"
expect_fail 1 "no snapshot matches" -- "$CAIRN" ls abcdef12
expect_fail 1 "not a snapshot ID" -- "$CAIRN" dump zz /x
expect_fail 1 "is not in the snapshot" -- "$CAIRN" restore latest --target "$W/x" /no/such
[ ! -e "$W/x" ] || fail "a failed restore created the target"
expect_fail 2 "--target" -- "$CAIRN" restore latest
expect_fail 2 "which snapshot" -- "$CAIRN" restore --target "$W/x"
expect_fail 2 "unexpected argument" -- "$CAIRN" restore latest --target "$W/x" / extra
expect_fail 2 "unterminated" -- "$CAIRN" restore latest --target "$W/x" --include '[ab'
expect_fail 2 "unknown option" -- "$CAIRN" ls --bogus latest
expect_fail 2 "which snapshot" -- "$CAIRN" ls
"$CAIRN" restore --help | grep -q -- "--include"
"$CAIRN" ls --help | grep -q 'newline'

# ---- sockets, corrupt blobs ----------------------------------------------
# A second repository, so the blobs of two files are easy to find.
export CAIRN_REPO="$W/repo2"
init_repo
T="$R/two"
mkdir -p "$T"
head -c 100000 /dev/urandom > "$T/one.bin"
head -c 100000 /dev/urandom > "$T/two.bin"
# A unix socket comes back as a socket with its mode, owner and time, as cp -a
# makes it.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/sock"
chmod 0751 "$T/sock"
touch -h -d '2003-03-03 03:03:03.333333333' "$T/sock"
"$CAIRN" backup "$T" > /dev/null
"$CAIRN" restore latest --target "$W/r2" > /dev/null 2> "$W/r2.err" ||
	fail "restore with a socket: $(cat "$W/r2.err")"
[ -S "$W/r2$T/sock" ] || fail "socket not restored: $(ls -l "$W/r2$T")"
sock_meta() { stat -c '%F %a %u %g %y' "$1"; }
[ "$(sock_meta "$W/r2$T/sock")" = "$(sock_meta "$T/sock")" ] ||
	fail "socket: $(sock_meta "$W/r2$T/sock") instead of $(sock_meta "$T/sock")"
cmp "$T/one.bin" "$W/r2$T/one.bin" || fail "socket: other files not restored"
# Damage the first data blob of the pack: that file is left out (no half file),
# the other one is restored, the exit status is 3.
# A pack of data blobs (trees are in packs of their own).
off=
for pack in $(find "$CAIRN_REPO/packs" -type f); do
	read -r off len < <("$CAIRN" cat pack "$(basename "$pack")" |
		awk '$2 == "data" { print $4, $6; exit }') || true
	[ -n "$off" ] && break
done
[ -n "$off" ] || fail "no pack holds a data blob"
printf '\xff\xff\xff\xff' | dd of="$pack" bs=1 seek=$((off + len / 2)) conv=notrunc status=none
rc=0
"$CAIRN" restore latest --target "$W/r3" --exclude sock > /dev/null 2> "$W/r3.err" || rc=$?
[ "$rc" = 3 ] || fail "corrupt blob: expected exit 3, got $rc: $(cat "$W/r3.err")"
grep -q "cannot read '$T/.*\.bin'" "$W/r3.err" || fail "corrupt blob: no warning: $(cat "$W/r3.err")"
good=0
for f in one.bin two.bin; do
	if [ -e "$W/r3$T/$f" ]; then
		cmp "$T/$f" "$W/r3$T/$f" || fail "corrupt blob: $f restored wrong"
		good=$((good + 1))
	fi
done
[ "$good" = 1 ] || fail "corrupt blob: expected one of two files, got $good"
[ -z "$(find "$W/r3" -name '.cairn-tmp*')" ] || fail "corrupt blob: temporary file left"
"$CAIRN" ls latest "$T" | grep -qx one.bin || fail "ls after corruption"
export CAIRN_REPO="$W/repo"

# ---- as an unprivileged user ---------------------------------------------
# Owners stay ours, device nodes are skipped with a warning (exit 3), and as
# with cp -a, setuid and setgid go from files that did not get their owner and
# group back (and only from those). The first snapshot holds the whole tree;
# the latest only $SRC/a.
if $ROOT && command -v setpriv > /dev/null; then
	chmod a+rwx "$W"
	chmod a+r "$W/pw"
	chmod -R a+rwX "$CAIRN_REPO"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ \
		"$CAIRN" restore "$first" --target "$W/nobody" > /dev/null 2> "$W/nobody.err" || rc=$?
	[ "$rc" = 3 ] || fail "unprivileged: expected exit 3, got $rc: $(cat "$W/nobody.err")"
	grep -q "skipping device '$SRC/c/null'" "$W/nobody.err" || fail "unprivileged: device warning"
	[ "$(grep -c . "$W/nobody.err")" = 2 ] || fail "unprivileged: warnings: $(cat "$W/nobody.err")"
	[ "$(stat -c %u "$W/nobody$SRC/b/owned")" = 65534 ] || fail "unprivileged: owner"
	same_content "$SRC" "$W/nobody$SRC" || fail "unprivileged: content"
	[ "$(stat -c %a "$W/nobody$SRC/a/suid")" = 755 ] || fail "unprivileged: setuid kept"
	[ "$(stat -c %a "$W/nobody$SRC/a/sgid")" = 750 ] || fail "unprivileged: setgid kept"
	[ "$(stat -c %a:%u:%g "$W/nobody$SRC/b/suid-nobody")" = 6755:65534:65534 ] ||
		fail "unprivileged: the bits of a file of its own: $(stat -c %a:%u:%g "$W/nobody$SRC/b/suid-nobody")"
	[ "$(stat -c %a "$W/nobody$SRC/b")" = 1777 ] || fail "unprivileged: sticky bit"
fi
echo ok
