# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared setup for integration tests: a private work dir, a cheap-KDF repository,
# and assertions that print what went wrong.
set -Eeuo pipefail
: "${CAIRN:?CAIRN must point to the cairn binary}"
W=$(mktemp -d "${TMPDIR:-/tmp}/cairn-it-XXXXXX")
cleanup_hooks=()
# A command that fails outside a condition ends the test (set -e) without a word
# when it prints nothing: a pipeline whose writer got SIGPIPE, a test, grep -q.
# The ERR trap (in functions and subshells too: set -E) notes the last such
# command, and on_exit names it in a FAIL line when fail() did not say why.
err_cmd= err_at= err_rc= fail_said=
trap 'err_rc=$? err_cmd=$BASH_COMMAND err_at="${BASH_SOURCE[0]##*/}:$LINENO"' ERR
on_exit() {
	local rc=$?
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -z "$fail_said" ]; then
		if [ -n "$err_cmd" ]; then
			echo "FAIL: exit status $err_rc at $err_at: $err_cmd" >&2
		else
			echo "FAIL: exit status $rc" >&2
		fi
	fi
	# Debugging a failure: CAIRN_TEST_KEEP=1 leaves the work dir and servers.
	if [ "$rc" != 0 ] && [ -n "${CAIRN_TEST_KEEP:-}" ]; then
		echo "kept $W" >&2
		exit $rc
	fi
	for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
	rm -rf "$W"
	exit $rc
}
trap on_exit EXIT
export CAIRN_REPO="$W/repo"
printf 'correct horse battery staple\n' > "$W/pw"
export CAIRN_PASSWORD_FILE="$W/pw"
unset CAIRN_PASSWORD CAIRN_PASSWORD_COMMAND

fail() {
	echo "FAIL: $*" >&2
	fail_said=1
	exit 1
}
# init with a cheap KDF so tests stay fast; the default cost is tested separately.
init_repo() { "$CAIRN" init --kdf-log2n 10 "$@" >/dev/null; }
# wait_stopped PID WHAT: PID stops itself at a test stop point (SIGSTOP).
wait_stopped() {
	for _ in $(seq 400); do
		[ "$(ps -o stat= -p "$1" | cut -c1)" = T ] && return 0
		sleep 0.05
	done
	fail "$2 did not stop"
}
# expect_fail CODE PATTERN -- command...: exit code CODE and one stderr line matching PATTERN
expect_fail() {
	local code=$1 pattern=$2; shift 3
	local rc=0
	"$@" >"$W/out" 2>"$W/err" || rc=$?
	[ "$rc" -eq "$code" ] || fail "expected exit $code, got $rc from: $* ($(cat "$W/err"))"
	grep -q -- "$pattern" "$W/err" || fail "stderr of '$*' lacks '$pattern': $(cat "$W/err")"
	[ "$(wc -l < "$W/err")" -le 2 ] || fail "more than one error line from '$*': $(cat "$W/err")"
}
# tree_sum DIR: a checksum of every file in a directory tree (names and content).
# out_has FILE TEXT, out_lacks FILE TEXT, out_match FILE REGEX: FILE's content
out_has() { grep -qF -- "$2" "$1" || fail "'$2' missing from: $(cat "$1")"; }
out_lacks() { ! grep -qF -- "$2" "$1" || fail "'$2' unexpected in: $(cat "$1")"; }
out_match() { grep -q -- "$2" "$1" || fail "/$2/ not in: $(cat "$1")"; }
# flip_byte FILE OFFSET: invert the byte at OFFSET, damage that always changes
# it (writing a fixed value leaves a byte that already held it intact).
flip_byte() {
	python3 - "$1" "$2" << 'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xFF]))
PY
}
# json_field FILE KEY: the number KEY has in the JSON object(s) of FILE (the last).
json_field() { grep -o "\"$2\":[0-9]*" "$1" | tail -1 | cut -d: -f2; }
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }
# meta DIR: one sorted line per entry: path, type, mode, uid, gid, size (not
# for directories), mtime, atime (regular files), nlink, the first path with the
# same inode (hard links), link target. Newlines in names show as '?'.
meta() {
	(cd "$1" && find . -printf '%p\t%y %m %U %G %s %T@ %A@ %n %i\t%l\0') |
		tr '\n\0' '?\n' | LC_ALL=C sort |
		awk -F'\t' '{
			split($2, f, " ")
			if (f[1] == "d") f[5] = "-"
			if (f[1] != "f") f[7] = "-"
			if (!(f[9] in first)) first[f[9]] = $1
			print $1 "\t" f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], first[f[9]] "\t" $3
		}'
}
# xattrs DIR: every extended attribute (ACLs included), one line per file.
xattrs() {
	(cd "$1" && getfattr -R -h -d -m - -e hex . 2>/dev/null) |
		awk -v RS= '{ gsub("\n", " | "); print }' | LC_ALL=C sort
}
# sparse_cmp A B: content equality that skips holes both files share, instead of
# reading gigabytes of zeros (a 5 GiB sparse cmp takes half a minute here).
# A is "-" for a stream on stdin (cairn dump): it is compared with B in 1 MiB
# blocks, ten times faster than cmp(1), which reads 4 KiB at a time.
sparse_cmp() {
	python3 -c "$(cat <<'PY'
import os, sys
if sys.argv[1] == "-":
    b = os.open(sys.argv[2], os.O_RDONLY)
    size, pos, inp = os.fstat(b).st_size, 0, sys.stdin.buffer
    while True:
        got = inp.read(1 << 20)
        if not got:
            break
        if got != os.pread(b, len(got), pos):
            sys.exit("content differs in the 1 MiB from %d" % pos)
        pos += len(got)
    if pos != size:
        sys.exit("the stream has %d bytes, the file %d" % (pos, size))
    sys.exit(0)
def segments(fd, size):
    out, pos = [], 0
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, min(h, size)))
        pos = h
    return out
