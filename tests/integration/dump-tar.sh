#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn dump of a directory: a tar archive that GNU tar extracts into the same
# tree (content, modes, owners, times, symlinks, hard links, fifos, sparse
# files, xattrs, long and odd names), sockets left out with a warning, damaged
# blobs as zeros with exit 3, and never to a terminal.
. "$(dirname "$0")/lib.sh"
: "${CRAFT:?CRAFT must point to cairn-test-craft}"

ROOT=false
[ "$(id -u)" = 0 ] && ROOT=true
umask 022
R=$(realpath "$W")
init_repo --chunk-size 64K/128K/512K

SRC="$R/src"
mkdir -p "$SRC"/{a/deep/er,b,empty}
printf 'hello\n' > "$SRC/a/hello.txt"
head -c 1500000 /dev/urandom > "$SRC/a/multi.bin"
: > "$SRC/empty-file"
ln -s hello.txt "$SRC/a/rel-link"
ln -s /etc/hostname "$SRC/a/abs-link"
ln -s does/not/exist "$SRC/a/dangling"
mkfifo -m 640 "$SRC/a/fifo"
# Hard links: two inside a/, one of them also outside it (in b/).
printf 'linked\n' > "$SRC/a/h1"
ln "$SRC/a/h1" "$SRC/a/deep/h2"
ln "$SRC/a/h1" "$SRC/b/h3"
# Sparse: a hole, data, a hole; and a file that is all hole.
truncate -s 20M "$SRC/a/sparse"
printf 'middle' | dd of="$SRC/a/sparse" bs=1M seek=7 conv=notrunc status=none
truncate -s 30M "$SRC/a/all-hole"
# Names past ustar's 100 bytes, a path past 255, UTF-8, non-UTF-8, a newline.
long=$(printf 'n%.0s' {1..200})
mkdir -p "$SRC/a/$long/$long"
printf 'long\n' > "$SRC/a/$long/$long/$long.txt"
ln -s "$long/$long/$long.txt" "$SRC/a/long-link"
printf 'utf8\n' > "$SRC/a/caf$(printf '\xc3\xa9')"
printf 'latin1\n' > "$SRC/a/caf$(printf '\xe9')"
printf 'nl\n' > "$SRC/a/new$(printf '\nline')"
# Modes, times with nanoseconds, xattrs with binary values.
chmod 4750 "$SRC/a/hello.txt"
chmod 1777 "$SRC/a/deep"
chmod 0600 "$SRC/a/multi.bin"
setfattr -n user.bin -v 0x00ff0a0d7f00 "$SRC/a/hello.txt"
setfattr -n user.dir -v dirvalue "$SRC/a/deep"
if $ROOT; then
	# Owners beyond ustar's 7 octal digits need pax records.
	chown 3000000:3000001 "$SRC/a/multi.bin"
	chown -h 12345:54321 "$SRC/a/rel-link"
fi
find "$SRC" -exec touch -h -d '2001-02-03 04:05:06.123456789' {} +
touch -d '1999-12-31 23:59:59.987654321' "$SRC/a/hello.txt"
"$CAIRN" backup "$SRC" > /dev/null

# Every entry below a directory, one line each (no sizes of directories: they
# depend on the file system's history).
meta() {
	(cd "$1" && find . -mindepth 1 ! -name fifo \( -type d -printf '%p d %m %U %G %TY-%Tm-%Td %TT\n' \
		-o -printf '%p %y %m %U %G %s %TY-%Tm-%Td %TT %l\n' \) | LC_ALL=C sort)
}
xattrs() { (cd "$1" && getfattr -R -h -d -e hex . 2> /dev/null | grep -v '^$' || true); }
extract() {
	rm -rf "$2"
	mkdir -p "$2"
	tar -C "$2" --xattrs --xattrs-include='*' --numeric-owner -xpf "$1" ||
		fail "GNU tar cannot extract $1"
}

