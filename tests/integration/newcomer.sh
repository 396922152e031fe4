#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What a newcomer meets: the README's 'export CAIRN_PASSWORD_FILE=...; cairn init'
# with a file that does not exist yet, passwords too short, 'key add' without a
# terminal, 'cairn help COMMAND', and every command in cairn(1) and the bash
# completion, which offers every option the help texts list.
. "$(dirname "$0")/lib.sh"

PTY=(python3 "$(dirname "$0")/pty-answer.py")
mkdir -p "$W/src"
echo hello > "$W/src/f"

# ---- init writes the password file it is pointed at ---------------------------
export CAIRN_REPO="$W/repo" CAIRN_PASSWORD_FILE="$W/etc/cairn/password"
"${PTY[@]}" 'a good password' 'a good password' -- "$CAIRN" init --kdf-log2n 10 > "$W/init.out" ||
	fail "init on a terminal: $(cat "$W/init.out")"
grep -q "wrote its password to '$CAIRN_PASSWORD_FILE' (mode 0600)" "$W/init.out" ||
	fail "init did not say where the password is: $(cat "$W/init.out")"
[ "$(cat "$CAIRN_PASSWORD_FILE")" = "a good password" ] || fail "password file: $(cat "$CAIRN_PASSWORD_FILE")"
[ "$(stat -c %a "$CAIRN_PASSWORD_FILE")" = 600 ] && [ "$(stat -c %a "$W/etc/cairn")" = 700 ] ||
	fail "password file modes: $(stat -c '%a %n' "$CAIRN_PASSWORD_FILE" "$W/etc/cairn")"
"$CAIRN" backup "$W/src" > /dev/null || fail "backup with the written password file"
[ "$("$CAIRN" snapshots | grep -c '^[0-9a-f]\{8\}  ')" = 1 ] || fail "snapshots"
# An existing file is used as it is, and never asked for.
export CAIRN_REPO="$W/repo2"
"$CAIRN" init --kdf-log2n 10 < /dev/null > /dev/null || fail "init with an existing password file"
"$CAIRN" snapshots > /dev/null || fail "the existing password file opens repo2"

# Without a terminal, a missing file is an error that says what to do.
export CAIRN_REPO="$W/repo3" CAIRN_PASSWORD_FILE="$W/missing/password"
expect_fail 1 "password file '$W/missing/password' does not exist: write the password" -- \
	setsid -w "$CAIRN" init --kdf-log2n 10
[ ! -e "$W/repo3" ] && [ ! -e "$W/missing/password" ] || fail "a failed init left files"
# Answers that differ, or a password that is too short: no file, no repository.
rc=0
"${PTY[@]}" 'one password' 'another one' -- "$CAIRN" init --kdf-log2n 10 > "$W/init2.out" || rc=$?
[ "$rc" = 1 ] && grep -q "passwords do not match" "$W/init2.out" || fail "mismatch: $(cat "$W/init2.out")"
rc=0
"${PTY[@]}" short short -- "$CAIRN" init --kdf-log2n 10 > "$W/init3.out" || rc=$?
[ "$rc" = 1 ] && grep -q "has 5 characters, fewer than 8" "$W/init3.out" || fail "short: $(cat "$W/init3.out")"
[ ! -e "$W/repo3" ] && [ ! -e "$W/missing/password" ] || fail "a refused password left files"

# ---- new passwords: 8 characters, unless --insecure-password ----------------
printf 'x\n' > "$W/short"
expect_fail 1 "the new password has 1 character, fewer than 8" -- \
	"$CAIRN" --password-file "$W/short" init --kdf-log2n 10
[ ! -e "$W/repo3" ] || fail "init with a short password made a repository"
"$CAIRN" --password-file "$W/short" init --kdf-log2n 10 --insecure-password > /dev/null ||
	fail "init --insecure-password"
# Eight characters of UTF-8 are eight characters, not their bytes.
printf '\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n' > "$W/four"
export CAIRN_PASSWORD_FILE="$W/short"
expect_fail 1 "has 4 characters" -- "$CAIRN" key add --new-password-file "$W/four"
"$CAIRN" key add --new-password-file "$W/four" --insecure-password | grep -q "added key" ||
	fail "key add --insecure-password"
