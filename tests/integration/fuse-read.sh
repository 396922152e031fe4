#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Reads through a blob cache much smaller than the data: every blob evicts
# another, whose buffer the next load decodes into (mount.c's buffer pool), with
# two readers at once and a file read twice. The bytes must be exact, whether
# the blobs were compressed or stored raw.
. "$(dirname "$0")/lib.sh"
fuse_setup
init_repo --chunk-size 256K/512K/1M
T="$W/src"
mkdir -p "$T"
head -c 24000000 /dev/urandom > "$T/random" # stored raw
python3 - "$T/text" <<'PY' # compressible, so decompressed into the buffer
import random, sys
random.seed(7)
words = ["cairn", "blob", "tree", "pack", "mount", "cache", "zstd", "read"]
with open(sys.argv[1], "w") as f:
    for i in range(1500000):
        f.write("%d %s\n" % (i, random.choice(words)))
PY
"$CAIRN" backup "$T" > /dev/null
mount_fs -o cache_size=16M
M="$MNT/latest$T"
cmp "$M/random" "$T/random" & a=$!
cmp "$M/text" "$T/text" & b=$!
wait $a || fail "random: the bytes differ"
wait $b || fail "text: the bytes differ"
# Again, each from the other end first: the pool now holds buffers of both.
tail -c 5000000 "$M/text" | cmp - <(tail -c 5000000 "$T/text") || fail "text, again"
cmp "$M/random" "$T/random" || fail "random, again"
cmp "$M/text" "$T/text" || fail "text, again"
umount_fs
echo ok
