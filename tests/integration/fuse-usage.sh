#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs refuses bad usage before it asks for a password or opens the
# repository: one 'cairnfs: ' line, exit 2, nothing mounted. Bad options, a
# missing or non-directory mount point; a wrong password is exit 1. And the
# password options, which cairn mount passes on, work in both their forms.
. "$(dirname "$0")/lib.sh"
fuse_setup
init_repo
mkdir -p "$W/src" && echo data > "$W/src/f"
"$CAIRN" backup "$W/src" > /dev/null
touch "$W/file"
cleanup_hooks+=('! mountpoint -q "$W/file" || fusermount3 -u "$W/file"')

# Each error is one line that names the program: "cairnfs: ", also libfuse's
# (which come in pieces).
one_cairnfs_line() {
	[ "$(wc -l < "$W/err")" = 1 ] && grep -q '^cairnfs: [^ ]' "$W/err" && ! grep -q 'cairnfs: cairnfs' "$W/err" ||
		fail "not one 'cairnfs: ' line: $(cat "$W/err")"
}
# A password command that leaves a trace: bad usage must be found before it runs.
unset CAIRN_PASSWORD_FILE
export CAIRN_PASSWORD_COMMAND="touch '$W/asked'; cat '$W/pw'"
not_asked() {
	[ ! -e "$W/asked" ] || fail "asked for the password before refusing: $*"
	! mountpoint -q "$MNT" && ! mountpoint -q "$W/file" || fail "a refused start left a mount: $*"
}

expect_fail 2 "^cairnfs: give a repository" -- "$CAIRNFS"
one_cairnfs_line
expect_fail 2 "^cairnfs: give a mount point" -- "$CAIRNFS" "$CAIRN_REPO"
one_cairnfs_line
expect_fail 2 "^cairnfs: cache_size" -- "$CAIRNFS" -o cache_size=lots "$CAIRN_REPO" "$MNT"
one_cairnfs_line
not_asked cache_size
expect_fail 2 "^cairnfs: xattrs: 'maybe' is neither 'auto' nor 'always'$" -- "$CAIRNFS" -o xattrs=maybe "$CAIRN_REPO" "$MNT"
one_cairnfs_line
not_asked xattrs
# libfuse's own options, in the foreground and in the background.
for fg in -f ""; do
	expect_fail 2 "^cairnfs: fuse: unknown option(s): \`-o bogus_opt,other'$" -- \
		timeout 20 "$CAIRNFS" $fg -o bogus_opt,other "$CAIRN_REPO" "$MNT"
	one_cairnfs_line
	not_asked "unknown option ($fg)"
done
expect_fail 2 "^cairnfs: fuse: bad mount point" -- "$CAIRNFS" -f "$CAIRN_REPO" "$W/nowhere"
one_cairnfs_line
not_asked "no mount point"
# On a regular file the kernel would mount, and fail every access with EIO.
for fg in -f ""; do
	expect_fail 2 "^cairnfs: mount point '$W/file' is not a directory$" -- \
		timeout 20 "$CAIRNFS" $fg "$CAIRN_REPO" "$W/file"
	one_cairnfs_line
	not_asked "file as mount point ($fg)"
done
# Over files, which would be hidden while it is mounted.
mkdir -p "$W/full" && echo mine > "$W/full/f"
expect_fail 2 "^cairnfs: mount point '$W/full' is not empty" -- timeout 20 "$CAIRNFS" -f "$CAIRN_REPO" "$W/full"
one_cairnfs_line
not_asked "non-empty mount point"

# Past the usage checks: a password that cannot be read, then a wrong one.
CAIRN_PASSWORD_COMMAND=false expect_fail 1 "^cairnfs: .*password" -- "$CAIRNFS" -f "$CAIRN_REPO" "$MNT"
one_cairnfs_line
echo wrong > "$W/wrong"
CAIRN_PASSWORD_COMMAND="cat '$W/wrong'" expect_fail 1 "^cairnfs: cannot open repository" -- "$CAIRNFS" "$CAIRN_REPO" "$MNT"
one_cairnfs_line
! mountpoint -q "$MNT" || fail "a failed start left a mount"

# And the good case still mounts, with libfuse options it knows.
"$CAIRNFS" -o max_threads=4,allow_root "$CAIRN_REPO" "$MNT" 2> "$W/err" ||
	fail "cannot mount: $(cat "$W/err")"
[ -e "$W/asked" ] || fail "mounted without the password command"
[ "$(cat "$MNT/latest$W/src/f")" = data ] || fail "wrong content"
fusermount3 -u "$MNT"

# The password options in both forms, for cairnfs and through cairn mount (which
# passes --password-file=F, --password-command=CMD), with the environment's
# password command wrong: what the option gives is used.
export CAIRN_PASSWORD_COMMAND=false
# mounts WHAT -- CMD...: CMD mounts in the background and the content is there.
mounts() {
	local what=$1
	shift 2
	"$@" 2> "$W/err" || fail "$what: $(cat "$W/err")"
	mountpoint -q "$MNT" && [ "$(cat "$MNT/latest$W/src/f")" = data ] || fail "$what: not mounted"
	fusermount3 -u "$MNT"
}
mounts "cairnfs --password-file F" -- "$CAIRNFS" --password-file "$W/pw" "$CAIRN_REPO" "$MNT"
mounts "cairnfs --password-file=F" -- "$CAIRNFS" --password-file="$W/pw" "$CAIRN_REPO" "$MNT"
mounts "cairnfs --password-command CMD" -- "$CAIRNFS" --password-command "cat '$W/pw'" "$CAIRN_REPO" "$MNT"
mounts "cairnfs --password-command=CMD" -- "$CAIRNFS" --password-command="cat '$W/pw'" "$CAIRN_REPO" "$MNT"
mounts "cairn --password-file F mount" -- "$CAIRN" --password-file "$W/pw" mount "$MNT"
# A command longer than a page arrives whole (cut, it would be blanks only).
mounts "cairn --password-command CMD mount" -- "$CAIRN" --password-command "$(printf '%5000s')cat '$W/pw'" mount "$MNT"

# The S3 options of cairn reach cairnfs (which reads them from its environment),
# over what the environment says; those it has no place for are bad usage.
s3=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$W" AWS_ENDPOINT_URL=http://127.0.0.1:8
	CAIRN_S3_RETRIES=1)
expect_fail 1 "127.0.0.1 port 9" -- "${s3[@]}" AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y "$CAIRN" \
	--password-file "$W/pw" --s3-endpoint http://127.0.0.1:9 mount --cache-dir "$W/c" -f s3://b/p "$MNT"
expect_fail 1 "S3 profile 'nosuch' is in neither" -- "${s3[@]}" "$CAIRN" \
	--password-file "$W/pw" --s3-profile nosuch mount --cache-dir "$W/c" -f s3://b/p "$MNT"
expect_fail 2 "cairnfs takes no --s3-addressing" -- "$CAIRN" --s3-addressing path mount s3://b/p "$MNT"
! mountpoint -q "$MNT" || fail "a failed S3 mount left a mount"
echo ok
