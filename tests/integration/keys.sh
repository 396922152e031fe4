#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Key files over a repository's lifetime: concurrent key changes, keys of the
# wrong kind, unreadable key files, and the reasons an open gives.
. "$(dirname "$0")/lib.sh"

mkdir -p "$W/src"
echo hello > "$W/src/a"
init_repo
"$CAIRN" backup "$W/src" > /dev/null
printf 'second secret\n' > "$W/pw2"
printf 'write-only secret\n' > "$W/pw3"
"$CAIRN" key add --new-password-file "$W/pw2" --key-label "laptop of the admin" > /dev/null
"$CAIRN" key add --write-only --new-password-file "$W/pw3" > /dev/null
A=$("$CAIRN" key list | awk '$1=="*"{print $2}')
B=$("$CAIRN" --password-file "$W/pw2" key list | awk '$1=="*"{print $2}')
WO=$("$CAIRN" key list | awk '$2=="write-only"{print $1}')
[ -n "$A" ] && [ -n "$B" ] && [ -n "$WO" ] || fail "keys not listed"

# ---- two admins remove each other's key at once -------------------------
# The first has opened the repository when the second removes its key: once it
# holds the keys lock it sees its own key gone, and refuses; a full key stays.
cp -a "$CAIRN_REPO" "$W/race"
CAIRN_TEST_STOP_POINT=key-opened "$CAIRN" -r "$W/race" key remove "$B" > "$W/race.out" 2>&1 &
pid=$!
wait_stopped $pid "key remove"
"$CAIRN" -r "$W/race" --password-file "$W/pw2" key remove "$A" | grep -q removed
kill -CONT $pid
rc=0
wait $pid || rc=$?
[ "$rc" = 1 ] || fail "the second removal succeeded: $(cat "$W/race.out")"
out_has "$W/race.out" "the key this password opened was removed from the repository"
[ -f "$W/race/keys/$B" ] || fail "no full key left"
"$CAIRN" -r "$W/race" --password-file "$W/pw2" snapshots > /dev/null
# A key change holds a keys lock: another key change waits for it (here: fails
# at once), a backup runs beside it.
CAIRN_TEST_STOP_POINT=key-locked "$CAIRN" -r "$W/race" --password-file "$W/pw2" \
	key add --new-password-file "$W/pw" > "$W/race.out" 2>&1 &
pid=$!
wait_stopped $pid "key add"
expect_fail 1 "locked for a key change by key" -- \
	"$CAIRN" -r "$W/race" --password-file "$W/pw2" key remove "$WO"
"$CAIRN" -r "$W/race" --password-file "$W/pw2" backup "$W/src" > /dev/null
kill -CONT $pid
wait $pid || fail "key add failed: $(cat "$W/race.out")"
"$CAIRN" -r "$W/race" --password-file "$W/pw2" key remove "$WO" | grep -q removed

# ---- a key file the password opens but that cannot serve ------------------
# A write-only key with the admin's password, sorting first, and a key file of
# another repository with the same password: unlocking goes on past both.
K="$W/k3"
cp -a "$CAIRN_REPO" "$K"
"$CAIRN" -r "$K" key add --write-only --new-password-file "$W/pw" | grep -q "added write-only key"
same=$(cd "$K/keys" && ls -t | head -1)
mv "$K/keys/$same" "$K/keys/0000000000000000"
CAIRN_REPO="$W/other" init_repo
cp "$W/other/keys/"* "$K/keys/0000000000000001"
rm -f "$K"/index/last-key*
"$CAIRN" -r "$K" snapshots > /dev/null
[ "$(cat "$K/index/last-key")" = "$A" ] || fail "the admin's hint is not the admin's key"
rm -f "$K"/index/last-key*
"$CAIRN" -r "$K" key list > "$W/k3.list"
"$CAIRN" -r "$K" backup "$W/src" > /dev/null
"$CAIRN" -r "$K" key list | awk '$1=="*"{print $2}' | grep -qx "$A" || fail "the admin's key is not in use"
"$CAIRN" -r "$K" key remove 0000000000000000 | grep -q removed

# ---- one hint per kind; read-only opens keep it --------------------------
# A write-only host's backup notes its key apart from the admin's; a read-only
# admin command notes the admin's key (the hint is a cache).
rm -f "$CAIRN_REPO"/index/last-key*
"$CAIRN" snapshots > /dev/null
[ "$(cat "$CAIRN_REPO/index/last-key")" = "$A" ] || fail "a read-only open left no hint"
"$CAIRN" --password-file "$W/pw3" backup "$W/src" > /dev/null
[ "$(cat "$CAIRN_REPO/index/last-key")" = "$A" ] || fail "a write-only backup moved the admin's hint"
[ "$(cat "$CAIRN_REPO/index/last-key-wo")" = "$WO" ] || fail "no write-only hint"

