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

# As root, a read-ahead that cannot be raised (/sys read-only, as under systemd's
# ProtectKernelTunables=) is said at the default log level.
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2> /dev/null; then
	rc=0
	unshare -m --propagation private bash -c '
		mount -o remount,bind,ro /sys || exit 77
		"$1" -f "$2" "$3" 2> "$4" & pid=$!
		for _ in $(seq 600); do mountpoint -q "$3" && break; sleep 0.05; done
		ls "$3" > /dev/null
		fusermount3 -u "$3"; wait $pid' sh "$CAIRNFS" "$CAIRN_REPO" "$MNT" "$W/ra.log" || rc=$?
	if [ $rc = 0 ]; then
		grep -q "cannot raise the read-ahead to 1024 KiB" "$W/ra.log" ||
			fail "no line for a read-ahead that stays at the default: $(cat "$W/ra.log")"
	elif [ $rc != 77 ]; then
		fail "a mount with /sys read-only failed: $(cat "$W/ra.log")"
	fi
fi
echo ok
