#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn restore on several threads gives what one thread gives, and what was
# backed up: many small files in many directories, hard links within and across
# directories, sparse files, xattrs, read-only directories and their times
# (set only once everything inside is written, whichever thread writes last).
. "$(dirname "$0")/lib.sh"

umask 022
R=$(realpath "$W")
init_repo --chunk-size 64K/128K/512K
SRC="$R/src"
mkdir -p "$SRC"
setfattr -n user.probe -v 1 "$SRC" 2>/dev/null || fail "no user xattrs on $W"
setfattr -x user.probe "$SRC"

# 40 directories of 60 small files (every fifth inside the one before), each
# with an xattr or two. P[d] is directory d's path.
declare -a P
for d in $(seq 1 40); do
	P[d]=$SRC/$(printf 'd%02d' $d)
	[ $((d % 5)) = 0 ] && P[d]=${P[d - 1]}/$(printf 'sub%02d' $d)
	mkdir -p "${P[d]}"
	for f in $(seq -w 1 60); do
		printf 'file %s of %s\n%*s\n' "$f" "$d" $((10#$f * 7)) x > "${P[d]}/f$f"
	done
	setfattr -n user.dir -v "d$d" "${P[d]}"
	setfattr -n user.a -v "a$d" "${P[d]}/f01"
	setfattr -n user.b -v 0x00ff10 "${P[d]}/f02"
	chmod 640 "${P[d]}/f03"
	touch -d "2001-01-$(printf %02d $((d % 28 + 1))) 10:00:00.$d" "${P[d]}"/f0[4-9]
done
# Hard links: a pair within a directory, a chain across directories, and an
# inode with three names: 11 entries restored as links.
ln "${P[1]}/f10" "${P[1]}/f10-again"
for d in $(seq 2 9); do
	ln "${P[d - 1]}/f11" "${P[d]}/link-from-prev"
done
ln "${P[12]}/f12" "${P[13]}/three-2"
ln "${P[12]}/f12" "${P[21]}/three-3"
# Sparse files: data in the middle, a hole at the end, one all hole.
truncate -s 20M "${P[2]}/sparse-mid"
printf 'middle' | dd of="${P[2]}/sparse-mid" bs=1 seek=$((10 * 1024 * 1024)) conv=notrunc status=none
printf 'start' > "${P[3]}/sparse-end" && truncate -s 30M "${P[3]}/sparse-end"
truncate -s 5M "${P[4]}/all-hole"
setfattr -n user.sparse -v yes "${P[2]}/sparse-mid"
SPARSE="${P[2]#$SRC/}/sparse-mid ${P[3]#$SRC/}/sparse-end ${P[4]#$SRC/}/all-hole"
# Other kinds, and directories that cannot be written once restored (one of
# them inside another).
ln -s f01 "${P[6]}/link"
mkfifo "${P[7]}/fifo"
chmod 555 "${P[8]}" "${P[10]}" "${P[9]}"
touch -d '2005-05-05 05:05:05.5' "${P[8]}" "${P[9]}" "${P[10]}" "${P[11]}"
touch -d '2006-06-06 06:06:06.6' "$SRC"

"$CAIRN" backup -q "$SRC"
meta "$SRC" > "$W/meta.src"
xattrs "$SRC" > "$W/x.src"
grep -q 'user.sparse' "$W/x.src" || fail "xattrs not listed"

# restore_as N DIR: restore on N threads, check it against the source; the
# JSON summary goes to DIR.json.
restore_as() {
	"$CAIRN" restore --threads "$1" --json latest --target "$2" > "$2.json" ||
		fail "restore on $1 threads failed"
	meta "$2$SRC" > "$W/meta.dst"
	diff "$W/meta.src" "$W/meta.dst" >&2 || fail "metadata differs with $1 threads"
	xattrs "$2$SRC" > "$W/x.dst"
	diff "$W/x.src" "$W/x.dst" >&2 || fail "xattrs differ with $1 threads"
	diff -r --no-dereference -x fifo "$SRC" "$2$SRC" >&2 || fail "content differs with $1 threads"
	for f in $SPARSE; do
		blocks=$(stat -c %b "$2$SRC/$f")
		[ $((blocks * 512)) -lt $((1024 * 1024)) ] || fail "$f not sparse with $1 threads"
	done
	[ -z "$(find "$2" -name '.cairn-tmp*')" ] || fail "temporary files left with $1 threads"
}
restore_as 1 "$W/one"
restore_as 8 "$W/eight"
restore_as 2 "$W/two"
for k in files dirs hard_links others bytes warnings; do
	a=$(json_field "$W/one.json" $k) b=$(json_field "$W/eight.json" $k)
	[ "$a" = "$b" ] || fail "$k: $a with one thread, $b with eight"
done
[ "$(json_field "$W/eight.json" hard_links)" = 11 ] || fail "hard links: $(cat "$W/eight.json")"
[ "$(json_field "$W/eight.json" warnings)" = 0 ] || fail "warnings: $(cat "$W/eight.json")"

# Over an existing restore, on many threads, and verified on many threads.
echo changed > "$W/eight${P[20]}/f20"
rm "$W/eight${P[13]}/three-2"
chmod u+w "$W/eight${P[8]}"
restore_as 8 "$W/eight"
"$CAIRN" restore --threads 8 --verify latest --target "$W/eight" > /dev/null ||
	fail "verify on eight threads found differences"
expect_fail 2 "from 1 to 256" -- "$CAIRN" restore --threads 0 latest --target "$W/zero"
# Worker threads that cannot start (CAIRN_TEST_THREAD_FAIL_AFTER=N lets N
# start): the restore says which, goes on with those that did (none, or two),
# and restores the same.
for n in 0 2; do
	CAIRN_TEST_THREAD_FAIL_AFTER=$n restore_as 8 "$W/few$n" 2> "$W/few.err"
	grep -q "cannot start restore thread $((n + 1)) of 8: .*going on with $n$" "$W/few.err" ||
		fail "restore with $n threads started: $(cat "$W/few.err")"
	[ "$(json_field "$W/few$n.json" files)" = "$(json_field "$W/one.json" files)" ] ||
		fail "restore with $n threads started: $(cat "$W/few$n.json")"
done
echo ok
