#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Damage every kind of repository file: packs, key files, snapshot objects, the
# config and the LMDB index. Each is detected and reported with what it affects,
# nothing crashes, and a lost index is rebuilt.
. "$(dirname "$0")/lib.sh"

crashed() { grep -qE "Segmentation|Aborted|AddressSanitizer|runtime error|core dumped" "$@"; }

init_repo --chunk-size 64K/128K/512K --pack-size 1M
mkdir -p "$W/src/docs"
head -c 3000000 /dev/urandom > "$W/src/docs/report.bin"
echo "a small file" > "$W/src/small.txt"
"$CAIRN" backup "$W/src" > /dev/null
"$CAIRN" check --read-data > /dev/null || fail "fresh repository does not check"
pristine="$W/pristine"
cp -a "$CAIRN_REPO" "$pristine"
reset() { rm -rf "$CAIRN_REPO"; cp -a "$pristine" "$CAIRN_REPO"; }
flip() { # FILE OFFSET: invert one byte
	python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2]); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^0xff]))' "$1" "$2"
}

# A flipped byte in a data blob: check --read-data names the pack and the file.
pack=$(find "$CAIRN_REPO/packs" -type f -size +1000k | head -1)
[ -n "$pack" ] || pack=$(find "$CAIRN_REPO/packs" -type f | head -1)
flip "$pack" 5000
rc=0; "$CAIRN" check --read-data > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "flipped pack byte: check exited $rc"
grep -q "$(basename "$pack" | cut -c1-8)" "$W/out" || fail "check does not name the pack: $(cat "$W/out")"
grep -q "report.bin" "$W/out" || fail "check does not name the damaged file: $(cat "$W/out")"
crashed "$W/out" && fail "crash on a damaged pack"
cp "$W/out" "$W/check1"
rc=0; "$CAIRN" restore latest --target "$W/r" > "$W/out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "restore of a damaged file reported success"
cmp "$W/src/small.txt" "$W/r$W/src/small.txt" || fail "undamaged file not restored"
crashed "$W/out" && fail "restore crashed"
# check --read-data dropped the damaged copy from the index: the next backup
# stores the blob again from the file (unchanged, so read only for that),
# whose new copy serves the old snapshot too, and prune then rewrites the
# damaged pack without it.
grep -q "damaged blobs\? left this host's index" "$W/check1" ||
	fail "the damaged copy stays indexed: $(cat "$W/check1")"
"$CAIRN" backup "$W/src" > /dev/null || fail "backup after a damaged blob"
rm -rf "$W/r"
"$CAIRN" restore "$(ls "$pristine/snapshots" | head -1)" --target "$W/r" > /dev/null ||
	fail "the old snapshot is still damaged after the backup"
cmp "$W/src/docs/report.bin" "$W/r$W/src/docs/report.bin" || fail "the old snapshot restores wrong data"
"$CAIRN" prune --max-unused 0 > /dev/null || fail "prune after a damaged blob"
"$CAIRN" check --read-data > "$W/out" 2>&1 || fail "check after prune: $(cat "$W/out")"
reset

# A truncated pack.
truncate -s 100 "$pack"
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "truncated pack: check exited $rc"
crashed "$W/out" && fail "crash on a truncated pack"
reset

# A missing pack file: check names the pack, the snapshot and the files it
# held, and exits 1.
snap_short=$(ls "$CAIRN_REPO/snapshots" | head -1 | cut -c1-8)
# A pack of data blobs only: without trees the damage is named by file path.
data_pack() {
	local p
	for p in $(find "$CAIRN_REPO/packs" -type f | sort); do
		"$CAIRN" cat pack "$(basename "$p")" | awk '$2 == "tree" { t = 1 } END { exit t }' &&
			echo "$p" && return
	done
}
victim=$(data_pack)
[ -n "$victim" ] || fail "no pack without trees"
rm "$victim"
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "missing pack: check exited $rc: $(cat "$W/out")"
grep -q "pack $(basename "$victim" | cut -c1-8) is in the index but its file is missing" "$W/out" ||
	fail "missing pack not named: $(cat "$W/out")"
grep -q "snapshot $snap_short .* is damaged" "$W/out" || fail "missing pack: snapshot not named: $(cat "$W/out")"
grep -q "$W/src/.*: blob [0-9a-f]\{8\}: its pack file is missing" "$W/out" ||
	fail "missing pack: no file named: $(cat "$W/out")"
