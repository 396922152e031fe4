#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Control characters in file names, hosts and tags (ESC, BEL, CR, newline, DEL,
# C1) never reach the terminal raw: ls, find, snapshots, diff, forget, check and
# every message escape them as \xNN, one entry per line; --json keeps them exact.
. "$(dirname "$0")/lib.sh"
: "${CRAFT:?CRAFT must point to cairn-test-craft}"

# no_raw_controls FILE WHAT: FILE holds no control byte but the line ends.
no_raw_controls() {
	python3 - "$1" "$2" <<'PY' || exit 1
import re, sys
data = open(sys.argv[1], "rb").read()
m = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", data)
if m:
    sys.exit("FAIL: %s: raw control byte %r at %d: %r" % (sys.argv[2], m.group(), m.start(),
             data[max(0, m.start() - 40):m.start() + 20]))
PY
}

init_repo
S="$W/src"
mkdir -p "$S/d"
python3 - "$S" <<'PY'
import os, sys
s = sys.argv[1].encode()
for name in [b"esc\x1b[31mred", b"bel\x07", b"cr\rret", b"new\nline", b"del\x7f",
             b"c1\xc2\x9b2J", b"tab\there", b"new\\x0aline"]:
    with open(os.path.join(s, b"d", name), "wb") as f:
        f.write(b"one")
os.symlink(b"target\x1b]0;title\x07", os.path.join(s, b"d", b"link\x1b"))
PY
"$CAIRN" backup --tag plain "$S" > /dev/null
printf 'two' > "$S/d/esc"$'\e'"[31mred"
rm "$S/d/bel"$'\a'
"$CAIRN" backup "$S" > /dev/null
# Hosts and tags with control characters: backup refuses them, an older or
# hostile writer of the repository need not.
"$CRAFT" relabel "host"$'\e]0;pwned\a\r\n\x7f' "tag"$'\e[2J' "t"$'\x07\r\n\x7f' ||
	fail "could not craft a snapshot"

# Text output: every entry on its own line, no raw control byte.
"$CAIRN" ls -R latest "$S" > "$W/ls" 2>&1 || fail "ls failed: $(cat "$W/ls")"
no_raw_controls "$W/ls" "ls -R"
[ "$(wc -l < "$W/ls")" = 9 ] || fail "ls -R: not one line per entry: $(cat "$W/ls")"
grep -qxF "$S/d/esc\\x1b[31mred" "$W/ls" || fail "ls: ESC not shown as \\x1b: $(cat "$W/ls")"
grep -qxF "$S/d/new\\x0aline" "$W/ls" || fail "ls: newline not shown as \\x0a"
# A backslash is escaped too, so that a name with the text \x0a in it is not
# shown as the one with a newline.
grep -qxF "$S/d/new\\\\x0aline" "$W/ls" || fail "ls: backslash not shown as \\\\: $(cat "$W/ls")"
grep -qxF "$S/d/c1\\xc2\\x9b2J" "$W/ls" || fail "ls: C1 control not escaped"
"$CAIRN" ls -l latest "$S/d" > "$W/ls-l"
no_raw_controls "$W/ls-l" "ls -l"
grep -qF -- "-> target\\x1b]0;title\\x07" "$W/ls-l" || fail "ls -l: link target not escaped"
"$CAIRN" find '*' > "$W/find"
no_raw_controls "$W/find" "find"
"$CAIRN" find 'new*' > "$W/find-new"
n1=$(grep -cF "$S/d/new\\x0aline" "$W/find-new" || true)
n2=$(grep -cF "$S/d/new\\\\x0aline" "$W/find-new" || true)
[ "$n1" -ge 1 ] && [ "$n1" = "$n2" ] && [ "$(wc -l < "$W/find-new")" = $((n1 + n2)) ] ||
	fail "find: the names with a newline and with a backslash look alike: $(cat "$W/find-new")"
