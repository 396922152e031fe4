#!/bin/bash
# The README's first command: install what cairn needs, build it, and run the
# main job on a demo — create a repository, back up a directory twice (the second
# run is incremental), list the snapshots, restore one file, and mount the
# repository to browse it. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh build
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

DEMO=${DEMO:-/tmp/cairn-demo}
SRC=${1:-/usr/share/doc}
rm -rf "$DEMO"; mkdir -p "$DEMO"
export CAIRN_REPO="$DEMO/repo"
printf 'demo password\n' > "$DEMO/password"
export CAIRN_PASSWORD_FILE="$DEMO/password"
cairn=./build/tools/cairn

echo "== cairn init"
$cairn init
echo "== cairn backup $SRC"
$cairn backup --tag demo "$SRC"
echo "== cairn backup $SRC (again: only changes are read)"
$cairn backup --tag demo "$SRC"
echo "== cairn snapshots"
$cairn snapshots
# No `| head` under pipefail: the writer's SIGPIPE would end the demo.
first=$(find "$SRC" -type f -print -quit)
if [ -n "$first" ]; then
	echo "== cairn restore latest --include '$first'"
	$cairn restore latest --target "$DEMO/restored" --include "$first"
	cmp "$first" "$DEMO/restored$first" && echo "restored $first: identical"
fi

if [ -x build/fs/cairnfs ] && [ -c /dev/fuse ]; then
	mkdir -p "$DEMO/mnt"
	echo "== cairnfs $CAIRN_REPO $DEMO/mnt"
	./build/fs/cairnfs "$CAIRN_REPO" "$DEMO/mnt"
	for _ in $(seq 100); do mountpoint -q "$DEMO/mnt" && break; sleep 0.1; done
	ls -l "$DEMO/mnt" "$DEMO/mnt/snapshots"
	echo "== ls $DEMO/mnt/latest$SRC | head"
	ls "$DEMO/mnt/latest$SRC" | sed -n 1,10p
	echo
	echo "The repository is mounted at $DEMO/mnt (read-only); copy files out with cp."
	echo "Unmount with: fusermount3 -u $DEMO/mnt"
fi
echo "Repository: $CAIRN_REPO, password file: $CAIRN_PASSWORD_FILE"
