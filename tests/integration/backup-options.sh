#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn backup beyond backup.sh: the live status line on a terminal, JSON status
# messages, SIGTERM/SIGINT, kill -9 and pack reuse, unreadable directories, files
# changing while read, sparse files, --exclude-file, --list (with and without
# --dry-run, text and JSON), --one-file-system, --parent,
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
ap.add_argument("--temp", default="",
                help="and a pack.tmp.* file in this directory, there for a second")
ap.add_argument("--linger", type=float, default=0, help="then this many seconds more")
ap.add_argument("--then", default="", help="then run this command (it must succeed)")
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
    if a.temp and not stable_temp():
        return False
    return True

# A temp pack there for a second: the pack the held file keeps from its
# flush. One of a pack still filling may be renamed into place the next moment.
temps_seen = {}
def stable_temp():
    now = time.monotonic()
    names = {f for f in os.listdir(a.temp) if f.startswith("pack.tmp.")}
    for f in list(temps_seen):
        if f not in names:
            del temps_seen[f]
    for f in names:
        temps_seen.setdefault(f, now)
    return any(now - t >= 1.0 for t in temps_seen.values())

deadline = time.monotonic() + 120
released = False
while True:
    if not released and ready():
        if a.linger:
            time.sleep(a.linger)
        if a.then and subprocess.call(a.then, shell=True) != 0:
            child.kill()
            sys.exit("hold.py: '%s' failed" % a.then)
        if a.signal:
            sig = getattr(signal, "SIG" + a.signal)
            child.send_signal(sig)
            # Release only once the signal was taken (no longer pending), so that
            # the command sees it before it can finish.
            while sig != signal.SIGKILL and time.monotonic() < deadline:
                with open("/proc/%d/status" % child.pid) as f:
                    pend = [int(l.split()[1], 16) for l in f if l.startswith(("ShdPnd", "SigPnd"))]
                if not any(p >> (sig - 1) & 1 for p in pend):
                    break
                time.sleep(0.01)
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

