#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# All comparisons on one corpus in one run: ingest (bench/ingest.sh), then the
# mounts of the repositories it made (bench/mount.sh), then S3 (bench/s3.sh).
# Not a test: timings never decide pass/fail. Run as root on an idle machine.
#
# usage: bench/run.sh [CORPUS_DIR]   (default: a copy of /usr/share)
# env:   WORK (default /tmp/cairn-bench-all), and those of the three scripts
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/cairn-bench-all}
mkdir -p "$WORK"
CORPUS=${1:-}
if [ -z "$CORPUS" ]; then
	CORPUS="$WORK/corpus"
	[ -d "$CORPUS" ] || cp -a /usr/share "$CORPUS"
fi
echo "== $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores)"
echo "== ingest"
BASE=$WORK # the prefix assignments below are made left to right
WORK="$BASE/ingest" bash bench/ingest.sh "$CORPUS"
echo "== mount"
REPOS="$BASE/ingest" WORK="$BASE/mount" bash bench/mount.sh "$CORPUS"
echo "== s3"
REPOS="$BASE/ingest" WORK="$BASE/s3" bash bench/s3.sh "$CORPUS"