# key add without a terminal: the new password is what is missing.
expect_fail 1 "no new password given: use --new-password-file" -- setsid -w "$CAIRN" key add
! grep -q CAIRN_PASSWORD_FILE "$W/err" || fail "key add blames CAIRN_PASSWORD_FILE: $(cat "$W/err")"

# ---- help --------------------------------------------------------------------
"$CAIRN" help backup > "$W/h1"
"$CAIRN" backup --help > "$W/h2"
cmp -s "$W/h1" "$W/h2" && grep -q "^usage: cairn backup" "$W/h1" || fail "cairn help backup: $(head -3 "$W/h1")"
"$CAIRN" help | cmp -s - <("$CAIRN" --help) || fail "cairn help"
expect_fail 2 "'nope' is not a cairn command" -- "$CAIRN" help nope
# Every command: its help works, cairn(1) has its section, the completion knows it.
commands=$("$CAIRN" --help | awk '/^commands:/ { on = 1; next } on && !NF { exit } on { print $1 }')
[ "$(wc -w <<< "$commands")" -gt 20 ] || fail "commands: $commands"
completion=$(sed -n '/local commands="/,/"$/p' "$SRCDIR/packaging/completion/cairn")
for c in $commands; do
	"$CAIRN" help "$c" | grep -q "^usage: cairn $c" || fail "cairn help $c"
	grep -q "^\.SS \"cairn $(sed 's/-/\\\\-/g' <<< "$c")[ \"]" "$SRCDIR/packaging/man/cairn.1" ||
		fail "cairn(1) lacks a section for '$c'"
	grep -qw -- "$c" <<< "$completion" || fail "bash completion lacks '$c'"
done
grep -q 's3://' "$SRCDIR/packaging/man/cairnfs.1" || fail "cairnfs(1) does not mention s3://"

# Every option a command's help lists, and every global one, is completed; a
# global option's value is not taken for the command.
_init_completion() {
	words=("${COMP_WORDS[@]}")
	cword=$COMP_CWORD
	cur=${words[cword]}
	prev=${words[cword - 1]}
}
_filedir() { :; }
. "$SRCDIR/packaging/completion/cairn"
offered() { # words...: what the completion offers for the last one
	COMP_WORDS=(cairn "$@")
	COMP_CWORD=$#
	COMPREPLY=()
	_cairn
	printf '%s\n' "${COMPREPLY[@]}"
}
for c in $commands; do
	w=("$c")
	[ "$c" = key ] && w=(key add) # its first word is a subcommand
	have=$(offered "${w[@]}" -)
	for f in $("$CAIRN" help "$c" | grep -oE '^ {2,4}(-[a-zA-Z0-9], )?--?[a-zA-Z0-9][a-zA-Z0-9-]*' |
		tr -d ' ' | tr ',' '\n'); do
		grep -qxF -- "$f" <<< "$have" || fail "completion of 'cairn ${w[*]}' lacks $f"
	done
done
have=$(offered -)
for f in $("$CAIRN" --help | sed -n '/^usage:/,/^$/p' | grep -oE '(^|[[ |])--?[a-z][a-z-]*' | tr -d '[ |'); do
	grep -qxF -- "$f" <<< "$have" || fail "completion of the global options lacks $f"
done
# The S3 options are global: listed by cairn --help and in cairn(1)'s GLOBAL
# OPTIONS (help sync sends the reader there), and completed before a command.
s3opts=$("$CAIRN" --help | sed -n '/^S3 options/,/^$/p' | grep -oE '^  --s3-[a-z-]+' | tr -d ' ')
[ "$(wc -w <<< "$s3opts")" = 7 ] || fail "cairn --help lists S3 options: $s3opts"
globals=$(sed 's/\\-/-/g' "$SRCDIR/packaging/man/cairn.1" | sed -n '/^\.SH GLOBAL OPTIONS/,/^\.SH /p')
for f in $s3opts; do
	grep -q -- "^\.B[IR] $f " <<< "$globals" || fail "cairn(1) GLOBAL OPTIONS lacks $f"
	grep -qxF -- "$f" <<< "$have" || fail "completion of the global options lacks $f"
	"$CAIRN" help sync | tr '\n' ' ' | grep -q -- "$f" || fail "help sync does not name $f"
