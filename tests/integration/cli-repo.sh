#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The foundation commands end to end: init, key management, cat, rebuild-index,
# and clear errors for bad input.
. "$(dirname "$0")/lib.sh"

# Missing repository: clear error before any password prompt.
expect_fail 1 "no repository at" -- "$CAIRN" cat config
expect_fail 2 "no repository given" -- env -u CAIRN_REPO "$CAIRN" cat config
expect_fail 2 "not a cairn command" -- "$CAIRN" frobnicate
expect_fail 2 "unknown option" -- "$CAIRN" init --bogus
"$CAIRN" --version | grep -q "^cairn "
"$CAIRN" --help | grep -q "rebuild-index"
"$CAIRN" init --help | grep -q -- "--chunk-size"

init_repo --pack-size 1M
[ -f "$CAIRN_REPO/config" ] || fail "no config"
[ "$(stat -c %a "$CAIRN_REPO")" = 700 ] || fail "repository directory is not 0700"
[ "$(stat -c %a "$CAIRN_REPO/config")" = 600 ] || fail "config is not 0600"
expect_fail 1 "already holds a repository" -- "$CAIRN" init --kdf-log2n 10

"$CAIRN" cat config > "$W/config"
head -1 "$W/config" | grep -qx "cairn-repository 1" || fail "config lacks version line"
grep -q "^pack-size = 1048576$" "$W/config" || fail "pack size not recorded"

# Wrong password: one line, exit 1, nothing changed.
before=$(cd "$CAIRN_REPO" && find . -type f -newer "$W/pw" | sort | xargs -r sha256sum)
printf 'wrong\n' > "$W/bad"
expect_fail 1 "wrong password" -- "$CAIRN" --password-file "$W/bad" cat config
expect_fail 1 "wrong password" -- env -u CAIRN_PASSWORD_FILE CAIRN_PASSWORD=wrong "$CAIRN" cat config
expect_fail 1 "password command failed" -- env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command false cat config
env -u CAIRN_PASSWORD_FILE "$CAIRN" --password-command "cat $W/pw" cat config >/dev/null
# No password source and no terminal: a clear error, not a hang.
expect_fail 1 "no password given" -- env -u CAIRN_PASSWORD_FILE setsid "$CAIRN" cat config </dev/null
after=$(cd "$CAIRN_REPO" && find . -type f -newer "$W/pw" | sort | xargs -r sha256sum)
[ "$before" = "$after" ] || fail "a failed open modified the repository"

# Keys: add a second password, open with it, change it, remove the first.
printf 'second secret\n' > "$W/pw2"
"$CAIRN" key add --new-password-file "$W/pw2" --key-label laptop | grep -q "added key"
[ "$("$CAIRN" key list --json | grep -o '"name"' | wc -l)" = 2 ] || fail "expected 2 keys"
"$CAIRN" --password-file "$W/pw2" key list | grep -q laptop || fail "label not listed"
first=$("$CAIRN" key list | awk '$1=="*"{print $2}')
second=$("$CAIRN" --password-file "$W/pw2" key list | awk '$1=="*"{print $2}')
[ -n "$first" ] && [ -n "$second" ] && [ "$first" != "$second" ] || fail "current key not marked"
expect_fail 1 "the one in use" -- "$CAIRN" key remove "$first"
"$CAIRN" --password-file "$W/pw2" key remove "$first" | grep -q removed
expect_fail 1 "wrong password" -- "$CAIRN" cat config
expect_fail 1 "last key" -- "$CAIRN" --password-file "$W/pw2" key remove "$second"
printf 'third secret\n' > "$W/pw3"
"$CAIRN" --password-file "$W/pw2" key passwd --new-password-file "$W/pw3" | grep -q changed
expect_fail 1 "wrong password" -- "$CAIRN" --password-file "$W/pw2" cat config
"$CAIRN" --password-file "$W/pw3" cat config >/dev/null
cp "$W/pw3" "$W/pw"

# Unknown format version: refused before asking for a password.
cp -a "$CAIRN_REPO" "$W/v2"
sed -i '1s/.*/cairn-repository 2/' "$W/v2/config"
expect_fail 1 "unsupported repository format version 2" -- env -u CAIRN_PASSWORD_FILE "$CAIRN" -r "$W/v2" cat config
# A tampered config is detected once unlocked.
cp -a "$CAIRN_REPO" "$W/tamper"
sed -i 's/^compression = 3$/compression = 4/' "$W/tamper/config"
expect_fail 1 "authentication failed" -- "$CAIRN" -r "$W/tamper" cat config
# A truncated key file reads as no usable key, never as a crash.
cp -a "$CAIRN_REPO" "$W/trunc"
for k in "$W"/trunc/keys/*; do head -c 40 "$k" > "$k.x" && mv "$k.x" "$k"; done
expect_fail 1 "key file" -- "$CAIRN" -r "$W/trunc" cat config

# rebuild-index works on an empty repository and after the index is deleted.
"$CAIRN" rebuild-index | grep -q "rebuilt from 0 packs"
rm -rf "$CAIRN_REPO/index"
"$CAIRN" rebuild-index | grep -q "rebuilt from 0 packs"
[ -f "$CAIRN_REPO/index/data.mdb" ] || fail "index not recreated"
expect_fail 1 "no pack matches" -- "$CAIRN" cat pack abcd
expect_fail 1 "not an ID" -- "$CAIRN" cat blob xyz
echo ok
