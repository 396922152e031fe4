#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Corpus B of issue 17: 1,000,000 files of 100 bytes in 1,000 directories, each
# file's bytes its own (so nothing deduplicates), the same on every run.
#
# usage: bench/corpus-b.sh DIR [DIRS [FILES_PER_DIR]]   (defaults 1000, 1000)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [DIRS [FILES_PER_DIR]]" >&2; exit 2; }
mkdir -p "$1"
python3 - "$1" "${2:-1000}" "${3:-1000}" <<'PY'
import hashlib, os, sys
root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(dirs):
    path = os.path.join(root, "d%04d" % d)
    os.makedirs(path, exist_ok=True)
    for f in range(files):
        # 100 bytes: a digest of the file's number, spelled out in hex, and a newline.
        h = hashlib.sha512(b"%d/%d" % (d, f)).hexdigest()[:99] + "\n"
        with open(os.path.join(path, "f%04d" % f), "w") as out:
            out.write(h)
PY
echo "corpus B: $1 ($(find "$1" -type f | wc -l) files in $(find "$1" -mindepth 1 -type d | wc -l) directories)"