# ---- why no key file opened ----------------------------------------------
# The password's own key file unreadable (a newer cairn's version 2) while
# others are of other passwords: "wrong password", with the reason.
V="$W/v2"
cp -a "$CAIRN_REPO" "$V"
python3 - "$V/keys/$A" << 'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[8] = 2
open(sys.argv[1], "wb").write(d)
PY
expect_fail 1 "wrong password (key file '$A': unsupported version 2)" -- "$CAIRN" -r "$V" snapshots
# The only key file asks for more memory than the host lets it use (not under
# a sanitizer, whose shadow memory needs far more address space than that).
if ! grep -qa -e __asan_init -e __tsan_init "$CAIRN"; then
	CAIRN_REPO="$W/big" init_repo --kdf-log2n 18
	rc=0
	(ulimit -v 300000 && "$CAIRN" -r "$W/big" snapshots) > /dev/null 2> "$W/big.err" || rc=$?
	[ "$rc" = 1 ] || fail "an open out of memory exited $rc: $(cat "$W/big.err")"
	out_match "$W/big.err" \
		"no readable key file in '$W/big': key file '[0-9a-f]*': scrypt .*out of memory"
fi

# ---- key list: an unreadable key file hides no other ---------------------
L="$W/list"
cp -a "$CAIRN_REPO" "$L"
head -c 50 "$L/keys/$A" > "$L/keys/0000000000000001"
# A copy of a key file whose created field is past any date (not authenticated
# until a password opens it).
python3 - "$L/keys/$B" "$L/keys/1111111111111111" << 'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
d[52:60] = struct.pack("<q", 2**63 - 1)
open(sys.argv[2], "wb").write(d)
PY
rc=0
"$CAIRN" -r "$L" key list > "$W/list.out" 2> "$W/list.err" || rc=$?
[ "$rc" = 1 ] || fail "key list with an unreadable key file exited $rc"
out_has "$W/list.err" "1 key file could not be read"
out_match "$W/list.out" "^  0000000000000001  unreadable: key file '0000000000000001': truncated"
out_match "$W/list.out" "^\* $A  full "
out_match "$W/list.out" "^  $B  full "
out_match "$W/list.out" "^  1111111111111111  full        ?  "
"$CAIRN" -r "$L" key list --json > "$W/list.json" 2> /dev/null || true
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert len(v) == 5 and sum("unreadable" in k for k in v) == 1, v' "$W/list.json" ||
	fail "key list --json: $(cat "$W/list.json")"

# ---- the KDF cost of new key files can be raised --------------------------
R="$W/cost"
cp -a "$CAIRN_REPO" "$R"
printf 'stronger secret\n' > "$W/pw4"
"$CAIRN" -r "$R" key add --kdf-log2n 12 --new-password-file "$W/pw4" --key-label strong > /dev/null
"$CAIRN" -r "$R" key list | grep "strong" | grep -q "N=2^12" || fail "key add --kdf-log2n 12 ignored"
"$CAIRN" -r "$R" key passwd --kdf-log2n 13 --new-password-file "$W/pw4" > /dev/null
"$CAIRN" -r "$R" --password-file "$W/pw4" key list | grep '^\*' | grep -q "N=2^13" ||
	fail "key passwd --kdf-log2n 13 ignored"
"$CAIRN" -r "$R" --password-file "$W/pw4" key add --new-password-file "$W/pw" > /dev/null
"$CAIRN" -r "$R" key list | grep '^\*' | grep -q "N=2^13" || fail "a new key is not as strong as the one in use"
expect_fail 2 "'21' is not a number from 10 to 20" -- "$CAIRN" -r "$R" key add --kdf-log2n 21
expect_fail 2 "is for key add and key passwd" -- "$CAIRN" -r "$R" key list --kdf-log2n 12

# ---- key passwd keeps the key's label ------------------------------------
P="$W/label"
cp -a "$CAIRN_REPO" "$P"
"$CAIRN" -r "$P" --password-file "$W/pw2" key passwd --new-password-file "$W/pw4" > /dev/null
"$CAIRN" -r "$P" --password-file "$W/pw4" key list > "$W/label.out"
grep '^\*' "$W/label.out" | grep -q "laptop of the admin" || fail "key passwd lost the label: $(cat "$W/label.out")"
"$CAIRN" -r "$P" --password-file "$W/pw4" key passwd --key-label "in the safe" \
	--new-password-file "$W/pw2" > /dev/null
"$CAIRN" -r "$P" --password-file "$W/pw2" key list | grep '^\*' | grep -q "in the safe" ||
	fail "key passwd --key-label ignored"
