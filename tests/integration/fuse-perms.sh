#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs with allow_other: another user meets the recorded permissions of a
# snapshot wherever the mount shows its files, under history/ as under
# snapshots/, and the ACLs of snapshots made after the mount started.
. "$(dirname "$0")/lib.sh"
fuse_setup
command -v setpriv > /dev/null || { echo "SKIP: no setpriv"; exit 77; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# refused WHAT CMD...: CMD, run as nobody, must fail with "Permission denied"
refused() {
	local what=$1; shift
	if as_nobody "$@" > "$W/out" 2>&1; then fail "$what: nobody got through: $(head -3 "$W/out")"; fi
	grep -q "Permission denied" "$W/out" || fail "$what: $(head -3 "$W/out")"
}

init_repo
chmod 755 "$W" # so that nobody can reach the mount point
T="$W/src"
mkdir -p "$T/priv/.ssh" "$T/open"
echo topsecret > "$T/priv/.ssh/id"
echo public > "$T/open/pub"
chmod 644 "$T/priv/.ssh/id" "$T/open/pub"
chmod 755 "$T" "$T/open" "$T/priv/.ssh"
chmod 700 "$T/priv"
"$CAIRN" backup --host h "$T" > /dev/null
mount_fs -o allow_other
S=$(ls "$MNT/snapshots")
H="$MNT/history$T"

# ---- history/ keeps a 0700 directory closed, as snapshots/ does ----------------
refused "snapshots/" cat "$MNT/snapshots/$S$T/priv/.ssh/id"
refused "a version under history/" cat "$H/priv/.ssh/id/$S"
refused "a listing under history/" ls "$H/priv"
refused "a listing under history/" ls "$H/priv/.ssh"
[ "$(stat -c '%a %u' "$H/priv")" = "700 0" ] || fail "history/…/priv: $(stat -c '%a %u' "$H/priv")"
[ "$(stat -c '%a' "$H/priv/.ssh/id")" = 755 ] ||
	fail "a file's history directory takes its parent's mode: $(stat -c '%a' "$H/priv/.ssh/id")"
[ "$(cat "$H/priv/.ssh/id/$S")" = topsecret ] || fail "root cannot read history/"
# and opens what is open
[ "$(as_nobody cat "$H/open/pub/$S")" = public ] || fail "nobody cannot read an open file in history/"

# ---- the directory opened later: history/ stays as closed as its oldest version --
chmod 755 "$T/priv"
sleep 1 # another second: another snapshot name
"$CAIRN" backup --host h "$T" > /dev/null
for _ in $(seq 600); do [ "$(ls "$MNT/snapshots" | wc -l)" = 2 ] && break; sleep 0.05; done
S2=$(ls "$MNT/snapshots" | tail -1)
[ "$S2" != "$S" ] || fail "the second snapshot does not show"
[ "$(as_nobody cat "$MNT/snapshots/$S2$T/priv/.ssh/id")" = topsecret ] ||
	fail "nobody cannot read the opened directory under snapshots/"
for _ in $(seq 100); do [ "$(stat -c %a "$H/priv")" = 700 ] && break; sleep 0.05; done
refused "history/ of a directory that was 0700" cat "$H/priv/.ssh/id/$S"

# ---- an ACL in a snapshot made after the mount started is enforced ---------------
# No snapshot so far has an xattr or ACL; the kernel has asked for them (ls -l).
ls -lR "$MNT/latest/" > /dev/null 2>&1 || true
getfacl -R "$MNT/latest$T/open" > /dev/null 2>&1 || true
A="$W/acl"
mkdir -p "$A"
echo aclsecret > "$A/f"
chmod 644 "$A/f"
setfacl -m u:nobody:--- "$A/f"
setfattr -n user.important -v yes "$A/f"
sleep 1
"$CAIRN" backup --host h "$A" > /dev/null
for _ in $(seq 600); do [ -e "$MNT/latest$A/f" ] && break; sleep 0.05; done
[ "$(cat "$MNT/latest$A/f")" = aclsecret ] || fail "the snapshot with an ACL does not show"
refused "an ACL of a later snapshot" cat "$MNT/latest$A/f"
getfacl -p "$MNT/latest$A/f" 2> /dev/null | grep -q '^user:nobody:---' ||
	fail "getfacl: $(getfacl -p "$MNT/latest$A/f" 2>&1)"
cp -a "$MNT/latest$A/f" "$W/copy" || fail "cp -a"
[ "$(getfattr --absolute-names --only-values -n user.important "$W/copy" 2>&1)" = yes ] ||
	fail "cp -a dropped the xattr of a later snapshot"
getfacl -p "$W/copy" 2> /dev/null | grep -q '^user:nobody:---' || fail "cp -a dropped the ACL"
umount_fs
echo "PASS"