# ---- the whole tree ----------------------------------------------------------
"$CAIRN" dump latest "$SRC" > "$W/all.tar" 2> "$W/all.err" || fail "dump: $(cat "$W/all.err")"
[ ! -s "$W/all.err" ] || fail "dump warned: $(cat "$W/all.err")"
# Names keep the snapshot's layout without the leading '/'.
# (A file, not a pipe: grep -q leaves at the first match, and tar, killed by
# SIGPIPE while it still lists names, failed the pipeline now and then.)
tar -tf "$W/all.tar" > "$W/all.names" 2> /dev/null || fail "tar -t: $(tar -tf "$W/all.tar" 2>&1 | tail -3)"
grep -qx "${SRC#/}/a/hello.txt" "$W/all.names" || fail "archive names: $(head "$W/all.names")"
extract "$W/all.tar" "$W/x"
X="$W/x$SRC"
diff -r --no-dereference -x fifo "$SRC" "$X" || fail "content differs"
[ "$(meta "$SRC")" = "$(meta "$X")" ] || {
	diff <(meta "$SRC") <(meta "$X") >&2
	fail "metadata differs"
}
[ "$(xattrs "$SRC")" = "$(xattrs "$X")" ] || fail "xattrs differ: $(xattrs "$X")"
[ -p "$X/a/fifo" ] && [ "$(stat -c %a "$X/a/fifo")" = 640 ] || fail "fifo"
# The three names of one inode come back as one inode.
[ "$(stat -c %i "$X/a/h1")" = "$(stat -c %i "$X/a/deep/h2")" ] &&
	[ "$(stat -c %i "$X/a/h1")" = "$(stat -c %i "$X/b/h3")" ] || fail "hard links"
# Holes stay holes, in the archive and when extracted.
[ "$(stat -c %s "$W/all.tar")" -lt $((8 * 1024 * 1024)) ] ||
	fail "archive of $(stat -c %s "$W/all.tar") bytes: holes written out"
[ "$(du -k "$X/a/all-hole" | cut -f1)" -lt 64 ] || fail "all-hole file not sparse"
cmp "$SRC/a/sparse" "$X/a/sparse" || fail "sparse content"

# ---- a subdirectory, and the snapshot's root ---------------------------------
"$CAIRN" dump latest "$SRC/a/" > "$W/a.tar"
extract "$W/a.tar" "$W/y"
[ "$(ls "$W/y$SRC")" = a ] || fail "dump of a/ holds more: $(ls "$W/y$SRC")"
diff -r --no-dereference -x fifo "$SRC/a" "$W/y$SRC/a" || fail "dump of a/ differs"
# A link whose first name was outside the archive still has its content.
[ "$(cat "$W/y$SRC/a/deep/h2")" = linked ] || fail "link outside the archive"
"$CAIRN" dump latest / > "$W/root.tar"
extract "$W/root.tar" "$W/z"
diff -r --no-dereference -x fifo "$SRC" "$W/z$SRC" || fail "dump of / differs"
# A file is still its content, and -a tar is the only format.
[ "$("$CAIRN" dump latest "$SRC/a/hello.txt")" = hello ] || fail "dump of a file"
"$CAIRN" dump -a tar latest "$SRC/empty" | tar -t 2> /dev/null | grep -qx "${SRC#/}/empty/" ||
	fail "dump -a tar of an empty directory"
expect_fail 2 "archive format 'zip' is not supported" -- "$CAIRN" dump -a zip latest "$SRC"
expect_fail 1 "not a regular file or a directory" -- "$CAIRN" dump latest "$SRC/a/rel-link"

# ---- never to a terminal ---------------------------------------------------
python3 - "$CAIRN" "$SRC" > "$W/tty.out" << 'EOF' || fail "dump to a terminal: $(cat "$W/tty.out")"
import os, pty, subprocess, sys
master, slave = os.openpty()
p = subprocess.run([sys.argv[1], "dump", "latest", sys.argv[2]], stdout=slave,
                   stderr=subprocess.PIPE)
os.close(slave)
assert p.returncode == 1, p.returncode
assert b"not written to a terminal" in p.stderr, p.stderr
EOF

# ---- times before 1970 -----------------------------------------------------
# No fraction written there is read the same by every reader (GNU tar reads
# "-2.5" as a decimal number, libarchive as -2 + 0.5): whole seconds, their
# floor, as stat gives them.
N="$R/neg"
mkdir -p "$N"
: > "$N/frac" && : > "$N/small" && : > "$N/whole"
python3 - "$N" << 'EOF'
import os, sys
for name, ns in (("frac", -1500000001), ("small", -250000000), ("whole", -86400000000000)):
    os.utime(os.path.join(sys.argv[1], name), ns=(0, ns))
EOF
"$CAIRN" backup "$N" > /dev/null
"$CAIRN" dump latest "$N" > "$W/neg.tar"
extract "$W/neg.tar" "$W/neg"
got=$(python3 -c 'import os, sys; print(*(os.lstat(p).st_mtime_ns for p in sys.argv[1:]))' \
	"$W/neg$N/frac" "$W/neg$N/small" "$W/neg$N/whole")
[ "$got" = "-2000000000 -1000000000 -86400000000000" ] || fail "times before 1970 in the archive: $got"