crashed "$W/out" && fail "crash on a missing pack"
# check drops it from the index (a cache), so that backups do not refer to it.
grep -q "1 missing pack left this host's index" "$W/out" || fail "the missing pack stays indexed: $(cat "$W/out")"
"$CAIRN" backup "$W/src" > /dev/null || fail "backup after check dropped a lost pack"
"$CAIRN" check --read-data > "$W/out" 2>&1 || fail "check after the lost pack's blobs came back: $(cat "$W/out")"
reset
rm "$victim"
# Without a check first, the next backup finds it gone: it stores again what
# the lost pack held for files it meets (unchanged ones too), with a warning,
# rather than write a new damaged snapshot.
"$CAIRN" backup "$W/src" > /dev/null 2> "$W/out" || fail "backup after a lost pack: $(cat "$W/out")"
out_has "$W/out" "pack $(basename "$victim") is missing: its blobs are stored again"
rm -rf "$W/r"
"$CAIRN" restore latest --target "$W/r" > /dev/null || fail "restore of the backup after a lost pack"
cmp "$W/src/docs/report.bin" "$W/r$W/src/docs/report.bin" || fail "the new snapshot lacks the lost data"
# The old snapshot's blobs are found again: the new copies serve it too.
"$CAIRN" check --read-data > "$W/out" 2>&1 || fail "check after the lost pack's blobs came back: $(cat "$W/out")"
reset
# A truncated pack is as good as lost.
truncate -s 100 "$victim"
"$CAIRN" backup "$W/src" > /dev/null 2> "$W/out" || fail "backup after a truncated pack: $(cat "$W/out")"
out_has "$W/out" "pack $(basename "$victim") is 100 bytes, not"
# No index file names the pack with this size: rebuild-index says its blobs
# could not be indexed, and fails.
rc=0; "$CAIRN" rebuild-index > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "rebuild-index with a truncated pack exited $rc: $(cat "$W/out")"
out_has "$W/out" "pack $(basename "$victim" | cut -c1-8): header damaged ("
out_has "$W/out" "the blobs of 1 pack could not be indexed"
out_lacks "$W/out" "index rebuilt"
"$CAIRN" check --read-data > "$W/out" 2>&1 && fail "check passed with a truncated pack"
grep -q "snapshot .* is damaged" "$W/out" && fail "a snapshot is damaged though every blob is stored again: $(cat "$W/out")"
reset

# A damaged pack header (its blobs intact): check says that rebuild-index takes
# them from the index files; rebuild-index does, with a warning naming the pack
# and the file, and everything restores as before. Without an index file that
# names the pack, rebuild-index says the blobs could not be indexed, exit 1.
python3 -c 'import struct,sys;p=sys.argv[1];d=bytearray(open(p,"rb").read());hl=struct.unpack("<I",d[-12:-8])[0];d[len(d)-12-hl+30]^=0x40;open(p,"wb").write(d)' "$victim"
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "damaged header: check exited $rc: $(cat "$W/out")"
out_has "$W/out" "'cairn rebuild-index' takes the blobs of a pack whose header is damaged from the index files"
"$CAIRN" rebuild-index > "$W/out" 2>&1 || fail "rebuild-index with a damaged header: $(cat "$W/out")"
out_match "$W/out" "pack $(basename "$victim" | cut -c1-8): header damaged (.*); [0-9]* blobs taken from index file [0-9a-f]\{8\}"
rm -rf "$W/rh"
"$CAIRN" restore latest --target "$W/rh" > "$W/out" 2>&1 || fail "restore after rebuilding past a damaged header: $(cat "$W/out")"
diff -r "$W/src" "$W/rh$W/src" || fail "restore after rebuilding past a damaged header differs"
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
out_lacks "$W/out" "is damaged:"
# The rebuild of an open that finds no index (a copy made by sync) does the same.
rm -rf "$CAIRN_REPO/index" "$W/rh"
"$CAIRN" backup "$W/src" > "$W/out" 2>&1 || fail "backup rebuilding past a damaged header: $(cat "$W/out")"
out_match "$W/out" "header damaged (.*); [0-9]* blobs taken from index file"
"$CAIRN" restore "$(ls "$pristine/snapshots" | head -1)" --target "$W/rh" > /dev/null ||
	fail "restore after a rebuild past a damaged header"
