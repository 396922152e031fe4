#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The foundation commands end to end: init, key management, cat, rebuild-index,
# and clear errors for bad input.
. "$(dirname "$0")/lib.sh"

# Missing repository: clear error before any password prompt.
expect_fail 1 "no repository at" -- "$CAIRN" cat config
expect_fail 2 "no repository given" -- env -u CAIRN_REPO "$CAIRN" cat config
expect_fail 2 "not a cairn command" -- "$CAIRN" frobnicate
expect_fail 2 "unknown option" -- "$CAIRN" init --bogus
"$CAIRN" --version | grep -q "^cairn "
# The global options' errors have one "cairn: " prefix; a bad --log-format says
# which values there are, wherever it stands.
expect_fail 2 "^cairn: unknown option '--bogus'" -- "$CAIRN" --bogus snapshots
grep -q "cairn: cairn:" "$W/err" && fail "double prefix: $(cat "$W/err")"
expect_fail 2 "^cairn: unknown log format 'bogus' (use 'text' or 'json')" -- "$CAIRN" --log-format bogus snapshots
expect_fail 2 "^cairn: ls: unknown log format 'xml' (use 'text' or 'json')" -- "$CAIRN" ls --log-format xml latest
# Bad init options are bad usage (exit 2), found before any password is asked
# for, and leave nothing behind.
for cs in 1K/2K/1K 1M/512K/8M 512K/1000K/8M 0/0/0 1G/2G/3G 1M/2M; do
	expect_fail 2 "init: .*chunk" -- env -u CAIRN_PASSWORD_FILE "$CAIRN" init --chunk-size "$cs"
done
expect_fail 2 "init: pack size 1024 is out of range" -- "$CAIRN" init --kdf-log2n 10 --pack-size 1K
expect_fail 2 "init: pack size '0' is too small" -- "$CAIRN" init --kdf-log2n 10 --pack-size 0
expect_fail 2 "give a directory" -- "$CAIRN" --cache-dir "" snapshots
expect_fail 2 "give a URL" -- "$CAIRN" snapshots --s3-endpoint ""
[ ! -e "$CAIRN_REPO" ] || fail "a refused init left $CAIRN_REPO behind"
# An init that fails after it made the layout and wrote the key file (here at
# its config) removes what it made: a directory it created, or the layout in
# the empty one it was given; a second init then works.
mkdir "$W/empty"
for target in "$W/halfmade" "$W/empty"; do
	rc=0
	LD_PRELOAD="$FAILRENAME_SHIM" FAILRENAME_SUFFIX=/config \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$CAIRN" -r "$target" init --kdf-log2n 10 > "$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "init with a failing config write exited $rc: $(cat "$W/out")"
	if [ "$target" = "$W/halfmade" ]; then
		[ ! -e "$target" ] || fail "a failed init left $target: $(ls -R "$target")"
	else
		[ -d "$target" ] && [ -z "$(ls -A "$target")" ] ||
			fail "a failed init left its layout in $target: $(ls -A "$target")"
	fi
	"$CAIRN" -r "$target" init --kdf-log2n 10 > "$W/out" 2>&1 || fail "init after a failed one: $(cat "$W/out")"
	"$CAIRN" -r "$target" snapshots > /dev/null || fail "the second init's repository does not open"
done
# One that was killed after its key file leaves no config: init says so.
mkdir -p "$W/killed/keys"
echo key > "$W/killed/keys/0123456789abcdef"
expect_fail 1 "holds key files but no config (an init that was killed?" -- \
	"$CAIRN" -r "$W/killed" init --kdf-log2n 10
"$CAIRN" --help | grep -q "rebuild-index"
"$CAIRN" init --help | grep -q -- "--chunk-size"

init_repo --pack-size 1M
[ -f "$CAIRN_REPO/config" ] || fail "no config"
[ "$(stat -c %a "$CAIRN_REPO")" = 700 ] || fail "repository directory is not 0700"
[ "$(stat -c %a "$CAIRN_REPO/config")" = 600 ] || fail "config is not 0600"
expect_fail 1 "already holds a repository" -- "$CAIRN" init --kdf-log2n 10

