#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# check on a repository this process cannot write: a read-only bind mount, an
# immutable copy, another user's files (as root), or files without write
# permission (as a user). It checks read-only, warns that the result is not
# recorded, changes nothing, and still finds damage.
. "$(dirname "$0")/lib.sh"

init_repo --pack-size 1M
mkdir -p "$W/src"
head -c 2000000 /dev/urandom > "$W/src/big"
echo small > "$W/src/small"
"$CAIRN" backup "$W/src" > /dev/null
chmod 755 "$W"
chmod 644 "$W/pw"

# check_ro NAME DIR [RUNNER...]: check --read-data of DIR passes read-only.
check_ro() {
	local name=$1 dir=$2; shift 2
	local before rc=0
	before=$(cd "$dir" && find . -printf '%p %s %T@\n' | sort | sha256sum)
	CAIRN_REPO="$dir" "$@" "$CAIRN" check --read-data > "$W/out" 2> "$W/err" || rc=$?
	[ "$rc" = 0 ] || fail "$name: check exited $rc: $(cat "$W/err")"
	grep -q "0 errors" "$W/out" || fail "$name: $(cat "$W/out")"
	grep -q "warning: cannot record the check result" "$W/err" || fail "$name: no warning: $(cat "$W/err")"
	[ "$(cd "$dir" && find . -printf '%p %s %T@\n' | sort | sha256sum)" = "$before" ] ||
		fail "$name: check changed the repository"
	checked=$((checked + 1))
}
checked=0
copy() { rm -rf "$W/$1"; cp -a "$CAIRN_REPO" "$W/$1"; }

if [ "$(id -u)" != 0 ]; then
	copy user && chmod -R a-w "$W/user"
	cleanup_hooks+=("chmod -R u+w '$W/user'")
	check_ro "no write permission" "$W/user"
else
	copy bind && mkdir -p "$W/mnt"
	if mount --bind "$W/bind" "$W/mnt" 2> /dev/null; then
		cleanup_hooks+=("umount '$W/mnt'")
		if mount -o remount,ro,bind "$W/mnt" 2> /dev/null; then
			check_ro "read-only bind mount" "$W/mnt"
		fi
	fi
	copy imm
	if chattr -R +i "$W/imm" 2> /dev/null; then
		cleanup_hooks+=("chattr -R -i '$W/imm'")
		check_ro "immutable copy" "$W/imm"
		chattr -R -i "$W/imm"
	fi
	if command -v setpriv > /dev/null; then
		copy other && chmod -R a+rX "$W/other"
		check_ro "another user's repository" "$W/other" \
			setpriv --reuid=65534 --regid=65534 --clear-groups
	fi
fi
[ "$checked" -gt 0 ] || { echo "SKIP: cannot make a repository read-only here"; exit 77; }

# Damage is still found read-only (and nothing is recorded either).
copy bad
pack=$(find "$W/bad/packs" -type f -size +1000k | head -1)
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(5000); b=f.read(1); f.seek(5000); f.write(bytes([b[0]^1]))' "$pack"
if [ "$(id -u)" != 0 ]; then
	chmod -R a-w "$W/bad"; cleanup_hooks+=("chmod -R u+w '$W/bad'"); run=()
elif command -v setpriv > /dev/null; then
	chmod -R a+rX "$W/bad"; run=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
	echo "ok ($checked ways; no setpriv for the damaged case)"; exit 0
fi
rc=0; CAIRN_REPO="$W/bad" "${run[@]}" "$CAIRN" check --read-data > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a damaged read-only repository: check exited $rc: $(cat "$W/out")"
grep -q "$(basename "$pack" | cut -c1-8)" "$W/out" || fail "check does not name the pack: $(cat "$W/out")"
echo "ok ($checked ways)"
