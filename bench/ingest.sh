#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Ingest benchmark: cairn vs restic vs borg on the same corpus in the same run.
# Prints first-backup time, no-change backup time (page cache dropped, and again
# warm, as an hourly timer on a machine with memory to spare mostly finds it),
# repository size and peak RSS, and cairn's ratios against each; then the floor
# (reading the corpus cold with one reader) and the size of cairn's index per
# blob. Not a test: timings never decide pass/fail.
#
# usage: bench/ingest.sh [CORPUS_DIR]   (default: a copy of /usr/share)
# env:   CAIRN (default build/tools/cairn), WORK (default /tmp/cairn-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
WORK=${WORK:-/tmp/cairn-bench}
for t in restic borg /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
[ -x "$CAIRN" ] || { echo "build cairn first: meson setup build && ninja -C build"; exit 1; }

rm -rf "$WORK"; mkdir -p "$WORK"
. bench/corpus.sh "${1:-}"

export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export CAIRN_REPO="$WORK/cairn" RESTIC_REPOSITORY="$WORK/restic" BORG_REPO="$WORK/borg"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
"$CAIRN" init -q
restic init -q
borg init --encryption=repokey-blake2 "$BORG_REPO"

# run NAME LABEL cmd...: wall seconds, peak RSS (KiB) and user and system CPU
# seconds into $WORK/NAME.LABEL;
# the page cache is dropped first unless LABEL is "warm".
run() {
	local name=$1 label=$2; shift 2
	sync
	[ "$label" = warm ] || echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	/usr/bin/time -f "%e %M %U %S" -o "$WORK/$name.$label" "$@" >/dev/null 2>"$WORK/$name.$label.err" ||
		{ echo "$name $label failed:"; cat "$WORK/$name.$label.err"; exit 1; }
}
n=0
for tool in cairn restic borg; do
	case $tool in
	cairn) cmd=("$CAIRN" backup -q "$CORPUS") ;;
	restic) cmd=(restic backup -q "$CORPUS") ;;
	borg) cmd=(borg create --compression zstd,3 "::a{now:%s}-$((n++))" "$CORPUS") ;;
	esac
	run "$tool" first "${cmd[@]}"
	[ "$tool" = borg ] && cmd=(borg create --compression zstd,3 "::b{now:%s}" "$CORPUS")
	run "$tool" nochange "${cmd[@]}"
	[ "$tool" = borg ] && cmd=(borg create --compression zstd,3 "::c{now:%s}" "$CORPUS")
	run "$tool" warm "${cmd[@]}"
done

# The floor of any first backup: reading the files, cold, with one reader (tar
# through a pipe: GNU tar reads nothing when it writes to /dev/null itself).
run floor read bash -c 'tar -cf - "$1" | cat > /dev/null' floor "$CORPUS"

secs() { cut -d' ' -f1 "$WORK/$1.$2"; }
rss() { cut -d' ' -f2 "$WORK/$1.$2"; }
cpu() { awk '{ printf "%.2f", $3 + $4 }' "$WORK/$1.$2"; }
size() { du -sk "$WORK/$1" | cut -f1; }
# cairn's index/ is a local LMDB cache, rebuildable from the packs and never synced.
stored() { if [ "$1" = cairn ]; then echo $(( $(size cairn) - $(du -sk "$WORK/cairn/index" | cut -f1) )); else size "$1"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
peak() { local m=0 l v; for l in first nochange warm; do v=$(rss "$1" $l); m=$((v > m ? v : m)); done; echo $m; }

printf '\n%-8s %10s %12s %14s %10s %12s %16s %14s\n' tool "first (s)" "(CPU s)" \
	"no-change (s)" "warm (s)" "repo (MiB)" "w/o cache (MiB)" "peak RSS (MiB)"
for tool in cairn restic borg; do
	printf '%-8s %10s %12s %14s %10s %12d %16d %14d\n' "$tool" "$(secs $tool first)" \
		"$(cpu $tool first)" "$(secs $tool nochange)" "$(secs $tool warm)" \
		$(( $(size $tool) / 1024 )) $(( $(stored $tool) / 1024 )) $(( $(peak $tool) / 1024 ))
done
echo
blobs=$("$CAIRN" stats 2>/dev/null | sed -n 's/.*; \([0-9]*\) blobs indexed.*/\1/p')
index_bytes=$(stat -c %s "$WORK/cairn/index/data.mdb")
echo "floor: reading the corpus cold with one reader takes $(secs floor read) s;" \
	"cairn's first backup is $(ratio "$(secs cairn first)" "$(secs floor read)")x that"
echo "cairn's index: $index_bytes bytes for $blobs blobs," \
	"$(ratio "$index_bytes" "$blobs") bytes per blob"
for other in restic borg; do
	echo "cairn vs $other: first backup $(ratio "$(secs $other first)" "$(secs cairn first)")x faster," \
		"no-change $(ratio "$(secs $other nochange)" "$(secs cairn nochange)")x faster" \
		"($(ratio "$(secs $other warm)" "$(secs cairn warm)")x warm)," \
		"repository $(ratio "$(size cairn)" "$(size $other)")x the size" \
		"($(ratio "$(stored cairn)" "$(size $other)")x without the index cache)," \
		"peak RSS $(ratio "$(peak cairn)" "$(peak $other)")x"
done
