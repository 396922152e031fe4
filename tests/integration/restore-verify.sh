#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# restore --dry-run (lists, writes nothing), restore --verify (reads back and
# compares, exit 1 on a difference), and the --json output of restore and check.
. "$(dirname "$0")/lib.sh"

R=$(realpath "$W")
init_repo
SRC="$R/src"
mkdir -p "$SRC/d/e"
printf 'one\n' > "$SRC/one.txt"
head -c 300000 /dev/urandom > "$SRC/d/rand.bin"
head -c 300000 /dev/urandom > "$SRC/d/e/rand2.bin"
ln "$SRC/one.txt" "$SRC/d/one-again.txt"
ln -s one.txt "$SRC/link"
truncate -s 5M "$SRC/sparse"
printf 'end' >> "$SRC/sparse"
"$CAIRN" backup "$SRC" > /dev/null
json() { python3 -c "import json, sys; j = json.loads(sys.stdin.readlines()[-1]); print($1)"; }

# ---- --dry-run -------------------------------------------------------------
"$CAIRN" restore -n --target "$W/t" latest "$SRC" > "$W/dry" || fail "dry run: $(cat "$W/dry")"
[ ! -e "$W/t" ] || fail "a dry run created the target"
for p in d/ d/one-again.txt d/rand.bin d/e/ d/e/rand2.bin link sparse; do
	grep -qx "$SRC/$p" "$W/dry" || fail "dry run does not list $p: $(cat "$W/dry")"
done
# Names in tree order: d/one-again.txt comes first, one.txt links to it.
grep -qx "$SRC/one.txt (hard link)" "$W/dry" || fail "dry run: hard link: $(cat "$W/dry")"
# Directories: those leading to $SRC, then d and d/e.
ndirs=$(($(tr -cd / <<< "$SRC" | wc -c) + 2))
grep -q "^would restore 4 files (.*), $ndirs directories, 1 hard link and 1 other entry to '$W/t'$" \
	"$W/dry" || fail "dry run summary: $(tail -1 "$W/dry")"
"$CAIRN" restore -n --json -t "$W/t" latest > "$W/dry.json"
[ ! -e "$W/t" ] || fail "a dry run with --json created the target"
grep -q '"message_type":"verbose_status","action":"restore","item":"'"$SRC"'/d/e/rand2.bin","type":"file","size":300000,"hard_link":false}' \
	"$W/dry.json" || fail "dry run --json entries: $(cat "$W/dry.json")"

# ---- a restore and its JSON summary agree with the dry run ------------------
"$CAIRN" restore --json -t "$W/t" latest > "$W/real.json"
for k in files dirs hard_links others bytes; do
	[ "$(json "j['$k']" < "$W/dry.json")" = "$(json "j['$k']" < "$W/real.json")" ] ||
		fail "$k: dry run $(tail -1 "$W/dry.json"), restore $(cat "$W/real.json")"
done
[ "$(json "(j['dry_run'], j['warnings'], j['verify'], j['files'], j['target'])" < "$W/real.json")" = \
	"(False, 0, None, 4, '$W/t')" ] || fail "restore --json: $(cat "$W/real.json")"
diff -r --no-dereference "$SRC" "$W/t$SRC" || fail "restored tree differs"

# ---- --verify --------------------------------------------------------------
"$CAIRN" restore --verify -t "$W/v" latest > "$W/v.out" 2>&1 || fail "verify: $(cat "$W/v.out")"
grep -q "^verified 5 files (.*): all as in the snapshot$" "$W/v.out" || fail "verify: $(cat "$W/v.out")"
"$CAIRN" restore --verify --json -t "$W/v" latest > "$W/v.json"
[ "$(json "(j['verify']['files'], j['verify']['mismatches'], j['verify']['bytes'])" < "$W/v.json")" = \
	"(5, 0, $((4 + 300000 + 300000 + 4 + 5 * 1024 * 1024 + 3)))" ] || fail "verify --json: $(cat "$W/v.json")"
expect_fail 2 "not with -n" -- "$CAIRN" restore -n --verify -t "$W/v" latest

# ---- check --json on a sound repository -------------------------------------
"$CAIRN" check --read-data --json > "$W/c.json" || fail "check --json: $(cat "$W/c.json")"
[ "$(wc -l < "$W/c.json")" = 1 ] || fail "check --json: more than a summary: $(cat "$W/c.json")"
[ "$(json "(j['message_type'], j['command'], j['ok'], j['errors'], j['read_data'], j['subset'], j['snapshots'])" \
	< "$W/c.json")" = "('summary', 'check', True, 0, 'full', None, 1)" ] || fail "check --json: $(cat "$W/c.json")"
"$CAIRN" check --read-data-subset 1/2 --json | json "j['subset']" | grep -qx 1/2 || fail "check --json: subset"

# ---- a damaged blob: restore --verify fails, check --json names the damage --
off=
for pack in $(find "$CAIRN_REPO/packs" -type f); do
	read -r off len < <("$CAIRN" cat pack "$(basename "$pack")" |
		awk '$2 == "data" && $6 > 100000 { print $4, $6; exit }') || true
	[ -n "$off" ] && break
done
[ -n "$off" ] || fail "no pack holds a large data blob"
printf '\xff\xff\xff\xff' | dd of="$pack" bs=1 seek=$((off + len / 2)) conv=notrunc status=none
rc=0
"$CAIRN" restore --verify -t "$W/bad" latest > "$W/bad.out" 2> "$W/bad.err" || rc=$?
[ "$rc" = 1 ] || fail "verify after damage: exit $rc: $(cat "$W/bad.err")"
grep -q "cannot verify '$SRC/d/.*rand.*\.bin': No such file or directory" "$W/bad.err" ||
	fail "verify after damage: $(cat "$W/bad.err")"
grep -q "1 restored entry is not as in the snapshot" "$W/bad.err" || fail "verify: $(cat "$W/bad.err")"
rc=0
"$CAIRN" check --read-data --json > "$W/bad.json" 2> "$W/bad-check.err" || rc=$?
[ "$rc" = 1 ] || fail "check --json after damage: exit $rc"
python3 - "$W/bad.json" "$SRC" << 'EOF' || fail "check --json after damage: $(cat "$W/bad.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
kinds = [l["message_type"] for l in lines]
assert kinds[-1] == "summary" and kinds.count("summary") == 1, kinds
assert "error" in kinds, kinds
s = lines[-1]
assert s["ok"] is False and s["errors"] == kinds.count("error"), s
damage = [l for l in lines if l["message_type"] == "damage"]
assert len(damage) == 1, damage
assert damage[0]["path"].startswith(sys.argv[2] + "/d/") and damage[0]["path"].endswith(".bin"), damage
assert len(damage[0]["snapshot"]) == 64 and damage[0]["problem"].startswith("blob "), damage
EOF
echo "ok"