"$CAIRN" cat config > "$W/config"
head -1 "$W/config" | grep -qx "cairn-repository 1" || fail "config lacks version line"
grep -q "^pack-size = 1048576$" "$W/config" || fail "pack size not recorded"

# Wrong password: one line, exit 1, nothing changed.
before=$(cd "$CAIRN_REPO" && find . -type f -newer "$W/pw" | sort | xargs -r sha256sum)
printf 'wrong\n' > "$W/bad"
expect_fail 1 "wrong password" -- "$CAIRN" --password-file "$W/bad" cat config
expect_fail 1 "wrong password" -- env -u CAIRN_PASSWORD_FILE CAIRN_PASSWORD=wrong "$CAIRN" cat config
expect_fail 1 "password command failed" -- env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command false cat config
env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command "cat $W/pw" cat config >/dev/null
# Both sources at once is bad usage (one would be ignored), in either order.
expect_fail 2 "not both" -- "$CAIRN" --password-command "cat $W/pw" --password-file "$W/pw" cat config
expect_fail 2 "not both" -- "$CAIRN" --password-file "$W/pw" cat config --password-command "cat $W/pw"
# A password command that hangs is killed after CAIRN_PASSWORD_COMMAND_TIMEOUT
# seconds (60 by default), with one line; one killed by a signal names it.
CAIRN_PASSWORD_COMMAND_TIMEOUT=1 expect_fail 1 "password command gave no password within 1 s: killed" -- \
	env -u CAIRN_PASSWORD_FILE timeout 120 "$CAIRN" --password-command "sleep 600" cat config
[ "$(grep -c . "$W/err")" = 1 ] || fail "not one line: $(cat "$W/err")"
expect_fail 1 "password command killed by SIGTERM" -- \
	env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command 'kill -TERM $$' cat config
# A command that writes more after its password line (beyond what cairn reads,
# and beyond what it drains) is not failed for the SIGPIPE that follows.
env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command \
	"cat '$W/pw'; head -c 100000 /dev/zero | tr '\\0' x; echo" cat config > /dev/null ||
	fail "a password command with more output failed"
env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command "cat '$W/pw'; yes" cat config > /dev/null ||
	fail "a password command writing on and on failed"
# No password source and no terminal: a clear error, not a hang.
expect_fail 1 "no password given" -- env -u CAIRN_PASSWORD_FILE setsid "$CAIRN" cat config </dev/null
after=$(cd "$CAIRN_REPO" && find . -type f -newer "$W/pw" | sort | xargs -r sha256sum)
[ "$before" = "$after" ] || fail "a failed open modified the repository"

# Keys: add a second password, open with it, change it, remove the first.
printf 'second secret\n' > "$W/pw2"
"$CAIRN" key add --new-password-file "$W/pw2" --key-label laptop | grep -q "added key"
# A key label is 1 to 255 bytes without control characters, as a host name is.
n_keys=$("$CAIRN" key list --json | grep -c '"label"')
for l in '' "a"$'\t'"b" "a"$'\n'"b" "$(printf '%0256d' 0)"; do
	expect_fail 2 "a key label" -- "$CAIRN" key add --new-password-file "$W/pw2" --key-label "$l"
	expect_fail 2 "a key label" -- "$CAIRN" -r "$W/nolabel" init --kdf-log2n 10 --key-label "$l"