# ---- SIGTERM, SIGINT and SIGHUP during a backup ----------------------------
# One line, a failure exit, no snapshot; the repository checks clean and the
# next backup works.
for sig in TERM INT HUP; do
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
# The shim (torn.c) rewrites $G/log right after each read of its start, with
# the next letter and a new mtime: a writer racing the reader, deterministic.
# Changed once, the file is read again and stored as it is now, without a word.
G="$W/torn"
mkdir -p "$G"
head -c 3000000 /dev/zero | tr '\0' A > "$G/log"
# The shim needs no ASan runtime ahead of it.
torn=(env LD_PRELOAD="$TORN_SHIM" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
rc=0
"${torn[@]}" TORN_PATH="$G/log" TORN_CHANGES=1 \
	"$CAIRN" backup --json --threads 2 "$G" > "$O/g.json" 2> "$O/g.err" || rc=$?
[ "$rc" = 0 ] || fail "a file changed once failed the backup: $rc $(cat "$O/g.err")"
[ "$(head -c 1 "$G/log")" = B ] || fail "the shim did not rewrite the file"
"$CAIRN" dump latest "$G/log" | cmp - "$G/log" || fail "a file changed once is not stored as it is now"
[ "$(json_field "$O/g.json" partial)" = false ] || fail "a file read again made the snapshot partial"
"$CAIRN" ls --json latest "$G/log" | grep -q '"incomplete":false}' || fail "a file read again is flagged"
# Changed again while it is read again: stored as read the second time (B up
# to the first read's end, C after it: a mix), flagged, a partial snapshot
# (exit 3); its restore warns.
rm "$G/log"
head -c 3000000 /dev/zero | tr '\0' A > "$G/log"
rc=0
"${torn[@]}" TORN_PATH="$G/log" \
	"$CAIRN" backup --json --threads 2 "$G" > "$O/g.json" 2> "$O/g.err" || rc=$?
[ "$rc" = 3 ] || fail "a file changed twice: exit $rc: $(cat "$O/g.err")"
out_has "$O/g.err" "'$G/log' changed while it was read, twice"
[ "$(json_field "$O/g.json" partial)" = true ] || fail "a file changed twice: not partial: $(cat "$O/g.json")"
"$CAIRN" ls --json latest "$G/log" | grep -q '"size":3000000,.*"incomplete":true}' ||
	fail "a file changed twice is not flagged: $("$CAIRN" ls --json latest "$G/log")"
"$CAIRN" dump latest "$G/log" 2> /dev/null > "$O/g.dump" || [ $? = 3 ] || fail "dump of a flagged file"
[ "$(head -c 1 "$O/g.dump")$(tr -d BC < "$O/g.dump" | wc -c)" = B0 ] ||
	fail "a file changed twice is not stored as read the second time"
rc=0
"$CAIRN" restore latest --target "$O/g.r" "$G" > /dev/null 2> "$O/g.err" || rc=$?
[ "$rc" = 3 ] || fail "restore of a file changed twice: exit $rc"
out_has "$O/g.err" "incomplete copy of '$G/log'"

# ---- a file swapped for a FIFO after the scan --------------------------------
# The shim (tofifo.c) replaces $Q/swapped by a FIFO right before its open: no
# writer ever comes, so an open that waits for one never returns (SIGTERM does
# not end it either, hence SIGKILL). The backup goes on without it and says so.
Q="$W/tofifo"
mkdir -p "$Q"
echo swapped > "$Q/swapped"
echo kept > "$Q/kept"
rc=0
timeout -s KILL 120 env LD_PRELOAD="$TOFIFO_SHIM" TOFIFO_NAME=swapped \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$CAIRN" backup --threads 2 "$Q" > "$O/q.out" 2> "$O/q.err" || rc=$?
[ -p "$Q/swapped" ] || fail "the shim did not swap the file for a FIFO"
[ "$rc" != 137 ] || fail "backup hung opening a file swapped for a FIFO"
[ "$rc" = 0 ] || fail "a file swapped for a FIFO: exit $rc: $(cat "$O/q.err")"
out_has "$O/q.err" "'$Q/swapped' changed type during the backup"
[ "$(grep -c . "$O/q.err")" = 1 ] || fail "more than one line for a file swapped: $(cat "$O/q.err")"
"$CAIRN" ls latest "$Q" > "$O/q.ls"
grep -qx kept "$O/q.ls" || fail "the backup of a swapped file's directory lacks kept: $(cat "$O/q.ls")"
! grep -qx swapped "$O/q.ls" || fail "a file swapped for a FIFO is in the snapshot: $(cat "$O/q.ls")"

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

# ---- --list: what the backup does with each entry, and which rule excludes --
# With -n it is a check of the excludes that stores nothing; without, the same
# lines come from a real backup. The dry run must agree with the run after it.
L="$W/list"
mkdir -p "$L/cache" "$L/sub" "$L/keep"
echo same > "$L/same"
echo old > "$L/edit"
echo k > "$L/keep/k"
echo x > "$L/sub/a.tmp"
echo y > "$L/sub/b.log"
printf 'Signature: 8a477f597d28d172789f06886806bc55\n' > "$L/cache/CACHEDIR.TAG"
printf '# logs\n*.log\n' > "$O/list.excl"
LX=(--exclude '*.tmp' --exclude-file "$O/list.excl" --exclude-caches)
"$CAIRN" backup "${LX[@]}" "$L" > /dev/null
echo changed >> "$L/edit"
echo new > "$L/sub/new"
before=$(nsnaps)
"$CAIRN" backup -n --list "${LX[@]}" "$L" > "$O/list.out"
[ "$(nsnaps)" = "$before" ] || fail "backup -n --list wrote a snapshot"
# Only the lines of $L: the directories above it change with the rest of /tmp.
grep -F " $L" "$O/list.out" | sort > "$O/list.got"
sort > "$O/list.want" <<EOF
changed    $L
changed    $L/edit
changed    $L/sub
excluded   $L/cache (--exclude-caches)
excluded   $L/sub/a.tmp (--exclude '*.tmp')
excluded   $L/sub/b.log (--exclude-file $O/list.excl:2 '*.log')
new        $L/sub/new
unmodified $L/keep
unmodified $L/keep/k
unmodified $L/same
EOF
diff "$O/list.want" "$O/list.got" || fail "backup -n --list: $(cat "$O/list.out")"
out_has "$O/list.out" "dry run: no snapshot written"
# JSON: one verbose_status message per entry, the same as the text.
"$CAIRN" backup -n --list --json "${LX[@]}" "$L" > "$O/list.json"
python3 - "$O/list.json" "$L" "$O/list.got" <<'PY' || fail "backup -n --list --json: $(cat "$O/list.json")"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
got = []
for m in msgs:
    if m["message_type"] != "verbose_status" or not m["item"].startswith(sys.argv[2]):
        continue
    assert set(m) == {"message_type", "action", "item"} | ({"rule"} if m["action"] == "excluded" else set()), m
    line = "%-10s %s" % (m["action"], m["item"])
    got.append(line + (" (%s)" % m["rule"] if "rule" in m else ""))
want = open(sys.argv[3]).read().splitlines()
assert sorted(got) == want, (sorted(got), want)
assert msgs[-1]["message_type"] == "summary" and msgs[-1]["dry_run"] is True, msgs[-1]
PY
# The real backup lists the same and stores it; after it, nothing is new.
"$CAIRN" backup --list "${LX[@]}" "$L" > "$O/list.real"
grep -F " $L" "$O/list.real" | sort | diff "$O/list.want" - || fail "backup --list: $(cat "$O/list.real")"
[ "$(nsnaps)" = $((before + 1)) ] || fail "backup --list wrote no snapshot"
"$CAIRN" backup -n --list "${LX[@]}" "$L" | grep -F " $L" | grep -v '^excluded ' > "$O/list.after"
! grep -qv '^unmodified ' "$O/list.after" || fail "changed after a backup: $(cat "$O/list.after")"
[ "$(wc -l < "$O/list.after")" = 7 ] || fail "entries after a backup: $(cat "$O/list.after")"

# ---- --one-file-system -----------------------------------------------------
X="$W/xfs"
mkdir -p "$X/mnt"
echo here > "$X/here"
if mount -t tmpfs -o size=1M tmpfs "$X/mnt" 2> /dev/null; then
	cleanup_hooks+=("umount '$X/mnt' 2> /dev/null")
	echo inside > "$X/mnt/inside"
	"$CAIRN" backup --one-file-system "$X" > /dev/null
	"$CAIRN" ls -R latest "$X" | sed "s|^$X||" > "$O/x.ls"
	printf '/here\n/mnt\n' | cmp - "$O/x.ls" || fail "--one-file-system: $(cat "$O/x.ls")"
	"$CAIRN" backup -n --list --one-file-system "$X" > "$O/x.list"
	grep -qx "excluded   $X/mnt (--one-file-system)" "$O/x.list" || fail "--list -x: $(cat "$O/x.list")"
	"$CAIRN" backup "$X" > /dev/null
	"$CAIRN" ls -R latest "$X" | grep -qx "$X/mnt/inside" || fail "without -x the mount is missing"
	umount "$X/mnt"
else
	echo "note: cannot mount a tmpfs here, --one-file-system not tested"
fi

# ---- several paths, --tag, --host, --parent, snapshots filters -------------
# A second repository, so that snapshots and packs are few and known.
export CAIRN_REPO="$W/repo2"
init_repo --chunk-size 64K/128K/512K
P1="$W/p1/docs"
P2="$W/p2/docs"
mkdir -p "$P1" "$P2"
echo "first tree" > "$P1/note.txt"
echo "second tree, other content" > "$P2/note.txt"
head -c 2000000 /dev/urandom > "$P1/big.bin"
snap_id() { "$CAIRN" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])'; }
# Same base name under two roots: both keep their absolute paths, no collision.
"$CAIRN" backup --tag t1 --tag both --host hostA "$P2" "$P1" > /dev/null
s1=$(snap_id)
"$CAIRN" dump latest "$P1/note.txt" | cmp - "$P1/note.txt" || fail "dump of the first path"
"$CAIRN" dump latest "$P2/note.txt" | cmp - "$P2/note.txt" || fail "dump of the second path"
"$CAIRN" dump latest "$P1/big.bin" | cmp - "$P1/big.bin" || fail "dump of a multi-chunk file"
"$CAIRN" ls -R latest / > "$O/multi.ls"
for p in "$W" "$W/p1" "$P1" "$P1/note.txt" "$P1/big.bin" "$W/p2" "$P2" "$P2/note.txt"; do
	grep -qx "$p" "$O/multi.ls" || fail "$p missing from the snapshot: $(cat "$O/multi.ls")"
