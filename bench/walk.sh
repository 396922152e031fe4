#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Walks over corpus B (1,000,000 files of 100 bytes in 1,000 directories,
# bench/corpus-b.sh) in a cairnfs mount: does the daemon's tree cache survive a
# big walk, and what does its memory come to? For the default cache and one
# big enough for every tree, on a fresh mount each:
#   find 1     find over the snapshot, page cache dropped first
#   find 2     find again at once (the kernel answers most of it itself)
#   find 3     find again after dropping the kernel's caches (dentries, inodes,
#              listings), so that every listing comes from the daemon's caches
#   RSS        the daemon's peak RSS, and its nodes (entries the kernel holds)
# then the "hot set" line: a few directories used again and again (proven by
# three rounds of use with other walks between), one walk over everything, and
# the hot set once more with the kernel's caches dropped: its time, and how many
# trees the daemon had to load for it (CAIRN_LOG_LEVEL=debug counts). Not a
# test: timings never decide pass/fail.
#
# usage: bench/walk.sh [CORPUS_B_DIR]   (default: generated in WORK)
# env:   CAIRN, CAIRNFS, WORK (default /tmp/cairn-bench-walk), REPO (a repository
#        holding a backup of the corpus as its latest snapshot, password "bench";
#        default: backed up into WORK), BIG (the big cache, default 4G),
#        HOT_ONLY (set: only the hot set line)
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
CAIRNFS=${CAIRNFS:-$PWD/build/fs/cairnfs}
WORK=${WORK:-/tmp/cairn-bench-walk}
BIG=${BIG:-4G}
[ -x "$CAIRN" ] && [ -x "$CAIRNFS" ] || { echo "build cairn first: ninja -C build"; exit 1; }
[ -c /dev/fuse ] || { echo "no /dev/fuse"; exit 1; }
MNT="$WORK/mnt"
pid=
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[ -z "$pid" ] || wait "$pid" || true
}
trap cleanup EXIT
mkdir -p "$WORK" "$MNT"
CORPUS=${1:-$WORK/corpus-b}
[ -d "$CORPUS" ] || bench/corpus-b.sh "$CORPUS"
CORPUS=$(realpath "$CORPUS")
export CAIRN_PASSWORD=bench CAIRN_REPO=${REPO:-$WORK/repo}
if [ -z "${REPO:-}" ] && [ ! -d "$CAIRN_REPO" ]; then
	"$CAIRN" init -q
	/usr/bin/time -f "backup of corpus B: %e s, peak RSS %M KiB" "$CAIRN" backup -q "$CORPUS" >/dev/null
fi

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
walk() { # DIR...: wall seconds of find over them
	local s=$EPOCHREALTIME
	find "$@" -printf '%y %s %T@\n' | wc -l >/dev/null
	awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}
mount_fs() { # [OPTIONS]: mount, with the debug log in $WORK/daemon.log
	CAIRN_LOG_LEVEL=debug "$CAIRNFS" -f "$@" "$CAIRN_REPO" "$MNT" 2>"$WORK/daemon.log" &
	pid=$!
	for _ in $(seq 600); do mountpoint -q "$MNT" && [ -e "$MNT/latest$CORPUS" ] && return 0; sleep 0.1; done
	echo "mount did not come up: $(tail -3 "$WORK/daemon.log")"; exit 1
}
umount_fs() { # prints the daemon's peak RSS in MiB
	awk '/^VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$pid/status"
	fusermount3 -u "$MNT"
	wait "$pid" || true
	pid=
}
tree_loads() { sed -n 's/.*tree cache: [0-9]* hits, \([0-9]*\) misses.*/\1/p' "$WORK/daemon.log"; }

S="$MNT/latest$CORPUS"
echo "corpus: $CORPUS, $(nproc) cores"
[ -n "${HOT_ONLY:-}" ] ||
	printf '\n%-14s %8s %8s %8s %14s\n' cache "find 1" "find 2" "find 3" "peak RSS (MiB)"
for cache in 256M "$BIG"; do
	[ -z "${HOT_ONLY:-}" ] || break
	mount_fs -o "cache_size=$cache"
	drop
	a=$(walk "$S")
	b=$(walk "$S")
	drop
	c=$(walk "$S")
	printf '%-14s %8s %8s %8s %14s\n' "$cache" "$a" "$b" "$c" "$(umount_fs)"
done

# The hot set: 100 directories (about 42 MB of parsed trees, which fit in the
# main part of the default tree cache).
dirs() { for i in $(seq "$1" "$2"); do printf '%s/d%04d\n' "$S" "$i"; done; } # as corpus-b.sh names them
mapfile -t hot < <(dirs 0 99)
# hot_run FINAL: the hot set proven (used, then 100 other directories walked,
# three times), one walk over everything, then (FINAL=1) the hot set again, timed;
# sets t and loads (the trees the daemon loaded in all).
hot_run() {
	mount_fs -o xattrs=always # no walk of its own at mount: the counts are the walks'
	for round in 1 2 3; do
		drop; walk "${hot[@]}" >/dev/null
		drop; walk $(dirs $((round * 100)) $((round * 100 + 99))) >/dev/null
	done
	drop; walk "$S" >/dev/null
	if [ "$1" = 1 ]; then
		drop; t=$(walk "${hot[@]}")
	fi
	umount_fs >/dev/null
	loads=$(tree_loads)
}
hot_run 0
without=$loads
hot_run 1
echo
echo "hot set (${#hot[@]} directories) after a walk over everything: ${t} s," \
	"$((loads - without)) trees loaded again for it"