done
[ "$(offered --cache-dir "$W/c" bac)" = backup ] || fail "a command after --cache-dir DIR: $(offered --cache-dir "$W/c" bac)"
# cairn(1) names every option of each command's help in the command's section
# (one of its short and long forms; "filters" stands for --host, --path, --tag).
man_txt=$(sed 's/\\-/-/g' "$SRCDIR/packaging/man/cairn.1")
for c in $commands; do
	sec=$(awk -v h=".SS \"cairn $c" 'index($0, ".SS ") == 1 { on = index($0, h " ") == 1 || index($0, h "\"") == 1 } on' <<< "$man_txt")
	grep -q filters <<< "$sec" && sec="$sec --host --path --tag"
	for f in $("$CAIRN" help "$c" | grep -oE '^ {2,4}(-[a-zA-Z0-9], )?--?[a-zA-Z0-9][a-zA-Z0-9-]*' | tr -d ' '); do
		grep -qE -- "(^|[^a-z-])(${f/,/|})\b" <<< "$sec" || fail "cairn(1) on '$c' lacks ${f/,/ or }"
	done
done
# cairnfs: its flags and the -o options its help names (not libfuse's, below them).
compopt() { :; }
offered_fs() {
	COMP_WORDS=(cairnfs "$@")
	COMP_CWORD=$#
	COMPREPLY=()
	_cairnfs
	printf '%s\n' "${COMPREPLY[@]}"
}
"$CAIRNFS" --help > "$W/fs.help" 2>&1 || true
sed -n '/^options:/,/^$/p' "$W/fs.help" > "$W/fs.opts"
[ "$(grep -c -- '-o ' "$W/fs.opts")" -ge 8 ] || fail "cairnfs --help: $(cat "$W/fs.help")"
have=$(offered_fs -)
for f in $(grep -oE '^ {2}-[a-zA-Z]|(, |^ {2})--[a-z-]+' "$W/fs.opts" | tr -d ' ,'); do
	grep -qxF -- "$f" <<< "$have" || fail "completion of cairnfs lacks $f"
done
have=$(offered_fs -o '')
for o in $(grep -oE '^ {2}-o [a-z_]+=?' "$W/fs.opts" | cut -c6-); do
	grep -qxF -- "$o" <<< "$have" || fail "completion of cairnfs -o lacks $o"
done
# ... and docs/MOUNT.md's table of options names each of them.
for o in $(grep -oE '^ {2}-o [a-z_]+' "$W/fs.opts" | cut -c6-); do
	grep -q -- "^| .*\`-o $o[=\`]" "$SRCDIR/docs/MOUNT.md" || fail "docs/MOUNT.md lacks -o $o"
done

# ---- one of a thing is never "1 things" --------------------------------------
export CAIRN_REPO="$W/repo-one" CAIRN_PASSWORD_FILE="$W/one.pw"
echo 'a good password' > "$CAIRN_PASSWORD_FILE"
"$CAIRN" init --kdf-log2n 10 > /dev/null
echo one | "$CAIRN" backup --stdin > "$W/one.out" 2>&1 || fail "backup --stdin: $(cat "$W/one.out")"
"$CAIRN" status >> "$W/one.out" 2>&1 || true # unmet rules: exit 1
"$CAIRN" report --html "$W/one.html" >> "$W/one.out" 2>&1 || fail "report: $(cat "$W/one.out")"
grep -q "; 1 directory$" "$W/one.out" && grep -q "^repository $CAIRN_REPO: 1 snapshot, " "$W/one.out" && grep -q ">1 snapshot\. " "$W/one.html" ||
	fail "one of a thing: $(cat "$W/one.out")"
! grep -E "(^|[^0-9.])1 (snapshots|directories|blobs|errors|objects|requests|packs|runs|entries)\b" \
	"$W/one.out" "$W/one.html" || fail "'1 things' above"
echo "ok"
