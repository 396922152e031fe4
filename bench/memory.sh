#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Memory benchmark: peak RSS of a first and of a no-change backup with cairn,
# restic and borg of the same corpus in one run, against the floor (tar reading
# every file into /dev/null, which holds nothing); then, for cairn alone, the
# peak RSS of backup, restore, prune and a `find` over the mount on the whole
# corpus and on a tenth of it, and from the two the memory per file. Not a
# test. Run as root (the page cache is dropped before each step).
#
# usage: bench/memory.sh [CORPUS_DIR]   (default: bench/corpus-b.py's million
#        files of 100 bytes, made once in WORK/corpus-b)
# env:   CAIRN, CAIRNFS (default build/tools/cairn, build/fs/cairnfs),
#        WORK (default /tmp/cairn-bench-memory), OUT (restores; default in /dev/shm),
#        REUSE=1: keep the three tools' backups of an earlier run in WORK (their
#        repositories and figures) and run only cairn's per-file part
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
CAIRNFS=${CAIRNFS:-$PWD/build/fs/cairnfs}
WORK=${WORK:-/tmp/cairn-bench-memory}
OUT=${OUT:-/dev/shm/cairn-bench-memory-out}
for t in restic borg fusermount3 /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
[ -x "$CAIRN" ] && [ -x "$CAIRNFS" ] || { echo "build cairn first"; exit 1; }
mkdir -p "$WORK"
if [ -z "${1:-}" ] && [ ! -d "$WORK/corpus-b" ]; then
	echo "making corpus B (a million files of 100 bytes) in $WORK/corpus-b"
	python3 bench/corpus-b.py "$WORK/corpus-b"
fi
. bench/corpus.sh "${1:-$WORK/corpus-b}"
MNT="$WORK/mnt"
mkdir -p "$MNT"
pid=
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[ -z "$pid" ] || wait "$pid" || true
	rm -rf "$OUT"
}
trap cleanup EXIT

export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
# run NAME cmd...: peak RSS (KiB) and wall seconds into $WORK/NAME, page cache dropped.
run() {
	local name=$1; shift
	sync
	echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	/usr/bin/time -f "%M %e" -o "$WORK/$name" "$@" >/dev/null 2>"$WORK/$name.err" ||
		{ echo "$name failed:"; cat "$WORK/$name.err"; exit 1; }
}
kib() { cut -d' ' -f1 "$WORK/$1"; }
mib() { echo $(($(kib "$1") / 1024)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# ---- backups: cairn, restic, borg ---------------------------------------
export CAIRN_REPO="$WORK/cairn" RESTIC_REPOSITORY="$WORK/restic" BORG_REPO="$WORK/borg"
if [ "${REUSE:-0}" != 1 ]; then
	rm -rf "$WORK/cairn" "$WORK/restic" "$WORK/borg"
	"$CAIRN" init -q
	restic init -q
	borg init --encryption=repokey-blake2 "$BORG_REPO"
	run floor tar -cf /dev/null "$CORPUS"
	for pass in first nochange; do
		run "cairn.$pass" "$CAIRN" backup -q "$CORPUS"
		run "restic.$pass" restic backup -q "$CORPUS"
		run "borg.$pass" borg create --compression zstd,3 "::$pass" "$CORPUS"
	done
fi
printf '\n%-8s %22s %26s\n' tool "first backup (MiB, s)" "no-change backup (MiB, s)"
for t in floor cairn restic borg; do
	if [ $t = floor ]; then
		printf '%-8s %15s %6s %19s %6s\n' "tar" "$(mib floor)" "$(cut -d' ' -f2 "$WORK/floor")" - -
		continue
	fi
	printf '%-8s %15s %6s %19s %6s\n' $t "$(mib $t.first)" "$(cut -d' ' -f2 "$WORK/$t.first")" \
		"$(mib $t.nochange)" "$(cut -d' ' -f2 "$WORK/$t.nochange")"
done
echo
for t in restic borg; do
	echo "cairn's peak RSS: first backup $(ratio "$(kib cairn.first)" "$(kib $t.first)")x $t's," \
		"no-change $(ratio "$(kib cairn.nochange)" "$(kib $t.nochange)")x"
done

# ---- cairn per file: the whole corpus and a tenth of it --------------------
# The tenth: the first tenth of the corpus' top-level entries, in its own repository.
mapfile -t top < <(find "$CORPUS" -mindepth 1 -maxdepth 1 | LC_ALL=C sort)
tenth=("${top[@]:0:$(((${#top[@]} + 9) / 10))}")
files_all=$(find "$CORPUS" -type f | wc -l)
files_tenth=$(find "${tenth[@]}" -type f | wc -l)
mount_find() {
	"$CAIRNFS" -f "$CAIRN_REPO" "$MNT" 2>"$WORK/mount.err" & pid=$!
	for _ in $(seq 300); do mountpoint -q "$MNT" && [ -e "$MNT/latest" ] && break; sleep 0.1; done
	find "$MNT/latest/" >/dev/null
	awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" > "$WORK/$1"
	fusermount3 -u "$MNT"
	wait "$pid"; pid=
}
cp "$WORK/cairn.first" "$WORK/c.all.backup"
cp "$WORK/cairn.nochange" "$WORK/c.all.nochange"
rm -rf "$WORK/cairn-tenth"
CAIRN_REPO="$WORK/cairn-tenth" "$CAIRN" init -q
for part in all tenth; do
	export CAIRN_REPO="$WORK/cairn"
	if [ $part = tenth ]; then
		export CAIRN_REPO="$WORK/cairn-tenth"
		run "c.$part.backup" "$CAIRN" backup -q "${tenth[@]}"
		run "c.$part.nochange" "$CAIRN" backup -q "${tenth[@]}"
	fi
	rm -rf "$OUT"
	run "c.$part.restore" "$CAIRN" restore -q latest --target "$OUT"
	rm -rf "$OUT"
	run "c.$part.prune" "$CAIRN" prune -q
	sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	mount_find "c.$part.mount"
done
printf '\n%-22s %14s %14s %16s\n' "cairn" "all (MiB)" "a tenth (MiB)" "per file (bytes)"
for op in backup nochange restore prune mount; do
	a=$(kib c.all.$op) b=$(kib c.tenth.$op)
	printf '%-22s %14s %14s %16s\n' "$op" $((a / 1024)) $((b / 1024)) \
		"$(awk -v a="$a" -v b="$b" -v n=$((files_all - files_tenth)) \
			'BEGIN { printf "%.0f", (a - b) * 1024 / n }')"
done
echo "($files_all files in all, $files_tenth in the tenth; mount: find over cairnfs, VmHWM)"