diff -r "$W/src" "$W/rh$W/src" || fail "restore rebuilding past a damaged header differs"
mkdir "$W/idx.aside"
mv "$CAIRN_REPO"/indexes/* "$W/idx.aside"
rc=0; "$CAIRN" rebuild-index > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "rebuild-index with an unnamed damaged header exited $rc: $(cat "$W/out")"
out_has "$W/out" "pack $(basename "$victim" | cut -c1-8): header damaged ("
out_has "$W/out" "no index file names it"
out_has "$W/out" "the blobs of 1 pack could not be indexed"
out_lacks "$W/out" "index rebuilt"
rm -rf "$W/rh" "$W/idx.aside"
reset

# A pack file whose header disagrees with the index: another pack's bytes under
# its name. The structure check (no --read-data) finds it.
other=$(find "$CAIRN_REPO/packs" -type f ! -path "$victim" | head -1)
cp "$other" "$victim"
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "disagreeing header: check exited $rc: $(cat "$W/out")"
grep -q "pack $(basename "$victim" | cut -c1-8): the index places [0-9]* blobs in it, its header agrees on 0" \
	"$W/out" || fail "disagreeing header not reported: $(cat "$W/out")"
grep -q "snapshot $snap_short .* is damaged" "$W/out" || fail "disagreeing header: no snapshot: $(cat "$W/out")"
# The index (a cache) is what disagrees: check advises rebuilding it, never a
# prune of the packs it does not name.
grep -q "the index disagrees with 1 pack header: 'cairn rebuild-index' makes it anew" "$W/out" ||
	fail "disagreeing header: no rebuild-index advice: $(cat "$W/out")"
! grep -q "'cairn prune' removes them" "$W/out" || fail "disagreeing header: prune advised: $(cat "$W/out")"
crashed "$W/out" && fail "crash on a disagreeing pack header"
rc=0; "$CAIRN" check --read-data > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "disagreeing header: check --read-data exited $rc"
# The other pack may be shorter (a tree pack): then the reads run past its end.
grep -q "$W/src/.*: blob [0-9a-f]\{8\}: pack .* \(authentication failed\|is truncated\)" "$W/out" ||
	fail "disagreeing header: --read-data does not name the file: $(cat "$W/out")"
reset

# A damaged index file: check names it; prune writes the index files anew.
idx=$(find "$CAIRN_REPO/indexes" -type f | head -1)
[ -n "$idx" ] || fail "no index file to damage"
flip "$idx" 40
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "damaged index file: check exited $rc: $(cat "$W/out")"
grep -q "index file $(basename "$idx" | cut -c1-8).*'cairn prune' writes the index files anew" "$W/out" ||
	fail "damaged index file not named: $(cat "$W/out")"
"$CAIRN" prune > "$W/out" 2>&1 || fail "prune with a damaged index file: $(cat "$W/out")"
[ ! -e "$idx" ] || fail "prune left the damaged index file"
"$CAIRN" check --read-data > "$W/out" 2>&1 || fail "check after prune replaced the index file: $(cat "$W/out")"
reset

# Key files: flipped byte and truncation give a clear error, never a crash.
key=$(ls "$CAIRN_REPO"/keys/* | head -1)
for damage in "flip $key 70" "truncate -s 33 $key"; do
	$damage
	rc=0; "$CAIRN" snapshots > "$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "damaged key ($damage): exit $rc"
	[ "$(wc -l < "$W/out")" -le 2 ] || fail "damaged key: more than one line: $(cat "$W/out")"
	crashed "$W/out" && fail "crash on a damaged key file"
	reset
done

# Snapshot objects: flipped and truncated. Listings skip them with a warning
# (damaged-snapshot.sh tests the commands); check fails naming them.
snap=$(ls "$CAIRN_REPO"/snapshots/* | head -1)
for damage in "flip $snap 30" "truncate -s 20 $snap"; do
	$damage
	rc=0; "$CAIRN" snapshots > "$W/out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || fail "damaged snapshot ($damage): snapshots exited $rc"
	grep -q "warning: .*snapshot $(basename "$snap" | cut -c1-8)" "$W/out" || fail "snapshot not named: $(cat "$W/out")"
	rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "damaged snapshot ($damage): check exited $rc"
	grep -q "$(basename "$snap" | cut -c1-8)" "$W/out" || fail "check does not name the snapshot: $(cat "$W/out")"
	crashed "$W/out" && fail "crash on a damaged snapshot"
	reset
done

# The config: any change is tampering.
sed -i 's/^chunk-max = .*/chunk-max = 1048576/' "$CAIRN_REPO/config"
expect_fail 1 "config" -- "$CAIRN" snapshots
reset