a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
size = os.fstat(a).st_size
if size != os.fstat(b).st_size:
    sys.exit("sizes differ")
for start, end in sorted(segments(a, size) + segments(b, size)):
    while start < end:
        n = min(end - start, 1 << 20)
        if os.pread(a, n, start) != os.pread(b, n, start):
            sys.exit("content differs at %d" % start)
        start += n
PY
)" "$1" "$2"
}
# crash_run TRIGGER -- CMD...: run CMD, SIGKILL it at TRIGGER, print "killed" or
# "exited RC" (triggers: tests/integration/crash-run.py).
crash_run() { python3 "$(dirname "${BASH_SOURCE[0]}")/crash-run.py" "$@"; }
# ms_since T0: whole milliseconds (at least 1) since T0, an $EPOCHREALTIME.
ms_since() {
	local now=${EPOCHREALTIME/[.,]/} then=${1/[.,]/}
	echo $(((now - then) / 1000 > 0 ? (now - then) / 1000 : 1))
}
# ms_within MS: a random moment, in ms, of the first three quarters of MS.
ms_within() { echo $((RANDOM % ($1 * 3 / 4 > 0 ? $1 * 3 / 4 : 1))); }
# crash_measure DIR -- CMD...: run CMD once, unkilled; sets n_events (files it
# created in or removed from DIR) and run_ms (how long it ran), for crash_trigger.
crash_measure() {
	local dir=$1
	shift 2
	read -r n_events run_ms < <(crash_run "count:$dir" -- "$@")
	[ "${n_events:-0}" -ge 6 ] || fail "$* made only ${n_events:-0} file events in $dir"
}
# crash_trigger DIR I MAXDELAY: a kill point for random run I, drawn from the
# measured run so that it falls inside the run on any machine: every fourth at a
# random moment of the first three quarters of its length (runs vary), the others
# up to MAXDELAY ms after a random file event but the last (the lock's removal,
# after which nothing is left to kill).
crash_trigger() {
	if (($2 % 4 == 0)); then
		echo "ms:$(ms_within "$run_ms")"
	else
		echo "events:$1:$((RANDOM % (n_events - 1) + 1)):$((RANDOM % ($3 + 1)))"
	fi
}
# crash_until_killed I MAXDELAY PREPARE ON_EXIT -- CMD...: run PREPARE TRY, then CMD
# with a kill point from crash_trigger (events in $CAIRN_REPO); while CMD completes
# before its kill, run ON_EXIT and try again, up to 4 tries: crash-run.py polls
# and can miss a temp pack that comes and goes between two looks, more so on a
# busy machine, so a drawn event may never be seen. Sets trigger and res (killed,
# or "exited 0" when no try was killed); any other outcome fails.
crash_until_killed() {
	local i=$1 delay=$2 prepare=$3 on_exit=$4 try
	shift 5
	for try in 1 2 3 4; do
		$prepare "$try"
		trigger=$(crash_trigger "$CAIRN_REPO" "$i" "$delay")
		res=$(crash_run "$trigger" -- "$@")
		echo "run $i.$try: $trigger: $res"
		case $res in
		killed) return 0 ;;
		"exited 0") $on_exit ;;
		*) fail "run $i ($trigger) $res: $*" ;;
		esac
	done
}
# s3_setup: a private Ceph RGW for this test on 127.0.0.1 (exit 77, saying why,
# when it cannot start), stopped at exit. Sets B (its bucket) and AWS (Debian's
# aws CLI pointed at it), and short client retries.
# fault_proxy: after s3_setup, start tests/integration/fault-proxy.py between
# cairn and the test's RGW, with the rule file $RULES ('[]': none; rules JSON
# sets new ones). cairn then talks to the proxy, $AWS to the server itself.
fault_proxy() {
	RULES="$W/rules.json"
	echo '[]' > "$RULES"
	python3 "$SRCDIR/tests/integration/fault-proxy.py" "$W/proxy.port" "$RGW_PORT" "$RULES" \
		"$W/proxy.log" 2> "$W/proxy.err" &
	cleanup_hooks+=("kill $! 2>/dev/null")
	for _ in $(seq 1 200); do
		[ -s "$W/proxy.port" ] && break
		sleep 0.05
	done
	[ -s "$W/proxy.port" ] || fail "the fault proxy did not start: $(cat "$W/proxy.err")"
	export AWS_ENDPOINT_URL="http://127.0.0.1:$(cat "$W/proxy.port")"
}
rules() { printf '%s\n' "$1" > "$RULES"; }
s3_setup() {
	. "$(dirname "${BASH_SOURCE[0]}")/../s3/rgw-launch.sh"
	local rc=0
	rgw_start "$W/rgw" || rc=$?
	[ "$rc" = 0 ] || exit "$rc"
	cleanup_hooks+=(rgw_stop)
	B=$S3_BUCKET
	AWS=(/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL")
	export CAIRN_S3_RETRY_BASE_MS=20 CAIRN_S3_RETRY_CAP_MS=200 CAIRN_S3_RETRIES=4
}
# placed_durably ROOT -- CMD...: run CMD under strace and check that what it
# placed under ROOT was placed durably (placed.py).
placed_durably() {
	local root=$1
	shift 2
	command -v strace > /dev/null || fail "strace missing (scripts/install-deps.sh test)"
	# LeakSanitizer cannot run under ptrace (the ASan build); the other tests
	# run the same commands untraced.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		strace -f -y -qq -o "$W/trace" -e trace=mkdir,mkdirat,fsync,fdatasync,rename,renameat,renameat2 \
		"$@" > "$W/placed.out" 2>&1 || fail "$*: $(cat "$W/placed.out")"
	python3 "$(dirname "${BASH_SOURCE[0]}")/placed.py" "$W/trace" "$root" > "$W/bad" ||
		fail "$* placed objects unsafely: $(cat "$W/bad")"
}
# fuse_setup: for tests of cairnfs (exit 77 only without /dev/fuse). Sets MNT,
# for mount_fs and umount_fs; a mount still up at exit is undone.
fuse_setup() {
	[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
	: "${CAIRNFS:?CAIRNFS must point to the cairnfs binary}"
	MNT="$W/mnt"
	mkdir -p "$MNT"
	fspid=
	cleanup_hooks+=('[ -z "$fspid" ] || { fusermount3 -u "$MNT" 2>/dev/null; kill $fspid 2>/dev/null; }')
	cleanup_hooks+=('! mountpoint -q "$MNT" || fusermount3 -u "$MNT"') # background mounts
}
# mount_fs [CAIRNFS-OPTION...]: mount $CAIRN_REPO on $MNT in the foreground
# (in the background of this shell), messages to $W/fs.log.
mount_fs() {
	"$CAIRNFS" -f "$@" "$CAIRN_REPO" "$MNT" 2>> "$W/fs.log" &
	fspid=$!
	wait_mounted
}
# wait_mounted: until $MNT is a mount point (30 s: a loaded machine is slow).
wait_mounted() {
	for _ in $(seq 600); do mountpoint -q "$MNT" && return 0; sleep 0.05; done
	fail "mount did not come up: $(tail -5 "$W/fs.log")"
}
# umount_daemon PID: unmount a cairnfs that put itself in the background (no
# job of this shell, so umount_fs cannot wait for it) and wait until it has
# exited: a daemon still shutting down must not overlap the next mount, or the
# removal of the work dir at exit.
umount_daemon() {
	fusermount3 -u "$MNT" || fail "cannot unmount the daemon $1: $(tail -3 "$W/fs.log")"
	for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	fail "cairnfs $1 still runs 30 s after its unmount"
}
# Unmount and check that the daemon exits 0 (under ASan, a leak makes it fail).
umount_fs() {
	fusermount3 -u "$MNT" || fail "cannot unmount"
	local rc=0
	wait "$fspid" || rc=$?
	fspid=
	[ "$rc" = 0 ] || fail "cairnfs exited with $rc: $(tail -5 "$W/fs.log")"
}
