#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A repository in S3: `cairn -r s3://…` against `restic -r s3:…` on one private
# Ceph RGW on 127.0.0.1 (tests/s3/rgw-launch.sh), the same corpus, in one run:
# first backup, no-change backup, restore with cold caches (page cache dropped,
# cairn's and restic's local caches emptied), restore with warm local caches,
# and for reference a restore from a local copy of the cairn repository (made by
# `cairn sync --from`). For each: wall seconds, the ratio to restic, and the
# requests of each tool as the server counted them (RGW's usage log, one bucket
# per tool), by operation; cairn's own count of a backup's requests (--json)
# beside them. Then the repository sizes in the buckets and cairn's local disk
# (its cache directory). Not a test: timings never decide pass/fail.
#
# usage: bench/s3.sh [CORPUS_DIR]   (default: a copy of /usr/share, bench/corpus.sh)
# env:   CAIRN, WORK (default /tmp/cairn-bench-s3), CAIRN_CACHE_SIZE (cairn's default
#        when unset)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
CAIRN=${CAIRN:-$PWD/build/tools/cairn}
WORK=${WORK:-/tmp/cairn-bench-s3}
for t in restic /usr/bin/aws radosgw-admin python3; do
	command -v "$t" >/dev/null || { echo "missing $t: bash scripts/install-deps.sh bench"; exit 1; }
done
[ -x "$CAIRN" ] || { echo "build cairn first: ninja -C build"; exit 1; }
[ "$(id -u)" = 0 ] || echo "note: not root, the page cache cannot be dropped"

rm -rf "$WORK"
mkdir -p "$WORK"
. bench/corpus.sh "${1:-}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# Two repositories of the corpus go to the server's memory store: room for them.
export MEMSTORE_BYTES=${MEMSTORE_BYTES:-$(( (3 * $(du -sb "$CORPUS" | cut -f1) >> 30) + 2 << 30 ))}
# The usage log counts every request by bucket and operation; flushed each second.
export RGW_EXTRA_CONF="rgw enable usage log = true
rgw usage log tick interval = 1
rgw usage log flush threshold = 1"
. "$SRC/tests/s3/rgw-launch.sh"
rgw_start "$WORK/rgw" || { echo "Ceph RGW did not start"; exit 1; }
trap rgw_stop EXIT
AWS=(/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL")
for b in cairn restic; do "${AWS[@]}" s3api create-bucket --bucket "$b" >/dev/null; done

export CAIRN_PASSWORD=benchmark RESTIC_PASSWORD=benchmark
export CAIRN_CACHE_DIR="$WORK/cache" RESTIC_CACHE_DIR="$WORK/restic-cache"
export CAIRN_REPO="s3://cairn/repo"
RESTIC=(restic -r "s3:$AWS_ENDPOINT_URL/restic/repo")
"$CAIRN" init -q
"${RESTIC[@]}" init -q
# init calibrates scrypt's N to the first power of two whose derivation takes 100
# ms or more, and the no-change backup pays one derivation: say which N it got.
echo "cairn's key: scrypt $("$CAIRN" key list | grep -o 'N=2^[0-9]*')"

# usage_total: "bucket operation ops" for every bucket and operation so far.
usage_total() {
	sleep 3 # the gateway flushes its usage log every second
	radosgw-admin -c "$RGW_DIR/ceph.conf" usage show --show-log-entries=true 2>/dev/null |
		python3 -c '
import json, sys
tot = {}
for e in json.load(sys.stdin).get("entries", []):
    for b in e.get("buckets", []):
        for c in b.get("categories", []):
            k = (b.get("bucket") or "-", c["category"])
            tot[k] = tot.get(k, 0) + c.get("ops", 0)
for (b, c), n in sorted(tot.items()):
    print(b, c, n)'
}
# requests BEFORE AFTER BUCKET: "total (op n, ...)" of BUCKET between two totals.
requests() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        b, c, n = line.split()
        d[(b, c)] = int(n)
    return d
a, b, bucket = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
diff = {c: n - a.get((bk, c), 0) for (bk, c), n in b.items() if bk == bucket}
diff = {c: n for c, n in diff.items() if n}
print(sum(diff.values()), "(" + ", ".join("%s %d" % kv for kv in sorted(diff.items())) + ")")
PY
}
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
# step LABEL TOOL BUCKET cmd...: run cmd, timed, with its requests counted;
# sets $WORK/LABEL.TOOL.{secs,req,out}.
step() {
	local label=$1 tool=$2 bucket=$3 t0 rc=0
	shift 3
	usage_total > "$WORK/usage.before"
	drop_caches
	t0=$EPOCHREALTIME
	"$@" > "$WORK/$label.$tool.out" 2> "$WORK/$label.$tool.err" || rc=$?
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", b - a }' > "$WORK/$label.$tool.secs"
	[ "$rc" = 0 ] || { echo "$label with $tool failed: $(tail -3 "$WORK/$label.$tool.err")"; exit 1; }
	usage_total > "$WORK/usage.after"
	requests "$WORK/usage.before" "$WORK/usage.after" "$bucket" > "$WORK/$label.$tool.req"
	echo "$label $tool: $(cat "$WORK/$label.$tool.secs") s, $(cat "$WORK/$label.$tool.req")"
}
same_tree() { # TOOL DIR: the restore in DIR holds the corpus
	diff -r --no-dereference -q "$CORPUS" "$2$CORPUS" > "$WORK/diff.$1" 2>&1 ||
		echo "note: $1's restore differs from the corpus: $(head -3 "$WORK/diff.$1")"
	rm -rf "$2"
}

