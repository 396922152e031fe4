#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Objects are placed durably (STYLE §5, issue 14 point 4), seen through strace:
# a directory made for an object (packs/xx/) is synced into its parent before
# anything is renamed into it, and every object renamed into place is followed
# by a sync of its directory, also when threads place packs into one new
# directory at once. Traced: backups into a repository, and a copy into
# another one (s3-sync.sh traces a pull from S3 the same way).
. "$(dirname "$0")/lib.sh"

init_repo --pack-size 1M
mkdir -p "$W/src"
for i in $(seq 12); do head -c 300000 /dev/urandom > "$W/src/f$i"; done
placed_durably "$CAIRN_REPO" -- "$CAIRN" backup --threads 4 "$W/src"
echo more > "$W/src/more"
placed_durably "$CAIRN_REPO" -- "$CAIRN" backup "$W/src"
CAIRN_REPO="$W/dst" init_repo
placed_durably "$W/dst" -- env CAIRN_REPO="$W/dst" "$CAIRN" copy --from-repo "$CAIRN_REPO" \
	--from-password-file "$CAIRN_PASSWORD_FILE"
CAIRN_REPO="$W/dst" "$CAIRN" check --read-data > /dev/null || fail "check of the copy"
# Threads that place packs of one packs/xx/ at once: the one whose mkdir finds
# the directory waits until its maker has synced it. Many one-blob packs, so
# that some share a directory; a few rounds, as the threads' timing varies.
mkdir -p "$W/many"
for i in $(seq 600); do echo "small file $i" > "$W/many/f$i"; done
for round in 1 2 3 4 5 6; do
	rm -rf "$W/r$round"
	CAIRN_REPO="$W/r$round" init_repo
	CAIRN_TEST_PACK_BLOBS=1 placed_durably "$W/r$round" -- \
		env CAIRN_REPO="$W/r$round" "$CAIRN" backup --threads 8 "$W/many"
	rm -rf "$W/r$round"
done
echo ok