done
[ "$(grep -c "^$W/" "$O/multi.ls")" = 7 ] || fail "unexpected entries: $(cat "$O/multi.ls")"

echo "first tree, changed" > "$P1/note.txt"
"$CAIRN" backup --json --tag t2 --host hostA "$P1" "$P2" > "$O/p2.json"
s2=$(snap_id)
[ "$(json_field "$O/p2.json" files_changed)" = 1 ] || fail "default parent: $(cat "$O/p2.json")"
[ "$(json_field "$O/p2.json" files_unmodified)" = 2 ] || fail "default parent: $(cat "$O/p2.json")"
# --parent: compared with the first snapshot, not the latest one of this host.
"$CAIRN" backup --json --host hostA --parent "${s1:0:8}" "$P1" "$P2" > "$O/p3.json"
s3=$(snap_id)
[ "$(json_field "$O/p3.json" files_changed)" = 1 ] || fail "--parent: $(cat "$O/p3.json")"
"$CAIRN" backup --json --host hostA "$P1" "$P2" > "$O/p3b.json"
[ "$(json_field "$O/p3b.json" files_changed)" = 0 ] || fail "after --parent: $(cat "$O/p3b.json")"
s3b=$(snap_id)
# Another host has no parent: everything is new (and deduplicated).
"$CAIRN" backup --json --host hostB "$P1" > "$O/p4.json"
s4=$(snap_id)
[ "$(json_field "$O/p4.json" files_new)" = 2 ] || fail "other host: $(cat "$O/p4.json")"
[ "$(json_field "$O/p4.json" bytes_added)" -lt 10000 ] || fail "other host stored data again"

