#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Restore benchmark: `cairn restore` (on every core, and on one) vs `restic
# restore` vs `borg extract` of the same corpus in the same run, each with the
# page cache dropped before it and writing into tmpfs, and the floor: `cp -a` of
# the corpus itself. Prints wall time and peak RSS, and cairn's ratios. Not a
# test: timings never decide pass/fail. Run as root (to drop the page cache).
#
# usage: bench/restore.sh [CORPUS_DIR]   (default: a copy of /usr/share)
# env:   CAIRN (default build/tools/cairn), WORK (default /tmp/cairn-bench-restore),
#        REPOS: a WORK of bench/ingest.sh (or of this script) whose repositories
#        to restore from instead of backing the corpus up again,
#        OUT (default /dev/shm/cairn-bench-out when it has room, else WORK/out),
#        BORG=0 to leave borg out (its extract of corpus B takes many minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
BORG=${BORG:-1}
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
WORK=${WORK:-/tmp/cairn-bench-restore}
for t in restic borg /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
[ -x "$CAIRN" ] || { echo "build cairn first: meson setup build && ninja -C build"; exit 1; }
mkdir -p "$WORK"
. bench/corpus.sh "${1:-}"
if [ -z "${OUT:-}" ]; then
	OUT="$WORK/out"
	shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
	need_kb=$(du -sk "$CORPUS" | cut -f1)
	[ "${shm_kb:-0}" -gt $((need_kb * 2)) ] && OUT=/dev/shm/cairn-bench-out
fi
trap 'rm -rf "$OUT"' EXIT

export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
R=${REPOS:-$WORK}
export CAIRN_REPO="$R/cairn" RESTIC_REPOSITORY="$R/restic" BORG_REPO="$R/borg"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
if [ -z "${REPOS:-}" ]; then
	echo "backing up the corpus with each tool (not timed)"
	rm -rf "$CAIRN_REPO" "$RESTIC_REPOSITORY" "$BORG_REPO"
	"$CAIRN" init -q && "$CAIRN" backup -q "$CORPUS" >/dev/null
	restic init -q && restic backup -q "$CORPUS" >/dev/null
	[ "$BORG" = 0 ] || { borg init --encryption=repokey-blake2 "$BORG_REPO" &&
		borg create --compression zstd,3 ::snap "$CORPUS"; }
fi
[ "$BORG" = 0 ] || ARCHIVE=$(borg list --last 1 --short "$BORG_REPO")

# run NAME cmd...: wall seconds and peak RSS (KiB) into $WORK/time.NAME, with the
# page cache dropped and OUT empty before, and OUT removed after.
run() {
	local name=$1; shift
	rm -rf "$OUT"; mkdir -p "$OUT"
	sync
	echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	/usr/bin/time -f "%e %M" -o "$WORK/time.$name" "$@" >/dev/null 2>"$WORK/time.$name.err" ||
		{ echo "$name failed:"; cat "$WORK/time.$name.err"; exit 1; }
	rm -rf "$OUT"
}
run floor cp -a "$CORPUS" "$OUT/copy"
run cairn "$CAIRN" restore -q latest --target "$OUT"
run cairn1 "$CAIRN" restore -q --threads 1 latest --target "$OUT"
run restic restic restore -q latest --target "$OUT"
if [ "$BORG" = 0 ]; then
	echo "- 0" > "$WORK/time.borg"
else
	run borg sh -c 'cd "$1" && borg extract "::$2"' sh "$OUT" "$ARCHIVE"
fi

secs() { cut -d' ' -f1 "$WORK/time.$1"; }
rss() { echo $(($(cut -d' ' -f2 "$WORK/time.$1") / 1024)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '\n%-22s %10s %15s\n' "restore" "wall (s)" "peak RSS (MiB)"
for t in floor cairn cairn1 restic borg; do
	case $t in
	floor) label="cp -a (floor)" ;;
	cairn) label="cairn ($(nproc) CPUs)" ;;
	cairn1) label="cairn --threads 1" ;;
	*) label=$t ;;
	esac
	printf '%-22s %10s %15s\n' "$label" "$(secs $t)" "$(rss $t)"
done
echo
echo "cairn restore: $(ratio "$(secs restic)" "$(secs cairn)")x restic's speed," \
	"$(ratio "$(secs borg)" "$(secs cairn)")x borg's, $(ratio "$(secs cairn)" "$(secs floor)")x the" \
	"time of cp -a (the floor); on one thread $(ratio "$(secs cairn1)" "$(secs floor)")x"
