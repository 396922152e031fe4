#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mount benchmark: cairnfs vs `restic mount` vs `borg mount` on the same corpus in
# the same run. Times `find` over the mounted snapshot and `cp -a` of the whole
# snapshot out of the mount, each on a fresh mount with the page cache dropped,
# and prints the daemons' peak RSS and cairn's ratios; then one large file (a
# tar of the corpus) read from a cairnfs mount against `cairn dump` of it. Not a
# test: timings never decide pass/fail.
#
# usage: bench/mount.sh [CORPUS_DIR]   (default: a copy of /usr/share)
# env:   CAIRN, CAIRNFS (default build/tools/cairn, build/fs/cairnfs),
#        WORK (default /tmp/cairn-bench-mount), CACHE (cairnfs cache_size, default 256M),
#        REPOS: a WORK of bench/ingest.sh whose repositories to mount instead of
#        backing the corpus up again (bench/run.sh: the same corpus and run),
#        OUT: where cp -a writes (default: under /dev/shm when it has room, so
#        that the disk's write speed does not cap what is measured: the mount),
#        BIG: the large file (default: a tar of the corpus in WORK, backed up
#        as a snapshot of its own after the other measurements)
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN=${CAIRN:-$PWD/build/tools/cairn} # also for timed scripts
CAIRNFS=${CAIRNFS:-$PWD/build/fs/cairnfs}
WORK=${WORK:-/tmp/cairn-bench-mount}
CACHE=${CACHE:-256M}
for t in restic borg fusermount3 /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
/usr/bin/python3 -c 'import llfuse' 2>/dev/null || /usr/bin/python3 -c 'import pyfuse3' 2>/dev/null ||
	{ echo "borg mount needs python3-llfuse: bash scripts/install-deps.sh bench"; exit 1; }
[ -x "$CAIRN" ] && [ -x "$CAIRNFS" ] ||
	{ echo "build cairn first: meson setup build && ninja -C build"; exit 1; }
[ -c /dev/fuse ] || { echo "no /dev/fuse"; exit 1; }

MNT="$WORK/mnt"
if [ -z "${OUT:-}" ]; then
	OUT="$WORK/out"
	shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
	[ "${shm_kb:-0}" -gt $((3 * 1024 * 1024)) ] && OUT=/dev/shm/cairn-bench-out
fi
pid=
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[ -z "$pid" ] || wait "$pid" || true
	rm -rf "$OUT"
}
trap cleanup EXIT
fusermount3 -u "$MNT" 2>/dev/null || true
rm -rf "$WORK"; mkdir -p "$WORK" "$MNT"
. bench/corpus.sh "${1:-}"

export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
R=${REPOS:-$WORK}
export CAIRN_REPO="$R/cairn" RESTIC_REPOSITORY="$R/restic" BORG_REPO="$R/borg"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
if [ -z "${REPOS:-}" ]; then
	echo "backing up the corpus with each tool (not timed)"
	"$CAIRN" init -q && "$CAIRN" backup -q "$CORPUS" >/dev/null
	restic init -q && restic backup -q "$CORPUS" >/dev/null
	borg init --encryption=repokey-blake2 "$BORG_REPO" &&
		borg create --compression zstd,3 ::snap "$CORPUS"
fi
ARCHIVE=$(borg list --last 1 --short "$BORG_REPO")

# mount TOOL: start its daemon in the foreground (pid in $pid), wait for the mount,
# and set $SNAP to the corpus inside the mounted snapshot.
mount_tool() {
	case $1 in
	cairn)
		"$CAIRNFS" -f -o "cache_size=${2:-$CACHE}" "$CAIRN_REPO" "$MNT" 2>"$WORK/daemon.err" &
		SNAP="$MNT/latest$CORPUS" ;;
	restic)
		restic mount "$MNT" >/dev/null 2>"$WORK/daemon.err" &
		SNAP="$MNT/snapshots/latest$CORPUS" ;;
	borg)
		borg mount -f "::$ARCHIVE" "$MNT" 2>"$WORK/daemon.err" &
		SNAP="$MNT${CORPUS}" ;;
	esac
	pid=$!
	for _ in $(seq 600); do mountpoint -q "$MNT" && [ -e "$SNAP" ] && return 0; sleep 0.1; done
	echo "$1: mount did not come up: $(cat "$WORK/daemon.err")"; exit 1
}
# unmount TOOL LABEL: record the daemon's peak RSS (KiB) and stop it.
unmount_tool() {
	awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" > "$WORK/$1.$2.rss"
	fusermount3 -u "$MNT"
	wait "$pid" || true
	pid=
}
# timed TOOL LABEL SCRIPT DIR: a cold page cache, wall seconds of the bash SCRIPT
# run with $1 = DIR, $2 = the output directory.
timed() {
	local tool=$1 label=$2 script=$3 dir=$4
	sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	/usr/bin/time -f "%e" -o "$WORK/$tool.$label" bash -c "$script" _ "$dir" "$OUT" \
		>/dev/null 2>"$WORK/$tool.$label.err" ||
		{ echo "$tool $label failed: $(tail -3 "$WORK/$tool.$label.err")"; exit 1; }
}
# measure TOOL LABEL SCRIPT [CACHE]: timed on a fresh mount of TOOL's snapshot.
measure() {
	mount_tool "$1" "${4:-}"
	timed "$1" "$2" "$3" "$SNAP"
	unmount_tool "$1" "$2"
}
FIND='find "$1" -printf "%y %s %T@\n" | wc -l'
COPY='cp -a "$1" "$2"'

