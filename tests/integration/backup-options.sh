#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn backup beyond backup.sh: the live status line on a terminal, JSON status
# messages, SIGTERM/SIGINT, kill -9 and pack reuse, unreadable directories, files
# changing while read, sparse files, --exclude-file, --one-file-system, --parent,
# --compression, --tag/--host, several paths in one snapshot, peak RSS, and the
# read commands (ls -l/--json, dump, cat blob/pack, snapshots filters).
#
# A backup is kept mid-way without timing: hold.py takes a write lease on one
# file, so the backup's open() of it blocks until the lease is released, and
# releases it once what it waits for was seen (status lines, a pack file).
. "$(dirname "$0")/lib.sh"

json_field() { # FILE KEY: a number or string value from the last summary line
	grep '"message_type":"summary"' "$1" | tail -1 | grep -o "\"$2\":[^,}]*" | cut -d: -f2- | tr -d '"'
}
nsnaps() { ls "$CAIRN_REPO/snapshots" | wc -l; }
out_has() { grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(cat "$1")"; }

cat > "$W/hold.py" <<'PY'
# hold.py [options] HELD OUT -- CMD...: run CMD while holding a write lease on the
# file HELD, so that CMD blocks when it opens HELD (the backup stays mid-way, with
# no timing involved). Output (pty or stdout) goes to OUT, stderr to OUT.err
# unless --pty. When the condition holds, optionally signal CMD, then release the
# lease. Exits with CMD's exit status (128+N when killed by signal N).
import argparse, fcntl, os, pty, select, signal, struct, subprocess, sys, termios, time

ap = argparse.ArgumentParser()
ap.add_argument("--pty", type=int, default=0, help="run on a terminal this many columns wide")
ap.add_argument("--status", type=int, default=0, help="wait for this many distinct status lines")
ap.add_argument("--want", action="append", default=[], help="and a status line containing this")
ap.add_argument("--packs", default="", help="and a file under this directory")
ap.add_argument("--linger", type=float, default=0, help="then this many seconds more")
ap.add_argument("--signal", default="", help="then send this signal (TERM, INT, KILL)")
ap.add_argument("held")
ap.add_argument("out")
ap.add_argument("cmd", nargs="+")
a = ap.parse_args()

F_SETLEASE = 1024
broken = []
signal.signal(signal.SIGIO, lambda s, f: broken.append(1))
hfd = os.open(a.held, os.O_RDONLY)
fcntl.fcntl(hfd, F_SETLEASE, fcntl.F_WRLCK)

if a.pty:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, a.pty, 0, 0))
    child = subprocess.Popen(a.cmd, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
    os.close(slave)
    src = master
else:
    err = open(a.out + ".err", "wb")
    child = subprocess.Popen(a.cmd, stdout=subprocess.PIPE, stderr=err)
    src = child.stdout.fileno()

data = b""
def statuses():
    if a.pty:
        parts = data.replace(b"\n", b"\r").split(b"\r")
        return {p.replace(b"\x1b[K", b"") for p in parts if b"ETA" in p}
    return {l for l in data.split(b"\n") if b'"message_type":"status"' in l}

def ready():
    if not broken:
        return False  # the command is not blocked on the held file yet
    st = statuses()
    if len(st) < a.status:
        return False
    if any(not any(w.encode() in l for l in st) for w in a.want):
        return False
    if a.packs and not any(f for _, _, fs in os.walk(a.packs) for f in fs):
        return False
    return True

deadline = time.monotonic() + 120
released = False
while True:
    if not released and ready():
        if a.linger:
            time.sleep(a.linger)
        if a.signal:
            child.send_signal(getattr(signal, "SIG" + a.signal))
        fcntl.fcntl(hfd, F_SETLEASE, fcntl.F_UNLCK)
        released = True
    if time.monotonic() > deadline:
        child.kill()
        sys.exit("hold.py: timed out (released=%s, broken=%s, statuses=%d)" %
                 (released, bool(broken), len(statuses())))
    r, _, _ = select.select([src], [], [], 0.05)
    if r:
        try:
            chunk = os.read(src, 65536)
        except OSError:  # EIO: the pty's other side is closed
            chunk = b""
        if not chunk:
            break
        data += chunk
rc = child.wait()
open(a.out, "wb").write(data)
if not released:
    sys.exit("hold.py: the command ended before the condition held")
sys.exit(128 - rc if rc < 0 else rc)
PY
hold() { python3 "$W/hold.py" "$@"; }

init_repo --chunk-size 64K/128K/512K --pack-size 1M
O="$W/o"
mkdir -p "$O"
SRC="$W/src"
mkdir -p "$SRC/a" "$SRC/z"
for i in 1 2 3; do echo "file $i" > "$SRC/a/f$i"; done
HELD="$SRC/z/held"
echo held > "$HELD"

# ---- the status line on a terminal ----------------------------------------
# Refreshed while the backup waits for the held file: files and bytes of the
# total, rate, ETA, errors, the file being read and the last finished directory.
hold --pty 300 --status 2 --want "last dir $SRC/a" "$HELD" "$O/tty" -- \
	"$CAIRN" backup --threads 2 "$SRC" || fail "backup on a terminal: $(cat -v "$O/tty")"
tr '\r' '\n' < "$O/tty" | sed 's/\x1b\[K//g' | grep 'ETA' | sort -u > "$O/tty.lines"
[ "$(wc -l < "$O/tty.lines")" -ge 2 ] || fail "status line not refreshed: $(cat "$O/tty.lines")"
re="^\[[0-9]+:[0-9]{2}\] +[0-9.]+%  [0-9]+/[0-9]+ files  [0-9.]+ [KMG]?i?B/[0-9.]+ [KMG]?i?B  "
re+="[0-9.]+ [KMG]?i?B/s  ETA [0-9:?]+  0 errors  reading $SRC/.*  last dir $SRC/a$"
grep -Eq "$re" "$O/tty.lines" || fail "no complete status line: $(cat "$O/tty.lines")"
grep -Eq "^snapshot [0-9a-f]{8} saved" "$O/tty" || fail "no summary on the terminal"

# ---- no terminal, no --json: the summary only ------------------------------
# Held for 1.5 s (six refresh periods of a terminal), so a status line would show.
echo more >> "$HELD"
hold --linger 1.5 "$HELD" "$O/plain" -- "$CAIRN" backup --threads 2 "$SRC" ||
	fail "plain backup: $(cat "$O/plain.err")"
[ ! -s "$O/plain.err" ] || fail "stderr without a terminal: $(cat -v "$O/plain.err")"
[ "$(wc -l < "$O/plain")" = 3 ] || fail "more than the summary: $(cat -v "$O/plain")"
grep -q '^files: ' "$O/plain" && grep -q '^read ' "$O/plain" &&
	grep -Eq '^snapshot [0-9a-f]{8} saved$' "$O/plain" || fail "summary: $(cat "$O/plain")"

# ---- --json: status messages, then the summary -----------------------------
echo more >> "$HELD"
hold --status 2 "$HELD" "$O/json" -- "$CAIRN" backup --json --threads 2 "$SRC" ||
	fail "json backup: $(cat "$O/json.err")"
[ ! -s "$O/json.err" ] || fail "stderr with --json: $(cat "$O/json.err")"
python3 - "$O/json" "$SRC" <<'PY' || fail "JSON lines: $(cat "$O/json")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
src = sys.argv[2]
msgs = [json.loads(l) for l in lines]  # every line is one JSON object
status = [m for m in msgs if m["message_type"] == "status"]
assert len(status) >= 2, "fewer than 2 status messages"
keys = {"seconds_elapsed", "percent_done", "files_done", "files_total", "bytes_done",
        "bytes_total", "total_complete", "bytes_per_second", "seconds_remaining", "errors",
        "current_file", "last_dir"}
for m in status:
    assert keys <= m.keys(), "missing keys %s" % (keys - m.keys())
    assert m["files_done"] <= m["files_total"] and m["errors"] == 0, m
assert any(m["current_file"].startswith(src + "/") and m["last_dir"] == src + "/a"
           for m in status), "no status naming the file being read and the last directory"
assert msgs[-1]["message_type"] == "summary" and msgs[-1]["files_changed"] == 1, msgs[-1]
assert all(m["message_type"] == "status" for m in msgs[:-1])
PY

# ---- SIGTERM and SIGINT during a backup ------------------------------------
# One line, a failure exit, no snapshot; the repository checks clean and the
# next backup works.
for sig in TERM INT; do
	echo "$sig" >> "$HELD"
	before=$(nsnaps)
	rc=0
	hold --signal $sig "$HELD" "$O/sig" -- "$CAIRN" backup --threads 2 "$SRC" || rc=$?
	[ "$rc" = 1 ] || fail "SIG$sig: exit $rc: $(cat "$O/sig.err")"
	[ "$(wc -l < "$O/sig.err")" = 1 ] || fail "SIG$sig: not one line: $(cat "$O/sig.err")"
	out_has "$O/sig.err" "backup failed: interrupted"
	[ ! -s "$O/sig" ] || fail "SIG$sig: a summary was printed: $(cat "$O/sig")"
	[ "$(nsnaps)" = "$before" ] || fail "SIG$sig: a snapshot was written"
	"$CAIRN" check > "$O/check" 2>&1 || fail "check after SIG$sig: $(cat "$O/check")"
	"$CAIRN" backup --json "$SRC" > "$O/after.json" || fail "backup after SIG$sig"
	[ "$(json_field "$O/after.json" files_changed)" = 1 ] || fail "after SIG$sig: $(cat "$O/after.json")"
done

# ---- an unreadable directory -----------------------------------------------
# As an unprivileged user (root reads everything): a warning naming it, exit 3,
# a partial snapshot that still has the rest.
if command -v setpriv > /dev/null && [ "$(id -u)" = 0 ]; then
	U="$W/unreadable"
	mkdir -p "$U/closed" "$U/open"
	echo hidden > "$U/closed/x"
	echo visible > "$U/open/y"
	chmod -R a+rwX "$W"
	chmod 000 "$U/closed"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ \
		"$CAIRN" backup --json "$U" > "$O/u.json" 2> "$O/u.err" || rc=$?
	[ "$rc" = 3 ] || fail "unreadable directory: exit $rc: $(cat "$O/u.err")"
	out_has "$O/u.err" "cannot open directory '$U/closed'"
	[ "$(wc -l < "$O/u.err")" = 1 ] || fail "more than the warning: $(cat "$O/u.err")"
	[ "$(json_field "$O/u.json" partial)" = true ] || fail "not partial: $(cat "$O/u.json")"
	[ "$(json_field "$O/u.json" errors)" = 1 ] || fail "errors: $(cat "$O/u.json")"
	"$CAIRN" snapshots > "$O/snaps"
	grep -q "(partial)" "$O/snaps" || fail "snapshots does not mark it partial: $(cat "$O/snaps")"
	"$CAIRN" ls -R latest "$U" > "$O/u.ls"
	grep -qx "$U/closed" "$O/u.ls" && grep -qx "$U/open/y" "$O/u.ls" ||
		fail "partial snapshot lacks entries: $(cat "$O/u.ls")"
	! grep -q "$U/closed/x" "$O/u.ls" || fail "content of the closed directory listed"
	chmod 755 "$U/closed"
fi

# ---- a file that changes while it is read ----------------------------------
# 32 MiB take far longer to read than the 1 ms between two appends.
G="$W/grow"
mkdir -p "$G"
head -c 33554432 /dev/urandom > "$G/log"
python3 - "$G/log" "$G/stop" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
while not os.path.exists(sys.argv[2]):
    os.write(fd, b"x")
    time.sleep(0.001)
PY
appender=$!
cleanup_hooks+=("kill $appender 2>/dev/null")
rc=0
"$CAIRN" backup --json --threads 2 "$G" > "$O/g.json" 2> "$O/g.err" || rc=$?
touch "$G/stop"
wait "$appender"
[ "$rc" = 0 ] || fail "a growing file failed the backup: $rc $(cat "$O/g.err")"
out_has "$O/g.err" "'$G/log' changed while it was read"
[ "$(json_field "$O/g.json" warnings)" -ge 1 ] || fail "no warning counted: $(cat "$O/g.json")"
[ "$(json_field "$O/g.json" partial)" = false ] || fail "a changed file made the snapshot partial"

# ---- a sparse file does not bloat the repository ---------------------------
S="$W/sparse"
mkdir -p "$S"
truncate -s 1G "$S/disk.img"
for off in 0 262144 524287; do # KiB: start, middle, last KiB
	head -c 1024 /dev/urandom | dd of="$S/disk.img" bs=1024 seek=$off conv=notrunc status=none
done
packs_before=$(du -sb "$CAIRN_REPO/packs" | cut -f1)
"$CAIRN" backup --json "$S" > "$O/s.json"
packs_after=$(du -sb "$CAIRN_REPO/packs" | cut -f1)
[ $((packs_after - packs_before)) -lt 1048576 ] ||
	fail "a 1 GiB sparse file with 3 KiB of data grew the packs by $((packs_after - packs_before))"
[ "$(json_field "$O/s.json" bytes_added)" -lt 1048576 ] || fail "sparse: $(cat "$O/s.json")"
"$CAIRN" ls -l latest "$S/disk.img" | grep -q " 1073741824 " || fail "sparse file size not kept"
{ "$CAIRN" dump latest "$S/disk.img" || true; } | head -c 1024 > "$O/first" # SIGPIPE
head -c 1024 "$S/disk.img" | cmp - "$O/first" || fail "sparse file: first data block differs"

# ---- --exclude-file --------------------------------------------------------
E="$W/excl"
mkdir -p "$E/cachey" "$E/sub"
echo keep > "$E/keep.txt"
echo log > "$E/x.log"
echo c > "$E/cachey/c"
echo o > "$E/sub/deep.o"
echo s > "$E/sub/kept.c"
printf '# build output\n\n**/*.o\n*.log\r\n%s/cachey\n' "$E" > "$O/excludes"
"$CAIRN" backup --exclude-file "$O/excludes" "$E" > /dev/null
"$CAIRN" ls -R latest "$E" | sed "s|^$E||" > "$O/e.ls"
printf '/keep.txt\n/sub\n/sub/kept.c\n' | cmp - "$O/e.ls" || fail "--exclude-file: $(cat "$O/e.ls")"
expect_fail 2 "cannot read pattern file" -- "$CAIRN" backup --exclude-file "$W/missing" "$E"

# ---- --one-file-system -----------------------------------------------------
X="$W/xfs"
mkdir -p "$X/mnt"
echo here > "$X/here"
if mount -t tmpfs -o size=1M tmpfs "$X/mnt" 2> /dev/null; then
	cleanup_hooks+=("umount '$X/mnt'")
	echo inside > "$X/mnt/inside"
	"$CAIRN" backup --one-file-system "$X" > /dev/null
	"$CAIRN" ls -R latest "$X" | sed "s|^$X||" > "$O/x.ls"
	printf '/here\n/mnt\n' | cmp - "$O/x.ls" || fail "--one-file-system: $(cat "$O/x.ls")"
	"$CAIRN" backup "$X" > /dev/null
	"$CAIRN" ls -R latest "$X" | grep -qx "$X/mnt/inside" || fail "without -x the mount is missing"
	umount "$X/mnt"
else
	echo "note: cannot mount a tmpfs here, --one-file-system not tested"
fi
echo ok