# ---- sockets and damaged blobs ---------------------------------------------
export CAIRN_REPO="$W/repo2"
init_repo
T="$R/two"
mkdir -p "$T"
head -c 100000 /dev/urandom > "$T/one.bin"
head -c 100000 /dev/urandom > "$T/two.bin"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/sock"
"$CAIRN" backup "$T" > /dev/null
rc=0
"$CAIRN" dump latest "$T" > "$W/s.tar" 2> "$W/s.err" || rc=$?
[ "$rc" = 3 ] || fail "socket: exit $rc: $(cat "$W/s.err")"
grep -q "'$T/sock': socket not archived" "$W/s.err" || fail "socket warning: $(cat "$W/s.err")"
extract "$W/s.tar" "$W/s"
cmp "$T/one.bin" "$W/s$T/one.bin" && cmp "$T/two.bin" "$W/s$T/two.bin" || fail "socket: files"
# The first data blob damaged: its bytes are zeros, the rest of the archive is
# sound, the exit status 3.
off=
for pack in $(find "$CAIRN_REPO/packs" -type f); do
	read -r off len < <("$CAIRN" cat pack "$(basename "$pack")" |
		awk '$2 == "data" { print $4, $6; exit }') || true
	[ -n "$off" ] && break
done
[ -n "$off" ] || fail "no pack holds a data blob"
printf '\xff\xff\xff\xff' | dd of="$pack" bs=1 seek=$((off + len / 2)) conv=notrunc status=none
rc=0
"$CAIRN" dump latest "$T" > "$W/d.tar" 2> "$W/d.err" || rc=$?
[ "$rc" = 3 ] || fail "damaged blob: exit $rc: $(cat "$W/d.err")"
grep -q "cannot read at offset 0 (zeros written instead)" "$W/d.err" ||
	fail "damaged blob: no warning: $(cat "$W/d.err")"
extract "$W/d.tar" "$W/d"
good=0 zero=0
for f in one.bin two.bin; do
	[ "$(stat -c %s "$W/d$T/$f")" = 100000 ] || fail "damaged blob: $f has the wrong size"
	if cmp -s "$T/$f" "$W/d$T/$f"; then
		good=$((good + 1))
	elif cmp -s "$W/d$T/$f" <(head -c 100000 /dev/zero); then
		zero=$((zero + 1))
	fi
done
[ "$good" = 1 ] && [ "$zero" = 1 ] || fail "damaged blob: $good intact, $zero zeroed"

# ---- huge holes --------------------------------------------------------------
# A real sparse file of 64 GiB (a hole, 6 bytes, a hole) comes out whole and
# sparse. And a file that is one hole of 2^62 bytes (FORMAT.md §10 allows it,
# and XFS makes such files): its holes are not handed to libarchive 64 KiB at a
# time (2^46 calls, days), so the dump ends (timeout is only a guard: it takes
# milliseconds).
H="$R/huge"
mkdir -p "$H"
truncate -s 64G "$H/big"
printf 'middle' | dd of="$H/big" bs=1 seek=$((32 << 30)) conv=notrunc status=none
"$CAIRN" backup "$H" > /dev/null
rc=0
timeout 120 "$CAIRN" dump latest "$H" > "$W/h.tar" 2> "$W/h.err" || rc=$?
[ "$rc" = 0 ] || fail "dump of a 64 GiB sparse file: exit $rc: $(cat "$W/h.err")"
extract "$W/h.tar" "$W/h"
[ "$(stat -c %s "$W/h$H/big")" = $((64 << 30)) ] || fail "64 GiB sparse file: wrong size"
[ "$(dd if="$W/h$H/big" bs=1 skip=$((32 << 30)) count=6 status=none)" = middle ] ||
	fail "64 GiB sparse file: its data is not at 32 GiB"
[ "$(du -k "$W/h$H/big" | cut -f1)" -lt 1024 ] || fail "64 GiB sparse file: not sparse"
"$CRAFT" hole $((1 << 62)) || fail "could not craft a file of one 2^62-byte hole"
rc=0
timeout 60 "$CAIRN" dump latest / > "$W/e.tar" 2> "$W/e.err" || rc=$?
[ "$rc" = 0 ] || fail "dump of a 2^62-byte hole: exit $rc: $(cat "$W/e.err")"
tar -tvf "$W/e.tar" > "$W/e.list" 2> /dev/null || fail "the archive of a 2^62-byte hole does not list"
grep -q " $((1 << 62)) .* hole$" "$W/e.list" || fail "2^62-byte hole: $(cat "$W/e.list")"
echo "ok"