"$CAIRN" snapshots --json > "$O/snaps.json"
python3 - "$O/snaps.json" "$s1" "$s2" "$s3" "$s3b" "$s4" "$P1" "$P2" <<'PY' ||
import json, sys
s1, s2, s3, s3b, s4, p1, p2 = sys.argv[2:]
by = {s["id"]: s for s in json.load(open(sys.argv[1]))}
assert list(by) == [s1, s2, s3, s3b, s4], list(by)
assert by[s1]["paths"] == sorted([p1, p2]) and by[s4]["paths"] == [p1], by[s1]["paths"]
assert by[s1]["tags"] == ["t1", "both"] and by[s2]["tags"] == ["t2"], by[s1]["tags"]
assert [by[s]["hostname"] for s in by] == ["hostA"] * 4 + ["hostB"]
assert by[s1]["parent"] is None and by[s2]["parent"] == s1, by[s2]["parent"]
assert by[s3]["parent"] == s1 and by[s3b]["parent"] == s3, by[s3]["parent"]
assert by[s4]["parent"] is None
PY
	fail "snapshots --json: $(cat "$O/snaps.json")"
filter() { "$CAIRN" snapshots --json "$@" | python3 -c 'import json,sys; print(" ".join(s["short_id"] for s in json.load(sys.stdin)))'; }
[ "$(filter --host hostA)" = "${s1:0:8} ${s2:0:8} ${s3:0:8} ${s3b:0:8}" ] || fail "--host hostA: $(filter --host hostA)"
[ "$(filter --host hostB)" = "${s4:0:8}" ] || fail "--host hostB"
[ "$(filter --host nohost)" = "" ] || fail "--host nohost"
[ "$(filter --tag both)" = "${s1:0:8}" ] || fail "--tag both"
[ "$(filter --tag t1,both)" = "${s1:0:8}" ] || fail "--tag t1,both"
[ "$(filter --tag t1,t2)" = "" ] || fail "--tag t1,t2 must need both"
[ "$(filter --tag t1 --tag t2)" = "${s1:0:8} ${s2:0:8}" ] || fail "--tag t1 --tag t2: either"
[ "$(filter --path "$P2")" = "${s1:0:8} ${s2:0:8} ${s3:0:8} ${s3b:0:8}" ] || fail "--path P2"
[ "$(filter --path "$P1" --host hostB)" = "${s4:0:8}" ] || fail "--path P1 --host hostB"
"$CAIRN" snapshots --host hostA --tag both > "$O/snaps.txt"
grep -Eq "^${s1:0:8} +[0-9-]+ [0-9:]+ +hostA +t1,both +$P1" "$O/snaps.txt" ||
	fail "snapshots text: $(cat "$O/snaps.txt")"
