#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Objects per small backup: N incremental backups of a tree in which a few files
# change each time, with cairn, restic and borg in one run. Counts the objects
# each backup adds to the repository (on S3 each is a request and a minimum
# billed size): packs (borg: segments) and all objects, the median pack size,
# and the packs left after a prune (borg: compact). The floor is the goal of
# issue 17: one data pack and one tree pack per backup. Not a test.
#
# usage: bench/objects.sh [N]   (default 30 backups)
# env:   CAIRN (default build/tools/cairn), WORK (default /tmp/cairn-bench-objects)
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
WORK=${WORK:-/tmp/cairn-bench-objects}
N=${1:-30}
for t in restic borg; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
[ -x "$CAIRN" ] || { echo "build cairn first: meson setup build && ninja -C build"; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK/src"
export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export CAIRN_REPO="$WORK/cairn" RESTIC_REPOSITORY="$WORK/restic" BORG_REPO="$WORK/borg"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
"$CAIRN" init -q
restic init -q
borg init --encryption=repokey-blake2 "$BORG_REPO"

# A tree of 50 directories of 40 files; each backup changes 5 files and adds one.
python3 bench/corpus-b.py "$WORK/src" 50 40 2000
files=("$WORK"/src/*/f00*)
# packs TOOL: the pack files (borg: segments) in TOOL's repository, one per line.
packs() {
	case $1 in
	cairn) find "$CAIRN_REPO/packs" -type f ;;
	restic) find "$RESTIC_REPOSITORY/data" -type f ;;
	borg) find "$BORG_REPO/data" -type f -name '[0-9]*' ;;
	esac
}
objects() {
	case $1 in
	cairn) find "$CAIRN_REPO"/{packs,indexes,snapshots} -type f | wc -l ;;
	restic) find "$RESTIC_REPOSITORY"/{data,index,snapshots} -type f | wc -l ;;
	borg) find "$BORG_REPO/data" -type f | wc -l ;;
	esac
}
backup() {
	case $1 in
	cairn) "$CAIRN" backup -q "$WORK/src" ;;
	restic) restic backup -q "$WORK/src" ;;
	borg) borg create --compression zstd,3 "::b$2" "$WORK/src" ;;
	esac
}
for t in cairn restic borg; do backup $t 0 >/dev/null; done
declare -A p0 o0
for t in cairn restic borg; do
	p0[$t]=$(packs $t | wc -l)
	o0[$t]=$(objects $t)
done
for i in $(seq 1 "$N"); do
	for k in 0 1 2 3 4; do
		printf 'change %d\n' "$i" >> "${files[(i * 5 + k) % ${#files[@]}]}"
	done
	printf 'new %d\n' "$i" > "$WORK/src/d0000/new$i"
	for t in cairn restic borg; do backup $t "$i" >/dev/null; done
done
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
printf '\n%-8s %18s %20s %20s %20s\n' tool "packs per backup" "objects per backup" \
	"median pack (KB)" "packs after prune"
declare -A per
for t in cairn restic borg; do
	np=$(packs $t | wc -l) no=$(objects $t)
	med=$(packs $t | xargs stat -c %s | median)
	case $t in
	cairn) "$CAIRN" prune -q >/dev/null ;;
	restic) restic prune -q >/dev/null ;;
	borg) borg compact "$BORG_REPO" >/dev/null 2>&1 || true ;;
	esac
	per[$t]=$(awk -v a=$((np - p0[$t])) -v n="$N" 'BEGIN { printf "%.2f", a / n }')
	printf '%-8s %18s %20s %20s %20s\n' $t "${per[$t]}" \
		"$(awk -v a=$((no - o0[$t])) -v n="$N" 'BEGIN { printf "%.2f", a / n }')" \
		$((med / 1000)) "$(packs $t | wc -l)"
done
printf '%-8s %18s\n' floor 2
echo
echo "cairn: ${per[cairn]} packs per small backup (floor 2: one of data, one of trees);" \
	"restic ${per[restic]}, borg ${per[borg]}"