done
[ ! -e "$W/nolabel" ] || fail "init with a bad key label made a repository"
[ "$("$CAIRN" key list --json | grep -c '"label"')" = "$n_keys" ] || fail "a refused key was added"
[ "$("$CAIRN" key list --json | grep -o '"name"' | wc -l)" = 2 ] || fail "expected 2 keys"
"$CAIRN" --password-file "$W/pw2" key list | grep -q laptop || fail "label not listed"
first=$("$CAIRN" key list | awk '$1=="*"{print $2}')
second=$("$CAIRN" --password-file "$W/pw2" key list | awk '$1=="*"{print $2}')
[ -n "$first" ] && [ -n "$second" ] && [ "$first" != "$second" ] || fail "current key not marked"
expect_fail 1 "the one in use" -- "$CAIRN" key remove "$first"
"$CAIRN" --password-file "$W/pw2" key remove "$first" | grep -q removed
expect_fail 1 "wrong password" -- "$CAIRN" cat config
expect_fail 1 "last full key" -- "$CAIRN" --password-file "$W/pw2" key remove "$second"
printf 'third secret\n' > "$W/pw3"
"$CAIRN" --password-file "$W/pw2" key passwd --new-password-file "$W/pw3" | grep -q changed
expect_fail 1 "wrong password" -- "$CAIRN" --password-file "$W/pw2" cat config
"$CAIRN" --password-file "$W/pw3" cat config >/dev/null
cp "$W/pw3" "$W/pw"