grep -q "^1 snapshot$" "$O/snaps.txt" || fail "snapshots count line: $(cat "$O/snaps.txt")"
# Hosts and tags are 1 to 255 (1024) bytes without control characters: refused
# as bad usage, before anything is read or written.
n=$("$CAIRN" snapshots --json | grep -o '"id"' | wc -l)
expect_fail 2 "a host name must be 1 to 255 bytes" -- "$CAIRN" backup --host '' "$P1"
expect_fail 2 "a host name must be 1 to 255 bytes" -- "$CAIRN" backup --host "$(printf 'h%.0s' $(seq 256))" "$P1"
expect_fail 2 "a tag must be 1 to 1024 bytes" -- "$CAIRN" backup --tag '' "$P1"
for bad in $'\e[2J' $'\a' $'\r' $'\n' $'\x7f' $'\t' $'\xc2\x9b'; do
	expect_fail 2 "a host name 'h.*' holds a control character" -- "$CAIRN" backup --host "h$bad" "$P1"
	expect_fail 2 "a tag 't.*' holds a control character" -- "$CAIRN" backup --tag "t$bad" "$P1"
done
[ "$("$CAIRN" snapshots --json | grep -o '"id"' | wc -l)" = "$n" ] || fail "a refused backup wrote a snapshot"

# ---- ls -l, ls --json ------------------------------------------------------
"$CAIRN" ls -l "${s1:0:8}" "$P1" > "$O/ls-l"
size=$(stat -c %s "$P1/big.bin")
mt=$(date -d "@$(stat -c %Y "$P1/big.bin")" '+%Y-%m-%d %H:%M')
grep -Eq "^-rw-r--r-- root +root +$size $mt:[0-9]{2} big.bin$" "$O/ls-l" || fail "ls -l: $(cat "$O/ls-l")"
grep -Eq "^-rw-r--r-- root +root +11 [0-9-]+ [0-9:]+ note.txt$" "$O/ls-l" || fail "ls -l note: $(cat "$O/ls-l")"
[ "$(wc -l < "$O/ls-l")" = 2 ] || fail "ls -l lines: $(cat "$O/ls-l")"
"$CAIRN" ls --json "${s1:0:8}" "$P1" > "$O/ls.json"
python3 - "$O/ls.json" "$P1" "$size" "$(stat -c %i "$P1/big.bin")" <<'PY' || fail "ls --json: $(cat "$O/ls.json")"
import json, sys
path, p1, size, ino = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
e = [json.loads(l) for l in open(path).read().splitlines()]
assert [x["name"] for x in e] == ["big.bin", "note.txt"], e
big = e[0]
assert big["path"] == p1 + "/big.bin" and big["type"] == "file" and big["size"] == size, big
assert big["inode"] == ino and big["uid"] == 0 and big["user"] == "root" and big["extents"] > 1, big
assert big["permissions"] == "-rw-r--r--" and big["mode"] == 0o644, big
PY

