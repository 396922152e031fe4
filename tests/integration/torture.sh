#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The torture tree: odd names, long names and paths, deep nesting, a huge
# directory, sparse multi-GiB files, hard links, xattrs and ACLs, special files,
# unreadable files and files that change or vanish during the backup. Everything readable
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

# A file that changes while it is read (the torn.c shim rewrites it once, right
# after the first read of its start): it is read again, no partial snapshot.
head -c 50000000 /dev/urandom > "$T/changing"
# The shim needs no ASan runtime ahead of it.
torn=(env LD_PRELOAD="$TORN_SHIM" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
rc=0
"${torn[@]}" TORN_PATH="$T/changing" TORN_CHANGES=1 \
	"$CAIRN" backup --json "$T" > "$W/b.json" 2> "$W/b.err" || rc=$?
[ "$rc" = 0 ] || fail "torture backup exited $rc: $(tail -5 "$W/b.err")"
grep -q '"partial":false' "$W/b.json" || fail "torture snapshot is partial"
main=$(grep -o '"snapshot_id":"[0-9a-f]*"' "$W/b.json" | cut -d'"' -f4)
[ -n "$main" ] || fail "no snapshot ID in the summary: $(tail -1 "$W/b.json")"
# "changing" changed after its first read: every comparison below leaves it out.

"$CAIRN" restore "$main" --target "$W/r" > "$W/r.out" 2>&1 || fail "restore failed: $(tail -5 "$W/r.out")"
R="$W/r$T"
# Special files are compared by the metadata listing below (diff reports them).
diff -r --no-dereference -x changing -x fifo -x null -x 'sparse*' "$T" "$R" || fail "restored tree differs"
cmp "$T/changing" "$R/changing" || fail "the file changed while it was read is not stored as read again"

# Metadata: type, mode, owner, size, mtime (ns), link target, link count.
# Directory sizes depend on the filesystem's history, so they are left out.
# meta DIR [FIND-ARGS]: FIND-ARGS prune more, e.g. -path ./many -prune -o
meta() {
	local d=$1
	shift
	(cd "$d" && find . -path ./changing -prune -o "$@" -printf '%y %m %U %G %s %T@ %l %n %p\n' |
		awk '$1 == "d" { $5 = "-" } { print }' | sort)
}
# The source's listing now: the unprivileged run below opens up its modes.
meta "$T" > "$W/meta.T"
diff "$W/meta.T" <(meta "$R") > "$W/meta.diff" ||
	fail "metadata differs: $(head -20 "$W/meta.diff" | cut -c1-300)"
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

# A file that vanishes during the backup: listed, then deleted before it is
# looked at. fanotify makes that certain: the walker lists v, then visits its
# entries in name order, and its open of the directory v/a-sub waits until the
# watcher has deleted v/m-victim. (Without --json and a terminal there is no
# progress scan, which would open a-sub too.)
V=$(realpath "$W")/v
mkdir -p "$V/a-sub"
echo inner > "$V/a-sub/inner"
echo victim > "$V/m-victim"
echo after > "$V/z-after"
cat > "$W/fan.py" << 'PY'
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
FAN_CLASS_CONTENT, FAN_CLOEXEC, FAN_REPORT_TID, FAN_MARK_ADD, FAN_ALLOW = 4, 1, 0x100, 1, 1
FAN_OPEN_PERM, FAN_ONDIR = 0x10000, 0x40000000
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                               ctypes.c_char_p]
fd = libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_REPORT_TID,
                        os.O_RDONLY | os.O_CLOEXEC)
if fd < 0 or libc.fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_ONDIR, -100,
                                sys.argv[1].encode()) < 0:
    sys.exit("fanotify: " + os.strerror(ctypes.get_errno()))
open(sys.argv[3], "w").close()
# The walk's open, not the head start's (threads named cairn-prewalk, which
# list the tree while the repository opens).
while True:
    buf = os.read(fd, 4096)
    efd, tid = struct.unpack_from("=IBBHQii", buf, 0)[5:7]
    try:
        comm = open("/proc/%d/comm" % tid).read().strip()
    except OSError:
        comm = ""
    if comm != "cairn-prewalk":
        break
    os.write(fd, struct.pack("=iI", efd, FAN_ALLOW))
    os.close(efd)
os.unlink(sys.argv[2])
os.write(fd, struct.pack("=iI", efd, FAN_ALLOW))
PY
python3 "$W/fan.py" "$V/a-sub" "$V/m-victim" "$W/fan.ready" 2> "$W/fan.err" &
fan=$!
cleanup_hooks+=("kill $fan 2>/dev/null")
for _ in $(seq 100); do [ -e "$W/fan.ready" ] || ! kill -0 $fan 2>/dev/null && break; sleep 0.1; done
[ -e "$W/fan.ready" ] || fail "fanotify watcher did not start: $(cat "$W/fan.err")"
rc=0
"$CAIRN" backup "$V" > "$W/v.out" 2> "$W/v.err" || rc=$?
wait $fan || fail "fanotify watcher: $(cat "$W/fan.err")"
[ "$rc" = 0 ] || fail "vanished file: backup exited $rc: $(cat "$W/v.err")"
grep -qF "'$V/m-victim' vanished during the backup" "$W/v.err" ||
	fail "no warning for the vanished file: $(cat "$W/v.err")"
[ "$(grep -c warning: "$W/v.err")" = 1 ] || fail "vanished file: warnings: $(cat "$W/v.err")"
"$CAIRN" snapshots --json --path "$V" | grep -q '"partial":false' ||
	fail "a vanished file made the snapshot partial"