# A truncated LMDB index: empty, only its first meta page left, or its pages
# cut past the meta pages (LMDB would fault on them: SIGBUS). Never a crash; a
# command fails with one clear line or reads right; after rebuild-index
# everything reads right.
for size in 0 4096 8192 12288; do
	truncate -s "$size" "$CAIRN_REPO/index/data.mdb"
	rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
	crashed "$W/out" && fail "crash on an index truncated to $size bytes"
	[ "$rc" -le 1 ] || fail "index truncated to $size: check exited $rc: $(cat "$W/out")"
	rc=0; "$CAIRN" restore latest --target "$W/rt$size" > "$W/out" 2>&1 || rc=$?
	crashed "$W/out" && fail "restore crashed on an index truncated to $size bytes"
	if [ "$rc" = 0 ]; then
		diff -r "$W/src" "$W/rt$size$W/src" || fail "index truncated to $size: wrong restore"
	else
		[ "$(wc -l < "$W/out")" -le 2 ] || fail "index truncated to $size: $(cat "$W/out")"
	fi
	"$CAIRN" rebuild-index > /dev/null || fail "rebuild-index after truncation to $size"
	"$CAIRN" check --read-data > /dev/null || fail "check after rebuilding a truncated index"
	rm -rf "$W/rt$size"
	"$CAIRN" restore latest --target "$W/rt$size" > /dev/null
	diff -r "$W/src" "$W/rt$size$W/src" || fail "restore after rebuilding a truncated index"
	reset
done

# A damaged page inside the LMDB index (LMDB has no checksums: it asserts,
# reads garbage, or faults): the command fails with one line, and a crash or an
# assertion says that rebuild-index mends it. Each page's header is tried, so
# that pages in use are hit. (Under AddressSanitizer no hint is installed: its
# report of the fault stands.)
pages=$(($(stat -c %s "$CAIRN_REPO/index/data.mdb") / 4096))
hit=0
for p in $(seq 2 $((pages - 1))); do
	python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])*4096+12); f.write(bytes([0,16]))' \
		"$CAIRN_REPO/index/data.mdb" "$p"
	rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
	if grep -q "AddressSanitizer" "$W/out"; then
		hit=$((hit + 1))
	elif [ "$rc" -ge 128 ] || grep -q "Assertion" "$W/out"; then
		grep -q "'cairn rebuild-index' makes" "$W/out" || fail "damaged index page $p: $(cat "$W/out")"
		hit=$((hit + 1))
	elif [ "$rc" != 0 ]; then
		[ "$(grep -c . "$W/out")" = 1 ] || fail "damaged index page $p: $(cat "$W/out")"
		hit=$((hit + 1))
	fi
	reset
done
[ "$hit" -gt 0 ] || fail "no damaged index page was noticed"

# The LMDB index: garbage is detected; deleting it makes cairn rebuild it.
dd if=/dev/urandom of="$CAIRN_REPO/index/data.mdb" bs=4096 count=2 conv=notrunc status=none
rc=0; "$CAIRN" check > "$W/out" 2>&1 || rc=$?
crashed "$W/out" && fail "crash on a damaged index"
[ "$rc" = 1 ] || fail "damaged index went unnoticed (exit $rc)"
grep -q "run 'cairn rebuild-index'" "$W/out" || fail "damaged index: no hint: $(cat "$W/out")"
"$CAIRN" rebuild-index > /dev/null || fail "rebuild-index cannot replace a damaged index"
# An index file of zeroes (not an LMDB file): the same hint.
size=$(stat -c %s "$CAIRN_REPO/index/data.mdb")
rm "$CAIRN_REPO/index/data.mdb"
head -c "$size" /dev/zero > "$CAIRN_REPO/index/data.mdb"
rc=0; "$CAIRN" snapshots > "$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "zeroed index went unnoticed (exit $rc)"
grep -q "run 'cairn rebuild-index'" "$W/out" || fail "zeroed index: no hint: $(cat "$W/out")"
"$CAIRN" rebuild-index > /dev/null || fail "rebuild-index cannot replace a zeroed index"
"$CAIRN" check --read-data > /dev/null || fail "check after rebuilding a damaged index"
rm -rf "$CAIRN_REPO/index"
"$CAIRN" backup "$W/src" > /dev/null || fail "no automatic rebuild of a deleted index"
"$CAIRN" check --read-data > /dev/null || fail "check after automatic rebuild"
"$CAIRN" restore latest --target "$W/r2" > /dev/null
diff -r "$W/src" "$W/r2$W/src" || fail "restore after rebuild differs"
echo ok