step first cairn cairn "$CAIRN" backup --json --host bench "$CORPUS"
step first restic restic "${RESTIC[@]}" backup -q --host bench "$CORPUS"
cache_after_backup=$(du -sb "$CAIRN_CACHE_DIR" | cut -f1)
step again cairn cairn "$CAIRN" backup --json --host bench "$CORPUS"
step again restic restic "${RESTIC[@]}" backup -q --host bench "$CORPUS"

rm -rf "$CAIRN_CACHE_DIR" "$RESTIC_CACHE_DIR"
step cold cairn cairn "$CAIRN" restore latest --target "$WORK/r"
same_tree cairn "$WORK/r"
step cold restic restic "${RESTIC[@]}" restore latest --target "$WORK/r"
same_tree restic "$WORK/r"
step warm cairn cairn "$CAIRN" restore latest --target "$WORK/r"
same_tree cairn "$WORK/r"
step warm restic restic "${RESTIC[@]}" restore latest --target "$WORK/r"
same_tree restic "$WORK/r"
cache_after_restore=$(du -sb "$CAIRN_CACHE_DIR" | cut -f1)

"$CAIRN" sync -q --from "$CAIRN_REPO" -r "$WORK/local"
step local cairn none "$CAIRN" -r "$WORK/local" restore latest --target "$WORK/r"
same_tree local "$WORK/r"

# ---- the report -------------------------------------------------------------
s() { cat "$WORK/$1.secs"; }
n() { cut -d' ' -f1 "$WORK/$1.req"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
bucket_size() { "${AWS[@]}" s3 ls --recursive --summarize "s3://$1/" | sed -n 's/.*Total Size: //p'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
json_req() { grep -o '"requests":{[^}]*}' "$WORK/$1.cairn.out" | tail -1; }

printf '\n%-16s %9s %9s %15s %14s %15s\n' step "cairn s" "restic s" "restic/cairn" "cairn req" "restic req"
for st in first again cold warm; do
	printf '%-16s %9s %9s %14sx %14s %15s\n' "$st" "$(s $st.cairn)" "$(s $st.restic)" \
		"$(ratio "$(s $st.restic)" "$(s $st.cairn)")" "$(n $st.cairn)" "$(n $st.restic)"
done
printf '%-16s %9s\n' "local (cairn)" "$(s local.cairn)"
echo
for st in first again cold warm; do
	echo "$st: cairn $(cat "$WORK/$st.cairn.req")"
	echo "$st: restic $(cat "$WORK/$st.restic.req")"
done
echo "cairn's own count, first backup: $(json_req first)"
echo "cairn's own count, no-change backup: $(json_req again)"
echo
echo "goals: first backup $(ratio "$(s first.restic)" "$(s first.cairn)")x restic's speed (>= 2)," \
	"no-change $(ratio "$(s again.restic)" "$(s again.cairn)")x (>= 5)," \
	"cold restore $(ratio "$(s cold.restic)" "$(s cold.cairn)")x (>= 1.5)," \
	"warm restore $(ratio "$(s warm.cairn)" "$(s local.cairn)")x the local one (<= 1.3)"
for st in first again cold warm; do
	echo "requests, $st: cairn/restic $(ratio "$(n $st.cairn)" "$(n $st.restic)") (<= 0.2)"
done
echo
echo "in the bucket: cairn $(mib "$(bucket_size cairn)"), restic $(mib "$(bucket_size restic)")"
echo "cairn's local disk (cache dir, budget ${CAIRN_CACHE_SIZE:-1 GiB by default}):" \
	"$(mib "$cache_after_backup") after the backups, $(mib "$cache_after_restore") after the restores;" \
	"restic's cache $(mib "$(du -sb "$RESTIC_CACHE_DIR" | cut -f1)")"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