# Unknown format version: refused before asking for a password.
cp -a "$CAIRN_REPO" "$W/v2"
sed -i '1s/.*/cairn-repository 2/' "$W/v2/config"
expect_fail 1 "unsupported repository format version 2" -- env -u CAIRN_PASSWORD_FILE "$CAIRN" -r "$W/v2" cat config
# A tampered config is detected once unlocked.
cp -a "$CAIRN_REPO" "$W/tamper"
sed -i 's/^compression = 3$/compression = 4/' "$W/tamper/config"
expect_fail 1 "authentication failed" -- "$CAIRN" -r "$W/tamper" cat config
# A truncated key file reads as no usable key, never as a crash.
cp -a "$CAIRN_REPO" "$W/trunc"
for k in "$W"/trunc/keys/*; do head -c 40 "$k" > "$k.x" && mv "$k.x" "$k"; done
expect_fail 1 "key file" -- "$CAIRN" -r "$W/trunc" cat config

# ---- security: file modes ------------------------------------------------
# Every repository file is 0600 and every directory 0700, whatever the umask:
# after init, backups, check, forget, prune, key add, rebuild-index, and the
# lock file a killed prune leaves behind.
S="$W/sec"
mkdir -p "$W/ssrc/d"
echo one > "$W/ssrc/d/a"
head -c 200000 /dev/urandom > "$W/ssrc/b"
(
	umask 000
	export CAIRN_REPO=$S
	init_repo --pack-size 1M
	"$CAIRN" backup "$W/ssrc" > /dev/null
	echo two >> "$W/ssrc/d/a"
	"$CAIRN" backup "$W/ssrc" > /dev/null
	"$CAIRN" check --read-data > /dev/null
	"$CAIRN" forget --keep-last 1 > /dev/null
	"$CAIRN" prune --max-unused 0 > /dev/null
	"$CAIRN" key add --new-password-file "$W/pw2" > /dev/null
	rm -rf "$S/index"
	"$CAIRN" rebuild-index > /dev/null
	{ CAIRN_TEST_CRASH_POINT=after-mark "$CAIRN" prune > /dev/null 2>&1 || true; } 2> /dev/null
)
[ -n "$(ls "$S/locks")" ] || fail "the killed prune left no lock file to check"
find "$S" -type d ! -perm 700 -printf '%m %p\n' > "$W/badmode"
find "$S" ! -type d ! -type f -printf 'type %y %p\n' >> "$W/badmode"
find "$S" -type f ! -perm 600 -printf '%m %p\n' >> "$W/badmode"
[ ! -s "$W/badmode" ] || fail "repository entries not 0600/0700: $(cat "$W/badmode")"
[ "$(find "$S" -type f | wc -l)" -ge 8 ] || fail "too few files checked: $(find "$S")"

# ---- security: the password is never shown -------------------------------
# Not in any process's command line while cairn runs (the password command
# blocks on a fifo until the listing is taken), not in anything cairn prints,
# even at debug level, and not in the repository's files.
SECRET="Zq8-very-secret-$RANDOM$RANDOM"
printf '%s\n' "$SECRET" > "$W/pw-new"
"$CAIRN" -r "$S" key add --new-password-file "$W/pw-new" > "$W/key.out" 2>&1
mkfifo "$W/pwfifo"
export CAIRN_LOG_LEVEL=debug
env -u CAIRN_PASSWORD_FILE "$CAIRN" -r "$S" --password-command "cat $W/pwfifo" \
	backup --json "$W/ssrc" > "$W/bk.out" 2> "$W/bk.err" &
bk=$!
# The password command's cat has the fifo open and waits: cairn is running.
for _ in $(seq 200); do pgrep -f "^cat $W/pwfifo\$" > /dev/null && break; sleep 0.05; done
pgrep -f "^cat $W/pwfifo\$" > /dev/null || fail "the password command never started"
tr '\0' ' ' < "/proc/$bk/cmdline" > "$W/cmdline"
grep -q "backup --json" "$W/cmdline" || fail "not cairn's command line: $(cat "$W/cmdline")"
ps -eo args > "$W/ps"
printf '%s\n' "$SECRET" > "$W/pwfifo"
wait $bk || fail "backup with --password-command failed: $(cat "$W/bk.err")"
env -u CAIRN_PASSWORD_FILE CAIRN_PASSWORD="$SECRET" "$CAIRN" -r "$S" -v check --read-data > "$W/ck.out" 2>&1 ||
	fail "check with CAIRN_PASSWORD failed: $(cat "$W/ck.out")"
env -u CAIRN_PASSWORD_FILE CAIRN_PASSWORD="$SECRET" "$CAIRN" -r "$S" snapshots --json >> "$W/ck.out" 2>&1
env -u CAIRN_PASSWORD_FILE CAIRN_PASSWORD="${SECRET}x" "$CAIRN" -r "$S" snapshots >> "$W/ck.out" 2>&1 &&
	fail "a wrong password worked"
grep -q "wrong password" "$W/ck.out" || fail "no 'wrong password' message: $(cat "$W/ck.out")"
unset CAIRN_LOG_LEVEL
grep -q '"message_type":"summary","command":"backup",' "$W/bk.out" ||
	fail "no backup summary naming its command: $(cat "$W/bk.out")"
for f in "$W/cmdline" "$W/ps" "$W/key.out" "$W/bk.out" "$W/bk.err" "$W/ck.out"; do
	! grep -qF -- "$SECRET" "$f" || fail "the password shows in $(basename "$f"): $(grep -F -- "$SECRET" "$f")"
done
! grep -rqaF -- "$SECRET" "$S" || fail "the password is stored in the repository: $(grep -rlaF -- "$SECRET" "$S")"

# sync --from fills a new or empty directory, or a repository (or what a killed
# pull left of one: its subdirectories), never a directory of other files.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test CAIRN_S3_RETRIES=1
mkdir -p "$W/mine" "$W/pulled"
echo precious > "$W/mine/notes"
expect_fail 1 "'$W/mine' is not empty and holds no repository (it has 'notes')" -- \
	"$CAIRN" sync --from s3://bucket/p -r "$W/mine" --s3-endpoint http://127.0.0.1:9
[ "$(ls -A "$W/mine")" = notes ] || fail "a refused pull wrote into the directory: $(ls -A "$W/mine")"
for _ in 1 2; do # the second time into what the first left
	expect_fail 1 "127.0.0.1" -- "$CAIRN" sync --from s3://bucket/p -r "$W/pulled" \
		--s3-endpoint http://127.0.0.1:9
done
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY CAIRN_S3_RETRIES

# rebuild-index works on an empty repository and after the index is deleted.
"$CAIRN" rebuild-index | grep -q "rebuilt from 0 packs"
rm -rf "$CAIRN_REPO/index"
"$CAIRN" rebuild-index | grep -q "rebuilt from 0 packs"
[ -f "$CAIRN_REPO/index/data.mdb" ] || fail "index not recreated"
expect_fail 1 "no pack matches" -- "$CAIRN" cat pack abcd
expect_fail 1 "not an ID" -- "$CAIRN" cat blob xyz
# Closed standard streams are not reused by the files cairn opens (a dump with
# stdout closed wrote the plain archive into the index's lock file), and output
# that cannot be written is a failure.
mkdir -p "$W/fds" && echo "plain-marker-7q3" > "$W/fds/f"
"$CAIRN" backup -q "$W/fds"
rc=0
"$CAIRN" dump -a tar latest "$W/fds" >&- 2> "$W/err" || rc=$?
[ "$rc" = 1 ] || fail "dump to a closed stdout exited $rc"
! grep -rq "plain-marker-7q3" "$CAIRN_REPO" || fail "the dump went into the repository"
rc=0
"$CAIRN" backup -q --stdin --stdin-filename x <&- 2> "$W/err" || rc=$?
[ "$rc" = 1 ] || fail "a backup of a closed stdin exited $rc: $(cat "$W/err")"
out_has "$W/err" "cannot read standard input"
for cmd in snapshots "ls latest" "cat config" "key list" "stats" "check"; do
	# shellcheck disable=SC2086 # a command and its arguments
	expect_fail 1 "cannot write the output" -- sh -c "\"\$0\" $cmd > /dev/full" "$CAIRN"
done
# dump says the output (or archive) cannot be written, with the reason, and does
# not name the file in the snapshot as if it were the one written.
expect_fail 1 "cannot write the output: No space left on device" -- \
	sh -c '"$0" dump latest "$1" > /dev/full' "$CAIRN" "$W/fds/f"
! grep -q "cannot write '" "$W/err" || fail "dump names the source: $(cat "$W/err")"
expect_fail 1 "cannot write the archive .*: No space left on device" -- \
	sh -c '"$0" dump latest "$1" > /dev/full' "$CAIRN" "$W/fds"
"$CAIRN" check > /dev/null || fail "check after the failed commands"
# Options that contradict each other, or a policy that keeps nothing.
expect_fail 2 "not both" -- "$CAIRN" check --read-data --read-data-subset 1/3
expect_fail 2 "not both" -- "$CAIRN" check --read-data-subset 1/3 --read-data-subset 2/3
expect_fail 2 "keeps nothing" -- "$CAIRN" forget --keep-within 0d
[ -n "$("$CAIRN" snapshots --json | tr -d '[]')" ] || fail "a refused forget removed snapshots"
expect_fail 2 "takes s3://" -- "$CAIRN" status --s3 "$W" --offline
# s3://b//x would be the prefix "/x", another repository than s3://b/x: an
# empty part is refused, as a '.' part is, before any request.
for u in s3://bkt//x s3://bkt/./x; do
	expect_fail 2 "no empty, '.' or '..' parts" -- "$CAIRN" -r "$u" --s3-endpoint http://127.0.0.1:9 \
		init --kdf-log2n 10
	expect_fail 1 "no empty, '.' or '..' parts" -- "$CAIRN" -r "$u" --s3-endpoint http://127.0.0.1:9 \
		snapshots
done
# The repository onto itself by another name: said so, not "in use by sync".
expect_fail 1 "source and destination are both" -- \
	sh -c 'cd "$(dirname "$1")" && "$0" -r "$(basename "$1")" sync "$1"' "$CAIRN" "$CAIRN_REPO"
# A file named for output is replaced whole: a symlink or fifo there too
# (never followed: its directory may be writable by others), while a device
# or a directory is refused and left alone.
mknod "$W/dev" c 1 3
expect_fail 2 "is not a regular file" -- "$CAIRN" report --html "$W/dev"
[ -c "$W/dev" ] || fail "report replaced a device"
# Checked before the backup, so that no snapshot comes with exit 1 (a missing
# directory does not stop the backup: metrics.sh).
n_snaps=$("$CAIRN" snapshots --json | grep -o '"id"' | wc -l)
expect_fail 2 "is not a regular file" -- "$CAIRN" backup -q --metrics-file "$W/dev" "$W/fds"
[ -c "$W/dev" ] || fail "backup replaced a device with its metrics"
expect_fail 2 "no directory" -- "$CAIRN" report --html "$W/nodir/r.html"
# An empty name is bad usage, found before any work (not a failed rename after it).
expect_fail 2 "give a file name to write, not ''" -- "$CAIRN" report --html ''
expect_fail 2 "give a file name to write, not ''" -- "$CAIRN" backup -q --metrics-file '' "$W/fds"
[ "$("$CAIRN" snapshots --json | grep -o '"id"' | wc -l)" = "$n_snaps" ] || fail "a refused backup wrote a snapshot"
mkfifo "$W/fifo"
timeout 60 "$CAIRN" report --html "$W/fifo" > /dev/null || fail "report over a fifo"
[ -f "$W/fifo" ] || fail "the fifo was not replaced"
echo old > "$W/page.html" && ln -s page.html "$W/link.html"
"$CAIRN" report --html "$W/link.html" > /dev/null || fail "report over a symlink"
[ -f "$W/link.html" ] && [ ! -L "$W/link.html" ] && [ "$(cat "$W/page.html")" = old ] ||
	fail "the symlink was followed"
# ---- a directory synced to a directory: the copy's index follows --------------
# A local repository trusts its own index: the copy's must be brought up to
# date by each sync that changes it, or later snapshots read as damaged.
mkdir -p "$W/dd-src"
echo one > "$W/dd-src/a"
CAIRN_REPO="$W/dd" init_repo
CAIRN_REPO="$W/dd" "$CAIRN" backup "$W/dd-src" > /dev/null
"$CAIRN" -r "$W/dd" sync "$W/dd-copy" > /dev/null || fail "sync to a new directory"
"$CAIRN" -r "$W/dd-copy" snapshots > /dev/null || fail "the copy has no index"
"$CAIRN" -r "$W/dd-copy" check > /dev/null || fail "check of the copy"
head -c 200000 /dev/urandom > "$W/dd-src/b"
CAIRN_REPO="$W/dd" "$CAIRN" backup "$W/dd-src" > /dev/null
"$CAIRN" -r "$W/dd" sync "$W/dd-copy" > /dev/null || fail "second sync"
"$CAIRN" -r "$W/dd-copy" check > "$W/dd-check" 2>&1 || fail "the copy's new snapshot: $(cat "$W/dd-check")"
"$CAIRN" -r "$W/dd-copy" restore latest --target "$W/dd-r" > /dev/null || fail "restore from the copy"
cmp "$W/dd-src/b" "$W/dd-r$W/dd-src/b" || fail "the copy restores another file"
# A snapshot forgotten between the sync's listing and its copy: one line that
# says so, exit 1; the next sync finishes.
CAIRN_REPO="$W/dd" "$CAIRN" backup "$W/dd-src" > /dev/null
CAIRN_TEST_STOP_POINT=sync-listed "$CAIRN" -r "$W/dd" sync "$W/dd-copy" > /dev/null 2> "$W/dd-err" &
spid=$!
wait_stopped "$spid" "the sync"
gone=$(ls -t "$W/dd/snapshots" | head -1)
rm "$W/dd/snapshots/$gone"
kill -CONT "$spid"
rc=0
wait "$spid" || rc=$?
[ "$rc" = 1 ] || fail "a sync whose source lost a snapshot: exit $rc: $(cat "$W/dd-err")"
out_has "$W/dd-err" "snapshots/$gone went from $W/dd during the sync (a forget or prune ran beside it): run the sync again"
"$CAIRN" -r "$W/dd" sync "$W/dd-copy" > /dev/null || fail "the sync after"
echo ok
