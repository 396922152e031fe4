#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn status and its "0 errors" rule: only a data check that read data counts.
# A check of the repository while it was empty, a record that says no pack was
# read, and a subset record of an older cairn (without the share it read) do
# not; a full one of an older cairn does. (The other rules, with a real S3
# copy: run-notify.sh.)
. "$(dirname "$0")/lib.sh"

O="$W/o"
mkdir -p "$O" "$W/src"
echo data > "$W/src/a"
py() { python3 -c "$@"; }
# errors_rule: "met read_nothing" of the errors rule and the check in status --json
errors_rule() {
	"$CAIRN" status --json --offline > "$O/st.json" || true
	py "import json,sys
j=json.load(open(sys.argv[1]))
print(j['rules']['errors']['met'], j['check'] and j['check'].get('read_nothing'))" "$O/st.json"
}
expect_rule() { # WANT WHAT
	local got
	got=$(errors_rule)
	[ "${got%% *}" = "${1%% *}" ] || fail "$2: errors rule met is ${got%% *}: $(cat "$O/st.json")"
	[ "$got" = "$1" ] || fail "$2: errors rule is '$got', not '$1': $(cat "$O/st.json")"
}

init_repo
[ "$(errors_rule)" = "False None" ] || fail "never checked: $(cat "$O/st.json")"
# Checked while empty: nothing to read, nothing read. That is all there is to it
# as long as the repository stays empty...
"$CAIRN" check --read-data > /dev/null
expect_rule "True False" "an empty repository, checked"
# ...but once it holds a snapshot, that check verified none of its data.
"$CAIRN" backup "$W/src" > /dev/null
expect_rule "False True" "a check of the empty repository, after a backup"
"$CAIRN" status --offline > "$O/st.txt" || true
grep -q '^0 errors  *no  *last data check (full: read 0 of 0 packs.*it read no data, so it does not count$' \
	"$O/st.txt" || fail "text report: $(cat "$O/st.txt")"
# A check that reads a pack counts (a subset reads at least one).
"$CAIRN" check --read-data-subset 1% > /dev/null
expect_rule "True False" "a subset check that read a pack"

# Records as an older cairn could leave them.
now=$(date +%s)
record() { "$CRAFT" check-record "$(printf '%s\n' "time=$now" ok=1 errors=0 "$@")"; }
record read_data=subset subset=1% packs=5 packs_read=0 snapshots=1 bytes=5000 bytes_read=0
expect_rule "False True" "a subset that read 0 of 5 packs"
"$CAIRN" status --offline > "$O/st.txt" || true
grep -q '^0 errors  *no  *last data check (subset 1%: read 0 of 5 packs, .*it read no data' "$O/st.txt" ||
	fail "text report: $(cat "$O/st.txt")"
record read_data=subset subset=1%
expect_rule "False True" "a subset record without the share it read"
grep -q 'what share it read is unknown, so it does not count' <("$CAIRN" status --offline) ||
	fail "unknown share not said"
record read_data=full
expect_rule "True False" "a full record without the share it read"
record read_data=full packs=5 packs_read=5 snapshots=1 bytes=5000 bytes_read=5000 ok=1
expect_rule "True False" "a full check that read every pack"
echo "status: all passed"