# ---- cat pack ID and cat blob ID --------------------------------------------
# The pack header lists every blob; the data blob whose raw length is note.txt's
# is note.txt's content.
nsize=$(stat -c %s "$P2/note.txt")
found=0
for pack in $(find "$CAIRN_REPO/packs" -type f -printf '%f\n'); do
	"$CAIRN" cat pack "${pack:0:10}" > "$O/pack"
	[ -s "$O/pack" ] || fail "empty header listing of pack $pack"
	grep -Evq '^[0-9a-f]{64} (data|tree) offset [0-9]+ stored [0-9]+ raw [0-9]+$' "$O/pack" &&
		fail "cat pack: $(cat "$O/pack")"
	for id in $(awk -v n="$nsize" '$2 == "data" && $8 == n { print $1 }' "$O/pack"); do
		"$CAIRN" cat blob "$id" | cmp -s - "$P2/note.txt" && found=1
	done
done
[ "$found" = 1 ] || fail "cat blob: no blob holds note.txt"
expect_fail 1 "no blob matches" -- "$CAIRN" cat blob "$(printf 'f%.0s' $(seq 64))"

# ---- --compression LEVEL ---------------------------------------------------
# The same compressible data at levels 0 (stored raw), 1 and 19, each in a fresh
# repository: level 0 stores at least the data, and each higher level less.
C="$W/compressible"
mkdir -p "$C"
seq 1 100000 > "$C/numbers.txt"
csize=$(stat -c %s "$C/numbers.txt")
for level in 0 1 19; do
	export CAIRN_REPO="$W/repo-c$level"
	init_repo
	"$CAIRN" backup --json --compression $level "$C" > "$O/c$level.json"
done
c0=$(json_field "$O/c0.json" bytes_added)
c1=$(json_field "$O/c1.json" bytes_added)
c19=$(json_field "$O/c19.json" bytes_added)
[ "$c0" -ge "$csize" ] || fail "--compression 0 stored $c0 bytes of $csize"
[ "$c1" -lt $((csize / 2)) ] && [ "$c19" -lt "$c1" ] ||
	fail "--compression 1 and 19 stored $c1 and $c19 bytes of $csize"
export CAIRN_REPO="$W/repo"

# ---- kill -9 mid-way: the next backup reuses the packs already written -------
# The backup is killed once a pack of it is in packs/ and another one is being
# written in tmp/ (held at the file z/held, so it cannot finish first). One of its packs is then made unindexed, as a kill
# between a pack's rename and its index commit leaves it. The next backup must
# store only what those packs lack, index that pack, and clear the dead run's
# unfinished pack from tmp/.
export CAIRN_REPO="$W/repo-kill"
init_repo --chunk-size 64K/128K/512K --pack-size 1M
K="$W/kill"
mkdir -p "$K/z"
head -c 12000000 /dev/urandom > "$K/a.bin"
echo held > "$K/z/held"
rc=0
hold --packs "$CAIRN_REPO/packs" --temp "$CAIRN_REPO/tmp" --signal KILL "$K/z/held" "$O/kill" -- \
	"$CAIRN" backup --threads 2 "$K" || rc=$?