"$CAIRN" restore latest --target "$W/rv" > /dev/null
[ "$(cd "$W/rv$V" && echo *)" = "a-sub z-after" ] || fail "vanished file: restored $(ls "$W/rv$V")"
diff -r "$V" "$W/rv$V" || fail "vanished file: the others differ"

# Unreadable files, as an unprivileged user: a warning, exit 3, a partial
# snapshot, and the rest of the tree backed up; the file kept, flagged.
if command -v setpriv >/dev/null; then
	chmod -R a+rwX "$W"
	echo secret > "$T/h1/secret"; chmod 000 "$T/h1/secret"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ \
		"$CAIRN" backup --json --exclude many --exclude 'sparse*' "$T" > "$W/u.json" 2> "$W/u.err" ||
		rc=$?
	[ "$rc" = 3 ] || fail "unreadable file: expected exit 3, got $rc: $(tail -3 "$W/u.err")"
	grep -qF "'$T/h1/secret'" "$W/u.err" || fail "unreadable file not named: $(cat "$W/u.err")"
	grep -q '"partial":true' "$W/u.json" || fail "unreadable file: snapshot not partial"
	u=$(grep -o '"snapshot_id":"[0-9a-f]*"' "$W/u.json" | cut -d'"' -f4)
	"$CAIRN" snapshots --json | python3 -c '
import json, sys
s = {x["id"]: x for x in json.load(sys.stdin)}
assert s[sys.argv[1]]["partial"] is True and s[sys.argv[1]]["summary"]["errors"] == 1, s[sys.argv[1]]
assert s[sys.argv[2]]["partial"] is False' "$u" "$main" || fail "partial flag in the snapshot list"
	# FORMAT.md §10: the unreadable file is kept, flagged: its restore warns.
	rc=0
	"$CAIRN" restore "$u" --target "$W/ru" > /dev/null 2> "$W/ru.err" || rc=$?
	[ "$rc" = 3 ] || fail "restore of the partial snapshot: exit $rc: $(cat "$W/ru.err")"
	grep -qF "incomplete copy of '$T/h1/secret'" "$W/ru.err" || fail "no warning: $(cat "$W/ru.err")"
	[ "$(stat -c %a:%s "$W/ru$T/h1/secret")" = 0:7 ] || fail "the unreadable file is not kept"
	diff -r --no-dereference -x changing -x fifo -x null -x secret "$T" "$W/ru$T" |
		grep -v -e '^Only in [^:]*: many$' -e '^Only in [^:]*: sparse[35]g$' > "$W/u.diff" || true
	[ ! -s "$W/u.diff" ] || fail "the partial snapshot lacks readable files: $(head "$W/u.diff")"
	[ -e "$W/ru$T/null" ] && [ -p "$W/ru$T/fifo" ] || fail "partial snapshot: special files"
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
	[ -L "$W/mnt/ids/${main:0:8}" ] || fail "mount: no ids/${main:0:8}: $(ls "$W/mnt/ids")"
	snap=$(basename "$(readlink "$W/mnt/ids/${main:0:8}")")
	M="$W/mnt/snapshots/$snap$T"
	# From inside the snapshot: the mount prefix would push the ~4 KiB path past PATH_MAX.
	(cd "$M" && diff -r --no-dereference -x changing -x many -x fifo -x null -x 'sparse*' "$T" .) ||
		fail "mounted tree differs"
	# All but the 100,000 files of many (their content is compared by restore).
	diff <(grep -av ' \./many/' "$W/meta.T") <(meta "$M" -path ./many/'*' -prune -o) \
		> "$W/meta.diff" ||
		fail "metadata through the mount differs: $(head -20 "$W/meta.diff" | cut -c1-300)"
	[ "$(stat -c %i "$M/h1/a")" = "$(stat -c %i "$M/h2/b")" ] &&
		[ "$(stat -c %i "$M/h1/a")" = "$(stat -c %i "$M/c")" ] || fail "mount: hard links differ"
	getfattr -d -m - --absolute-names "$M/attrs" | sed "s|$M|X|" > "$W/x3"
	diff "$W/x1" "$W/x3" || fail "xattrs through the mount differ" # x1: before the chmod -R
	sparse_cmp "$T/sparse5g" "$M/sparse5g" || fail "sparse file through the mount differs"
	# Copied back with cp -a: content, metadata and the hard links among the copies.
	mkdir "$W/cp"
	cp -a --sparse=always "$M/h1" "$M/h2" "$M/c" "$M/attrs" "$W/cp/"
	for f in h1 h2 c attrs; do
		diff -r --no-dereference "$T/$f" "$W/cp/$f" || fail "cp -a from the mount: $f differs"
	done
	diff <(grep -aE ' \./(h1|h2|c|attrs)(/|$)' "$W/meta.T") <(meta "$W/cp" | grep -v " \.$") ||
		fail "cp -a from the mount: metadata differs"
	[ "$(stat -c %i "$W/cp/h1/a")" = "$(stat -c %i "$W/cp/h2/b")" ] &&
		[ "$(stat -c %i "$W/cp/h1/a")" = "$(stat -c %i "$W/cp/c")" ] ||
		fail "cp -a from the mount did not keep the hard links"
	getfattr -d -m - --absolute-names "$W/cp/attrs" | sed "s|$W/cp|X|" > "$W/x5"
	diff "$W/x1" "$W/x5" || fail "cp -a from the mount: xattrs differ"
fi
echo ok
