#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The torture tree: odd names, long names and paths, deep nesting, a huge
# directory, sparse multi-GiB files, hard links, xattrs and ACLs, special files,
# unreadable files and files that change during the backup. Everything readable
# must come back identical, through restore and (when available) the mount.
. "$(dirname "$0")/lib.sh"

init_repo
T="$W/t"
mkdir -p "$T"
python3 - "$T" <<'PY'
import os, sys
t = sys.argv[1].encode()
def p(*parts): return os.path.join(t, *parts)
os.mkdir(p(b"names"))
for name in [b"caf\xc3\xa9", b"latin1-\xe9\xff", b"new\nline", b" leading space", b"-dash",
             b"tab\there", b"quote\"s'", b"back\\slash", b"x" * 255, b"\x01\x02ctl"]:
    with open(p(b"names", name), "wb") as f:
        f.write(name * 3)
# A path of about 4096 bytes: 16 directories of 250-byte names.
d = p(b"long")
os.mkdir(d)
fd = os.open(d, os.O_RDONLY)
for i in range(16):
    n = (b"%02d" % i) + b"L" * 248
    os.mkdir(n, dir_fd=fd)
    nfd = os.open(n, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
with os.fdopen(os.open(b"end", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
    f.write(b"deep and long\n")
# 200 levels of nesting.
d = p(b"deep")
os.mkdir(d)
fd = os.open(d, os.O_RDONLY)
for i in range(200):
    os.mkdir(b"d", dir_fd=fd)
    nfd = os.open(b"d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
with os.fdopen(os.open(b"bottom", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "wb") as f:
    f.write(b"bottom\n")
os.close(fd)
# 100,000 files in one directory.
os.mkdir(p(b"many"))
for i in range(100000):
    with open(p(b"many", b"f%06d" % i), "wb") as f:
        if i % 1000 == 0:
            f.write(b"%d" % i)
PY
# Sparse files: 3 GiB and 5 GiB (past 4 GiB) with a little data inside.
truncate -s 3G "$T/sparse3g"
printf 'in the middle' | dd of="$T/sparse3g" bs=1 seek=1500000000 conv=notrunc status=none
truncate -s 5G "$T/sparse5g"
printf 'past four gib' | dd of="$T/sparse5g" bs=1 seek=4500000000 conv=notrunc status=none
# Hard links across directories, xattrs, an ACL, special files, a dangling symlink.
mkdir -p "$T/h1" "$T/h2"
echo linked > "$T/h1/a"; ln "$T/h1/a" "$T/h2/b"; ln "$T/h1/a" "$T/c"
echo attrs > "$T/attrs"
setfattr -n user.text -v hello "$T/attrs"
setfattr -n user.bin -v 0x00ff10 "$T/attrs"
setfacl -m u:65534:r-- "$T/attrs"
mkdir "$T/acldir"; setfacl -d -m u:65534:rwx "$T/acldir"
mkfifo "$T/fifo"
mknod "$T/null" c 1 3
ln -s /does/not/exist "$T/dangling"
chmod 4755 "$T/c"; chmod 1777 "$T/acldir"
touch -d '1999-12-31 23:59:59.123456789' "$T/names/-dash"

# A file that changes while it is read, and one that vanishes: warnings only.
head -c 50000000 /dev/urandom > "$T/changing"
( for _ in $(seq 50); do echo more >> "$T/changing"; sleep 0.02; done ) &
grower=$!
rc=0
"$CAIRN" backup --json "$T" > "$W/b.json" 2> "$W/b.err" || rc=$?
wait $grower
[ "$rc" = 0 ] || fail "torture backup exited $rc: $(tail -5 "$W/b.err")"
grep -q '"partial":false' "$W/b.json" || fail "torture snapshot is partial"
# "changing" is fuzzy by nature: every comparison below leaves it out.

"$CAIRN" restore latest --target "$W/r" > "$W/r.out" 2>&1 || fail "restore failed: $(tail -5 "$W/r.out")"
R="$W/r$T"
# Special files are compared by the metadata listing below (diff reports them).
diff -r --no-dereference -x changing -x fifo -x null -x 'sparse*' "$T" "$R" || fail "restored tree differs"

# Metadata: type, mode, owner, size, mtime (ns), link target, link count.
# Directory sizes depend on the filesystem's history, so they are left out.
meta() {
	(cd "$1" && find . -path ./changing -prune -o -printf '%y %m %U %G %s %T@ %l %n %p\n' |
		awk '$1 == "d" { $5 = "-" } { print }' | sort)
}
diff <(meta "$T") <(meta "$R") > "$W/meta.diff" || fail "metadata differs: $(head -20 "$W/meta.diff")"
[ "$(stat -c %i "$R/h1/a")" = "$(stat -c %i "$R/h2/b")" ] || fail "hard link not restored"
[ "$(stat -c %i "$R/h1/a")" = "$(stat -c %i "$R/c")" ] || fail "hard link not restored"
getfattr -d -m - --absolute-names "$T/attrs" | sed "s|$T|X|" > "$W/x1"
getfattr -d -m - --absolute-names "$R/attrs" | sed "s|$R|X|" > "$W/x2"
diff "$W/x1" "$W/x2" || fail "xattrs differ"
diff <(getfacl -p "$T/acldir" 2>/dev/null | sed 1d) <(getfacl -p "$R/acldir" 2>/dev/null | sed 1d) ||
	fail "default ACL differs"
# Sparse files stay sparse: far fewer blocks than bytes.
for f in sparse3g sparse5g; do
	blocks=$(stat -c %b "$R/$f")
	[ "$blocks" -lt 100000 ] || fail "$f restored with $blocks blocks: not sparse"
	sparse_cmp "$T/$f" "$R/$f" || fail "$f content differs"
done

# Unreadable files, as an unprivileged user: warnings, exit 3, the rest restored.
if command -v setpriv >/dev/null; then
	chmod -R a+rwX "$W"
	echo secret > "$T/h1/secret"; chmod 000 "$T/h1/secret"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ \
		"$CAIRN" backup --exclude many --exclude 'sparse*' "$T" > /dev/null 2> "$W/u.err" || rc=$?
	[ "$rc" = 3 ] || fail "unreadable file: expected exit 3, got $rc: $(tail -3 "$W/u.err")"
	rm -f "$T/h1/secret" # not in the first snapshot, which the mount is compared with
fi

# Through the mount too, when cairnfs is built.
if [ -n "${CAIRNFS:-}" ] && [ -x "${CAIRNFS:-}" ] && [ -c /dev/fuse ]; then
	mkdir -p "$W/mnt"
	"$CAIRNFS" -f "$CAIRN_REPO" "$W/mnt" > "$W/fs.log" 2>&1 &
	fspid=$!
	cleanup_hooks+=("fusermount3 -u '$W/mnt' 2>/dev/null; kill $fspid 2>/dev/null")
	for _ in $(seq 100); do mountpoint -q "$W/mnt" && break; sleep 0.1; done
	mountpoint -q "$W/mnt" || fail "mount did not come up: $(cat "$W/fs.log")"
	snap=$(ls "$W/mnt/snapshots" | head -1)
	M="$W/mnt/snapshots/$snap$T"
	# From inside the snapshot: the mount prefix would push the ~4 KiB path past PATH_MAX.
	(cd "$M" && diff -r --no-dereference -x changing -x many -x fifo -x null -x 'sparse*' "$T" .) ||
		fail "mounted tree differs"
	sparse_cmp "$T/sparse5g" "$M/sparse5g" || fail "sparse file through the mount differs"
	cp -a --sparse=always "$M/h1" "$W/"
fi
echo ok
