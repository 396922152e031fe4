#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# S3 benchmark on a private Ceph RGW on 127.0.0.1 (tests/s3/rgw-launch.sh), in one
# run: the initial upload of a cairn repository by `cairn sync`, `aws s3 sync` and
# `rclone sync` (the same files), the requests of a no-change `cairn sync`, and
# `cp -a` of the whole snapshot out of a cairnfs mount of the bucket (cold cache)
# vs `restic mount` of a restic repository on the same server. Prints cairn's
# ratios. Not a test: timings never decide pass/fail.
#
# usage: bench/s3.sh [CORPUS_DIR]   (default: a copy of /usr/share)
# env:   CAIRN, CAIRNFS, WORK (default /tmp/cairn-bench-s3),
#        REPOS: a WORK of bench/ingest.sh whose cairn repository to upload,
#        CP_LIMIT: seconds a copy out of a mount may take (default 600); a copy cut
#        off there is compared by throughput (bytes copied per second)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
CAIRNFS=${CAIRNFS:-$PWD/build/fs/cairnfs}
WORK=${WORK:-/tmp/cairn-bench-s3}
for t in restic rclone /usr/bin/aws fusermount3 /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
[ -x "$CAIRN" ] && [ -x "$CAIRNFS" ] || { echo "build cairn first: ninja -C build"; exit 1; }

MNT="$WORK/mnt"
pid=
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[ -z "$pid" ] || wait "$pid" || true
	rgw_stop
}
fusermount3 -u "$MNT" 2>/dev/null || true
rm -rf "$WORK"
mkdir -p "$WORK" "$MNT"
. bench/corpus.sh "${1:-}"

# Four copies of the repository go to the server's memory store: room for them.
export MEMSTORE_BYTES=${MEMSTORE_BYTES:-$(( (5 * $(du -sb "$CORPUS" | cut -f1) >> 30) + 2 << 30 ))}
. "$SRC/tests/s3/rgw-launch.sh"
rgw_start "$WORK/rgw" || { echo "Ceph RGW did not start"; exit 1; }
trap cleanup EXIT
B=$S3_BUCKET
export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=bench CAIRN_CACHE_DIR="$WORK/cache"
export RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph
export RCLONE_CONFIG_RGW_ENDPOINT="$AWS_ENDPOINT_URL" RCLONE_CONFIG_RGW_ACCESS_KEY_ID="$S3_ACCESS_KEY"
export RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
if [ -n "${REPOS:-}" ]; then
	export CAIRN_REPO="$REPOS/cairn"
else
	export CAIRN_REPO="$WORK/cairn"
	echo "backing the corpus up with cairn (not timed)"
	"$CAIRN" init -q && "$CAIRN" backup -q "$CORPUS" >/dev/null
fi
echo "backing the corpus up with restic into the bucket (not timed)"
RESTIC=(restic -r "s3:$AWS_ENDPOINT_URL/$B/restic")
"${RESTIC[@]}" init -q && "${RESTIC[@]}" backup -q "$CORPUS" >/dev/null

# timed LABEL cmd...: wall seconds into $WORK/LABEL
timed() {
	local label=$1; shift
	sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	/usr/bin/time -f "%e" -o "$WORK/$label" "$@" >/dev/null 2>"$WORK/$label.err" ||
		{ echo "$label failed: $(tail -3 "$WORK/$label.err")"; exit 1; }
}
# What each tool uploads: the repository without index/, locks/ and tmp/ (local only).
timed up.cairn env CAIRN_S3_TRACE="$WORK/trace.first" "$CAIRN" sync "s3://$B/cairn"
timed up.aws /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" s3 sync --only-show-errors \
	--exclude 'index/*' --exclude 'locks/*' --exclude 'tmp/*' "$CAIRN_REPO" "s3://$B/awscli"
timed up.rclone rclone sync --transfers 8 --exclude '/index/**' --exclude '/locks/**' \
	--exclude '/tmp/**' "$CAIRN_REPO" "rgw:$B/rclone"
timed again.cairn env CAIRN_S3_TRACE="$WORK/trace.again" "$CAIRN" sync "s3://$B/cairn"
timed again.aws /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" s3 sync --only-show-errors \
	--exclude 'index/*' --exclude 'locks/*' --exclude 'tmp/*' "$CAIRN_REPO" "s3://$B/awscli"
timed again.rclone rclone sync --transfers 8 --exclude '/index/**' --exclude '/locks/**' \
	--exclude '/tmp/**' "$CAIRN_REPO" "rgw:$B/rclone"

# mount_cp TOOL: mount the bucket's repository, cp -a the snapshot out, timed.
mount_cp() {
	case $1 in
	cairn)
		rm -rf "$CAIRN_CACHE_DIR"
		"$CAIRNFS" -f "s3://$B/cairn" "$MNT" 2>"$WORK/daemon.err" &
		snap="$MNT/latest$CORPUS" ;;
	restic)
		"${RESTIC[@]}" mount "$MNT" >/dev/null 2>"$WORK/daemon.err" &
		snap="$MNT/snapshots/latest$CORPUS" ;;
	esac
	pid=$!
	for _ in $(seq 1200); do mountpoint -q "$MNT" && [ -e "$snap" ] && break; sleep 0.1; done
	mountpoint -q "$MNT" || { echo "$1: mount did not come up: $(cat "$WORK/daemon.err")"; exit 1; }
	rm -rf "$WORK/out"
	local start=$SECONDS rc=0
	sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	timeout "${CP_LIMIT:-600}" cp -a "$snap" "$WORK/out" 2>"$WORK/cp.$1.err" || rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 124 ] || { echo "cp -a from $1 failed: $(tail -3 "$WORK/cp.$1.err")"; exit 1; }
	echo "$((SECONDS - start)) $(du -sb "$WORK/out" | cut -f1) $rc" > "$WORK/cp.$1"
	fusermount3 -u "$MNT"
	wait "$pid" || true
	pid=
	diff -rq --no-dereference "$CORPUS" "$WORK/out" >/dev/null 2>&1 ||
		echo "note: $1's copy differs from the corpus (special files, or metadata not kept)"
	rm -rf "$WORK/out"
}
mount_cp cairn
mount_cp restic

t() { cat "$WORK/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '\n%-8s %18s %22s\n' tool "initial sync (s)" "no-change sync (s)"
for tool in cairn aws rclone; do
	printf '%-8s %18s %22s\n' "$tool" "$(t up.$tool)" "$(t again.$tool)"
done
echo "cairn sync requests: initial $(wc -l < "$WORK/trace.first"), no-change $(wc -l < "$WORK/trace.again")"
printf '%-8s %18s %14s %10s\n' tool "cp -a from S3 (s)" "bytes copied" "MB/s"
for tool in cairn restic; do
	read -r secs bytes rc < "$WORK/cp.$tool"
	printf '%-8s %18s %14s %10s%s\n' "$tool" "$secs" "$bytes" "$(ratio "$bytes" "$((secs * 1000000))")" \
		"$([ "$rc" = 124 ] && echo "  (cut off at ${CP_LIMIT:-600} s)")"
done
mbs() { local secs bytes rc; read -r secs bytes rc < "$WORK/cp.$1"; ratio "$bytes" "$secs"; }
echo
for other in aws rclone; do
	echo "cairn vs $other: initial sync $(ratio "$(t up.$other)" "$(t up.cairn)")x faster," \
		"no-change sync $(ratio "$(t again.$other)" "$(t again.cairn)")x faster"
done
echo "cairn vs restic: cp -a from an S3-backed mount $(ratio "$(mbs cairn)" "$(mbs restic)")x the throughput"