[ "$rc" = 137 ] || fail "the held backup was not killed: $rc $(cat "$O/kill.err")"
[ "$(nsnaps)" = 0 ] || fail "a killed backup wrote a snapshot"
written=$(find "$CAIRN_REPO/packs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
[ "$written" -ge 1000000 ] || fail "no pack was written before the kill: $written bytes"
last=$(find "$CAIRN_REPO/packs" -type f | sort | tail -1)
mv "$last" "$O/pack.aside"
"$CAIRN" rebuild-index > /dev/null
mv "$O/pack.aside" "$last"
temps=$(find "$CAIRN_REPO/tmp" -name 'pack.tmp.*' | wc -l)
[ "$temps" -ge 1 ] || fail "the killed backup left no unfinished pack in tmp/"
"$CAIRN" check > "$O/check" 2>&1 || fail "check after kill -9: $(cat "$O/check")"
"$CAIRN" backup --json --threads 2 "$K" > "$O/k2.json" 2> "$O/k2.err" || fail "backup after kill -9"
added=$(json_field "$O/k2.json" bytes_added)
# Without reuse, added alone would be the whole 12 MB plus overhead.
[ $((added + written)) -lt $((12000000 + 262144)) ] ||
	fail "the next backup stored $added bytes again although $written were in packs"
[ -z "$(find "$CAIRN_REPO/tmp" -name 'pack.tmp.*')" ] ||
	fail "unfinished packs left in tmp/ ($temps after the kill): $(ls "$CAIRN_REPO/tmp")"
# The temp files of single object writes killed long ago go too; a recent one
# (a write under way, maybe of a writer that holds no lock) stays.
for t in .tmp.AbC123 put.tmp.dEf456; do
	echo killed > "$CAIRN_REPO/tmp/$t"
	touch -d '2 hours ago' "$CAIRN_REPO/tmp/$t"
done
echo recent > "$CAIRN_REPO/tmp/.tmp.GhI789"
"$CAIRN" backup --threads 2 "$K" > /dev/null 2> "$O/k3.err" || fail "backup with old temp files: $(cat "$O/k3.err")"
[ ! -e "$CAIRN_REPO/tmp/.tmp.AbC123" ] && [ ! -e "$CAIRN_REPO/tmp/put.tmp.dEf456" ] ||
	fail "old temp files of object writes left in tmp/: $(ls -a "$CAIRN_REPO/tmp")"
[ -e "$CAIRN_REPO/tmp/.tmp.GhI789" ] || fail "a recent temp file was removed"
rm "$CAIRN_REPO/tmp/.tmp.GhI789"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check --read-data: $(cat "$O/check")"
"$CAIRN" dump latest "$K/a.bin" | cmp - "$K/a.bin" || fail "a.bin differs after the kill"
# A live backup's unfinished pack is not touched by another backup (which still
# sees the dead run's lock): the first one completes.
echo more >> "$K/z/held"
head -c 200000 /dev/urandom > "$K/b.bin" # less than a pack: its temp pack stays
mkdir -p "$W/other"
echo other > "$W/other/file"
cat > "$O/concurrent.sh" <<SH
set -e
ls "$CAIRN_REPO/tmp" | grep '^pack\.tmp\.' > "$O/temps"
"$CAIRN" backup "$W/other" > /dev/null
cd "$CAIRN_REPO/tmp" && ls \$(cat "$O/temps") > /dev/null
SH
hold --temp "$CAIRN_REPO/tmp" --then "bash $O/concurrent.sh" "$K/z/held" "$O/live" -- \
	"$CAIRN" backup --threads 2 "$K" || fail "concurrent backups: $(cat "$O/live.err")"
"$CAIRN" check --read-data > "$O/check" 2>&1 || fail "check --read-data: $(cat "$O/check")"
echo "kill -9: $written bytes in packs reused, $added added, $temps temp packs removed"

# ---- peak RSS does not grow with the data ---------------------------------
# Two trees with the same entries, one with 4x the data in each file: the peak
# RSS of their backups (fresh repositories, small chunks so that both fill the
# read buffers) must stay about the same. Under ASan, freed memory waits in a
# quarantine that grows with the number of allocations: switched off here.
asan_opts="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
for scale in 1 4; do
	T="$W/rss$scale"
	mkdir -p "$T"
	for f in 1 2 3 4 5 6 7 8; do
		head -c $((scale * 4000000)) /dev/urandom > "$T/f$f"
	done
	export CAIRN_REPO="$W/repo-rss$scale"
	init_repo --chunk-size 64K/128K/512K
	ASAN_OPTIONS=$asan_opts /usr/bin/time -f %M -o "$O/rss$scale" \
		"$CAIRN" backup --threads 2 "$T" > /dev/null
	rm -rf "$T" "$CAIRN_REPO"
done
small=$(cat "$O/rss1")
large=$(cat "$O/rss4")
echo "peak RSS: $small KiB for 32 MB, $large KiB for 128 MB"
[ "$large" -lt $((small * 3 / 2 + 16384)) ] ||
	fail "peak RSS grew with the data: $small KiB -> $large KiB"
export CAIRN_REPO="$W/repo"
echo ok
