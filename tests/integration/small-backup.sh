#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 17, goal 8: a small incremental backup writes at most one data pack and
# one tree pack (each pack is an object to store; on S3 a request and a
# minimum billed size), and prune merges the small packs it leaves.
. "$(dirname "$0")/lib.sh"

init_repo
# 20 directories of 50 files, each file's bytes its own.
for d in $(seq -w 0 19); do
	mkdir -p "$W/src/d$d"
	for f in $(seq -w 0 49); do
		printf 'file %s/%s\n' "$d" "$f" > "$W/src/d$d/f$f"
	done
done
"$CAIRN" backup -q "$W/src" >/dev/null

packs() { find "$CAIRN_REPO/packs" -type f -printf '%f\n' | sort; }
# kind ID: "data" or "tree", and never both in one pack.
kind() {
	local kinds
	kinds=$("$CAIRN" cat pack "$1" | awk '{ print $2 }' | sort -u)
	[ "$(echo "$kinds" | wc -l)" -eq 1 ] || fail "pack $1 holds $(echo $kinds)"
	echo "$kinds"
}
packs > "$W/before"
for i in 1 2 3 4 5; do
	# A few files change in several directories, one is added.
	for d in 01 07 13; do
		printf 'change %d\n' "$i" >> "$W/src/d$d/f$((i * 7 % 50 + 10))"
	done
	printf 'new %d\n' "$i" > "$W/src/d05/new$i"
	"$CAIRN" backup -q "$W/src" >/dev/null
	packs > "$W/after"
	comm -13 "$W/before" "$W/after" > "$W/new"
	data=0 tree=0
	while read -r p; do
		case $(kind "$p") in
		data) data=$((data + 1)) ;;
		tree) tree=$((tree + 1)) ;;
		*) fail "pack $p of unknown kind" ;;
		esac
	done < "$W/new"
	[ "$data" -eq 1 ] && [ "$tree" -eq 1 ] ||
		fail "backup $i wrote $data data and $tree tree packs, expected one of each"
	mv "$W/after" "$W/before"
done

# Six backups left six small packs of each kind: prune merges them.
[ "$(packs | wc -l)" -eq 12 ] || fail "expected 12 packs before prune: $(packs | wc -l)"
"$CAIRN" prune -q >/dev/null
data=0 tree=0
for p in $(packs); do
	case $(kind "$p") in
	data) data=$((data + 1)) ;;
	tree) tree=$((tree + 1)) ;;
	esac
done
[ "$data" -eq 1 ] && [ "$tree" -eq 1 ] ||
	fail "after prune: $data data and $tree tree packs, expected one of each"
"$CAIRN" restore -q latest --target "$W/out" >/dev/null
diff -r --no-dereference "$W/src" "$W/out$W/src" || fail "restore after prune differs"
echo "ok"
