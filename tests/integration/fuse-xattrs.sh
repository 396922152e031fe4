#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Without default_permissions, cairnfs tells the kernel there are no xattrs
# (ENOSYS to GETXATTR, docs/MOUNT.md) once it knows no snapshot has any: a
# copy out of such a mount is still identical, a snapshot with xattrs that
# appears later shows none until remounted (one warning), a mount of
# snapshots with xattrs and ACLs shows them all, and -o xattrs=always never
# sends ENOSYS. With default_permissions (the default) nothing gets ENOSYS:
# the kernel enforces ACLs it reads (fuse-perms.sh has the later snapshot).
. "$(dirname "$0")/lib.sh"
fuse_setup

# listing DIR: type, mode, owner, size, mtime, link target and count, name.
listing() {
	(cd "$1" && find . -mindepth 1 ! -type d -printf '%y %m %U %G %s %T@ %l %n %P\0' &&
		find . -mindepth 1 -type d -printf '%y %m %U %G - %T@ %l %n %P\0') | sort -z
}
all_xattrs() { (cd "$1" && getfattr -R -h -d -m - . 2>&1); }
# unsupported FILE: whether getfattr meets the kernel's "not supported" for FILE
unsupported() { [[ "$(getfattr -h -n user.x "$1" 2>&1)" == *"Operation not supported"* ]]; }

init_repo
T="$W/plain" # no xattr, no ACL anywhere
mkdir -p "$T/d/e"
echo a > "$T/a"
ln -s a "$T/l"
ln "$T/a" "$T/d/hard"
head -c 300000 /dev/urandom > "$T/d/e/big"
chmod 0600 "$T/d/e/big"
chmod 1777 "$T/d"
touch -h -d '2001-02-03 04:05:06.123456789' "$T/l"
[ -z "$(all_xattrs "$T")" ] || fail "the source has xattrs of its own: $(all_xattrs "$T" | head -3)"
"$CAIRN" backup --host h "$T" > /dev/null

# ---- default_permissions: never ENOSYS ------------------------------------------
mount_fs
for _ in $(seq 20); do
	! unsupported "$MNT/latest$T/a" || fail "ENOSYS with default_permissions"
	sleep 0.05
done
umount_fs
mount_fs -o no_default_permissions

# ---- no snapshot has xattrs: ENOSYS, and cp -a is still exact -------------------
for _ in $(seq 100); do unsupported "$MNT/latest$T/a" && break; sleep 0.1; done
unsupported "$MNT/latest$T/a" || fail "the kernel is never told there are no xattrs: $(getfattr -n user.x "$MNT/latest$T/a" 2>&1)"
cp -a "$MNT/latest$T" "$W/copy" 2> "$W/cp.err" || fail "cp -a: $(cat "$W/cp.err")"
[ ! -s "$W/cp.err" ] || fail "cp -a complained: $(cat "$W/cp.err")"
diff -r --no-dereference "$T" "$W/copy" || fail "the copy differs"
cmp <(listing "$T") <(listing "$W/copy") ||
	fail "metadata differs: $(diff <(listing "$T" | tr '\0' '\n') <(listing "$W/copy" | tr '\0' '\n') | head)"
[ -z "$(all_xattrs "$W/copy")" ] || fail "the copy has xattrs: $(all_xattrs "$W/copy" | head -3)"
[ -z "$(getfacl -R -s -p "$W/copy" 2> /dev/null)" ] || fail "the copy has ACLs"

# ---- a snapshot with xattrs appears: the kernel was told, so none are shown -----
X="$W/withx"
mkdir -p "$X"
echo x > "$X/f"
setfattr -n user.k -v value "$X/f"
setfacl -m u:nobody:r-- "$X/f"
xid=$("$CAIRN" backup --json --host h "$X" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$xid" ] || fail "no snapshot ID from backup --json"
for _ in $(seq 100); do [ -e "$MNT/latest$X/f" ] && break; sleep 0.1; done
[ "$(cat "$MNT/latest$X/f")" = x ] || fail "the new snapshot does not show"
unsupported "$MNT/latest$X/f" || fail "xattrs of the new snapshot: $(getfattr -d "$MNT/latest$X/f" 2>&1)"
# LISTXATTR still answers: a copy that cannot read them says so
getfattr -h -d "$MNT/latest$X/f" 2>&1 | grep -q "Operation not supported" ||
	fail "the new snapshot's xattrs vanish silently: $(getfattr -h -d "$MNT/latest$X/f" 2>&1)"
for _ in $(seq 100); do grep -q "remount to see them" "$W/fs.log" && break; sleep 0.1; done
[ "$(grep -c "remount to see them" "$W/fs.log")" = 1 ] || fail "no warning: $(cat "$W/fs.log")"
umount_fs

# ---- remounted, the scan finds them: every request is answered --------------------
mount_fs
for _ in $(seq 20); do
	[ "$(getfattr --only-values -n user.k "$MNT/latest$X/f" 2> /dev/null)" = value ] || fail "xattr after a remount"
	sleep 0.05
done
cp -a "$MNT/latest$X" "$W/copyx" || fail "cp -a with xattrs"
[ "$(getfattr --absolute-names --only-values -n user.k "$W/copyx/f")" = value ] || fail "cp -a lost the xattr"
getfacl -p "$W/copyx/f" 2> /dev/null | grep -q '^user:nobody:r--' || fail "cp -a lost the ACL: $(getfacl -p "$W/copyx/f")"
! unsupported "$MNT/latest$T/a" || fail "ENOSYS although a snapshot has xattrs"
umount_fs

# ---- -o xattrs=always: never ENOSYS, even without any xattr ------------------------
"$CAIRN" forget "$xid" > /dev/null
mount_fs -o xattrs=always
[ ! -e "$MNT/latest$X" ] || fail "the snapshot with xattrs is still there"
for _ in $(seq 20); do
	[[ "$(getfattr -n user.x "$MNT/latest$T/a" 2>&1)" == *"No such attribute"* ]] || fail "ENOSYS with xattrs=always"
	sleep 0.05
done
umount_fs
echo ok