"$CAIRN" snapshots > "$W/snaps"
no_raw_controls "$W/snaps" "snapshots"
[ "$(wc -l < "$W/snaps")" = 5 ] || fail "snapshots: not one line per snapshot: $(cat "$W/snaps")"
grep -qF 'host\x1b]0;pwned\x07\x0d\x0a\x7f' "$W/snaps" || fail "snapshots: host not escaped"
grep -qF 'tag\x1b[2J,t\x07\x0d\x0a\x7f' "$W/snaps" || fail "snapshots: tags not escaped"
ids=($("$CAIRN" snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin): print(s["short_id"])'))
"$CAIRN" diff "${ids[0]}" "${ids[1]}" > "$W/diff"
no_raw_controls "$W/diff" "diff"
[ "$(wc -l < "$W/diff")" -ge 3 ] || fail "diff: too few lines: $(cat "$W/diff")"
"$CAIRN" forget -n --keep-last 1 --group-by host,tags > "$W/forget"
no_raw_controls "$W/forget" "forget"

# --json stays exact: the names decode to the very bytes on disk.
"$CAIRN" ls --json latest "$S/d" | python3 -c '
import json, os, sys
names = {json.loads(l)["name"].encode("utf-8", "surrogateescape") for l in sys.stdin}
disk = set(os.listdir(sys.argv[1].encode()))
sys.exit(0 if names == disk else "ls --json: %r != %r" % (names, disk))' "$S/d"
"$CAIRN" snapshots --json | python3 -c '
import json, sys
s = json.load(sys.stdin)[-1]
sys.exit(0 if s["hostname"] == "host\x1b]0;pwned\x07\r\n\x7f" else "hostname %r" % s["hostname"])'

# Messages: a path with control characters in an error is one escaped line,
# and exact in a JSON log.
expect_fail 1 "is not a directory" -- "$CAIRN" ls latest "$S/d/new"$'\n'"line/x"
no_raw_controls "$W/err" "error message"
grep -qF "'$S/d/new\\x0aline' is not a directory" "$W/err" || fail "error: $(cat "$W/err")"
"$CAIRN" --log-format json ls latest "$S/d/cr"$'\r'"ret/x" 2> "$W/err.json" && fail "ls of a file's child"
python3 -c '
import json, sys
m = json.loads(open(sys.argv[1]).read())["message"]
sys.exit(0 if "/d/cr\rret\x27 is not" in m else "JSON message %r" % m)' "$W/err.json"
# Warnings while restoring name the entry escaped, one line each: a non-empty
# directory where a file is to go cannot be replaced.
mkdir -p "$W/target/$S/d/new"$'\n'"line/sub"
rc=0
"$CAIRN" restore --target "$W/target" latest "$S/d" > /dev/null 2> "$W/restore.err" || rc=$?
[ "$rc" = 3 ] || fail "restore over a directory exited $rc: $(cat "$W/restore.err")"
no_raw_controls "$W/restore.err" "restore warnings"
grep -qF "'$S/d/new\x0aline'" "$W/restore.err" || fail "restore warning: $(cat "$W/restore.err")"

# A failure mail: the error (a file name, a message) and the host cannot add
# header or body lines, nor reach the reader's terminal raw.
printf '#!/bin/sh\ncat > "%s"\n' "$W/mail" > "$W/sendmail"
chmod +x "$W/sendmail"
CAIRN_SENDMAIL="$W/sendmail" "$CAIRN" notify --mail ops@example.org --job nightly \
	--host "$(printf 'h\x1b]0;x\x07')" --error "$(printf 'cannot read /a\nBcc: evil@example.org\n\x1b[2J')" ||
	fail "notify --mail"
no_raw_controls "$W/mail" "mail"
grep -qxF 'Subject: cairn: job nightly failed on h\x1b]0;x\x07' "$W/mail" || fail "mail subject: $(cat "$W/mail")"
grep -qxF 'error: cannot read /a\x0aBcc: evil@example.org\x0a\x1b[2J' "$W/mail" || fail "mail body: $(cat "$W/mail")"
! grep -q '^Bcc:' "$W/mail" || fail "the error added a header line: $(cat "$W/mail")"

# Every text output that names paths shows a backslash as \\, as ls does: a
# path holding the text \x0a never prints like one holding a newline.
export CAIRN_REPO="$W/bs-repo"
init_repo
B="$W/bs"
nl="$B/d"$'\n'"y" bs="$B/d\\x0ay"
mkdir -p "$nl" "$bs"
touch "$nl/f" "$bs/f"
"$CAIRN" backup --tag 'b\s' "$nl" "$bs" > /dev/null
touch "$nl/new" "$bs/new"
"$CAIRN" backup --tag 'b\s' --list "$nl" "$bs" > "$W/bs-list"
# two_alike WHAT FILE: FILE names both paths, each escaped its own way.
two_alike() {
	grep -qF "$B/d\x0ay" "$2" && grep -qF "$B/d\\\\x0ay" "$2" ||
		fail "$1: the paths with a newline and with a backslash print alike: $(cat "$2")"
}
two_alike "backup --list" "$W/bs-list"
"$CAIRN" snapshots > "$W/bs-snaps"
two_alike snapshots "$W/bs-snaps"
grep -qF 'b\\s' "$W/bs-snaps" || fail "snapshots: the tag's backslash: $(cat "$W/bs-snaps")"
bids=($("$CAIRN" snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin): print(s["short_id"])'))
"$CAIRN" diff "${bids[0]}" "${bids[1]}" > "$W/bs-diff"
two_alike diff "$W/bs-diff"
"$CAIRN" restore -n -t "$W/bs-t" latest > "$W/bs-restore"
two_alike "restore -n" "$W/bs-restore"
"$CAIRN" rewrite -n --exclude new latest > "$W/bs-rewrite"
two_alike "rewrite -n" "$W/bs-rewrite"
"$CAIRN" forget -n --keep-last 1 > "$W/bs-forget"
two_alike "forget -n" "$W/bs-forget"
echo "PASS"