echo "output of cp -a: $OUT"
rm -rf "$OUT"
# The floor: the same commands on the corpus itself (local file system, cold cache).
timed plain find "$FIND" "$CORPUS"
timed plain cp "$COPY" "$CORPUS"
rm -rf "$OUT"
for tool in cairn restic borg; do
	echo "measuring $tool"
	measure "$tool" find "$FIND"
	measure "$tool" cp "$COPY"
	diff -rq --no-dereference "$CORPUS" "$OUT" >/dev/null 2>&1 ||
		echo "note: $tool's copy differs from the corpus (special files, or metadata not kept)"
	rm -rf "$OUT"
done
# The daemon's memory follows its cache: the copy once more with a quarter of it.
SMALL=$(( $(numfmt --from=iec "$CACHE") / 4 ))
measure cairn cp-small "$COPY" "$SMALL"
rm -rf "$OUT"

# One large file: read from the local disk (the floor), by `cairn dump`, and
# from a cairnfs mount, each with the page cache dropped.
BIG=${BIG:-}
if [ -z "$BIG" ]; then
	mkdir -p "$WORK/big"
	BIG="$WORK/big/corpus.tar"
	tar cf "$BIG" -C "$(dirname "$CORPUS")" "$(basename "$CORPUS")"
fi
BIG=$(realpath "$BIG")
echo "measuring a large file: $BIG ($(du -h "$BIG" | cut -f1))"
"$CAIRN" backup -q "$BIG" >/dev/null
timed plain big 'cat "$1" >/dev/null' "$BIG"
timed cairn dump '"$CAIRN" dump latest "$1" >/dev/null' "$BIG"
CORPUS="$BIG" mount_tool cairn # waits for latest$CORPUS
timed cairn big 'cat "$1" >/dev/null' "$MNT/latest$BIG"
unmount_tool cairn big

secs() { cat "$WORK/$1.$2"; }
rss() { local a b; a=$(cat "$WORK/$1.find.rss"); b=$(cat "$WORK/$1.cp.rss"); echo $(( (a > b ? a : b) / 1024 )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }

printf '\n%-8s %10s %10s %20s\n' tool "find (s)" "cp -a (s)" "daemon peak RSS (MiB)"
printf '%-8s %10s %10s %20s\n' "(corpus)" "$(secs plain find)" "$(secs plain cp)" -
for tool in cairn restic borg; do
	printf '%-8s %10s %10s %20s\n' "$tool" "$(secs $tool find)" "$(secs $tool cp)" "$(rss $tool)"
done
echo
for other in restic borg; do
	echo "cairn vs $other: find $(ratio "$(secs $other find)" "$(secs cairn find)")x faster," \
		"cp -a $(ratio "$(secs $other cp)" "$(secs cairn cp)")x faster," \
		"peak RSS $(ratio "$(rss cairn)" "$(rss $other)")x"
done
echo "cairn's cp -a takes $(ratio "$(secs cairn cp)" "$(secs plain cp)")x the time of cp -a of the corpus itself"
echo "cairnfs peak RSS: $(rss cairn) MiB with cache_size=$CACHE," \
	"$(( $(cat "$WORK/cairn.cp-small.rss") / 1024 )) MiB with cache_size=$(numfmt --to=iec "$SMALL")"
mb=$(( $(stat -c %s "$BIG") / 1000000 ))
mbs() { awk -v b="$mb" -v s="$1" 'BEGIN { if (s > 0) printf "%.0f", b / s; else print "-" }'; }
echo "large file ($mb MB): local disk $(secs plain big) s ($(mbs "$(secs plain big)") MB/s)," \
	"cairn dump $(secs cairn dump) s ($(mbs "$(secs cairn dump)") MB/s)," \
	"cairnfs $(secs cairn big) s ($(mbs "$(secs cairn big)") MB/s)"
echo "cairnfs reads it at $(ratio "$(secs cairn dump)" "$(secs cairn big)")x the speed of cairn dump"
