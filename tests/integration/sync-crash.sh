#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of `cairn sync` at random moments, against a real S3 server (a private
# Ceph RGW, tests/s3/rgw-launch.sh), results checked with Debian's aws CLI:
# - push: after each kill the dead run's shared lock blocks nothing, a re-run
#   completes, and the bucket holds each repository file exactly once, with its
#   size and MD5, and no multipart upload left open;
# - pull (`sync --from`): after each kill a re-run into the same directory
#   completes, the copy passes `check --read-data`, and every snapshot restores
#   byte-identically to the source it was taken of.
# SYNC_ITERATIONS (default 6) kills of each.
. "$(dirname "$0")/lib.sh"

# Short retries; the cases that need long ones set their own.
s3_setup
T="$W/trace"
O="$W/o"
mkdir -p "$O"

# crash_run TRIGGER -- CMD... (lib.sh, crash-run.py): SIGKILL CMD at TRIGGER.

# remote_list: "size md5 key" of every repository object under s3://$B/repo/,
# sorted (the repository's files are below the multipart threshold: ETag = MD5);
# locks are not copied (a killed sync leaves its own)
remote_list() {
	"${AWS[@]}" s3api list-objects-v2 --bucket "$B" --prefix repo/ \
		--query 'Contents[].[Size,ETag,Key]' --output text |
		grep -v '^None$' | tr -d '"' | sed "s#\trepo/# #; s#\t# #" | grep -v ' locks/' |
		LC_ALL=C sort || true
}
local_list() { # REPO: the same for the files sync uploads
	(cd "$1" && find config keys packs indexes snapshots -type f -printf '%s %p\n' 2>/dev/null |
		while read -r size path; do echo "$size $(md5sum < "$path" | cut -d' ' -f1) $path"; done) |
		LC_ALL=C sort
}
remote_complete() { # WHEN
	local_list "$CAIRN_REPO" > "$O/local.list"
	remote_list > "$O/remote.list"
	diff "$O/local.list" "$O/remote.list" >&2 || fail "$1: the bucket differs from the repository"
	[ -z "$(cut -d' ' -f3 "$O/remote.list" | uniq -d)" ] || fail "$1: duplicate keys"
}
no_uploads() {
	local n
	n=$("${AWS[@]}" s3api list-multipart-uploads --bucket "$B" --prefix repo/ \
		--query 'length(Uploads || `[]`)' --output text)
	[ "$n" = 0 ] || fail "$n multipart uploads left open"
}
# dead_lock DIR KIND: the killed sync left its lock of KIND behind. Only asked
# when the kill came after the first request and before the last one: a kill
# between the last request and the exit may find the lock released already.
dead_lock() {
	grep -lx "kind = $2" "$1"/locks/* 2>/dev/null | xargs -r grep -lx "command = sync" |
		grep -q . || fail "no $2 lock of the killed sync in $1: $(cat "$1"/locks/* 2>/dev/null)"
}

init_repo --chunk-size 64K/128K/512K --pack-size 1M
R=$(realpath "$W")
SRC="$R/src"
mkdir -p "$SRC/d"
for i in $(seq 1 12); do head -c $(((RANDOM % 32 + 1) * 8192)) /dev/urandom > "$SRC/d/f$i"; done
head -c 2000000 /dev/urandom > "$SRC/big"
declare -A sum_of # snapshot ID -> tree_sum of the source it was taken of
snapshot_ids() { (cd "$1/snapshots" && find . -type f -printf '%f\n' | sort); }
backup() {
	"$CAIRN" backup "$SRC" > /dev/null
	local id s
	s=$(tree_sum "$SRC")
	for id in $(snapshot_ids "$CAIRN_REPO"); do
		[ -n "${sum_of[$id]:-}" ] || sum_of[$id]=$s
	done
}
change() { # I
	head -c 2500000 /dev/urandom > "$SRC/new-$1"
	echo "run $1" > "$SRC/run.txt"
}
backup
"$CAIRN" sync "s3://$B/repo" > /dev/null
remote_complete "first push"
# How many requests an incremental push makes: kill points are drawn from these.
change 0
backup
: > "$T"
t0=$EPOCHREALTIME
CAIRN_S3_TRACE="$T" "$CAIRN" sync "s3://$B/repo" > /dev/null
push_ms=$(ms_since "$t0")
n_push=$(wc -l < "$T")
echo "an incremental push makes $n_push requests in $push_ms ms"
[ "$n_push" -ge 4 ] || fail "an incremental push made only $n_push requests: $(cat "$T")"

iterations=${SYNC_ITERATIONS:-6}
killed=0
for i in $(seq 1 "$iterations"); do
	change "$i"
	backup
	rm -rf "$CAIRN_REPO/locks"/*
	if ((i % 3 == 0)); then
		trigger="ms:$(ms_within "$push_ms")"
	else
		trigger="lines:$T:$((RANDOM % (n_push - 1) + 1)):$((RANDOM % 10))"
	fi
	: > "$T"
	res=$(CAIRN_S3_TRACE="$T" crash_run "$trigger" -- "$CAIRN" sync --s3-connections 2 "s3://$B/repo")
	echo "[$SECONDS s] push $i: $trigger: $res ($(wc -l < "$T") requests)"
	case $res in
	killed)
		killed=$((killed + 1))
		[ ! -s "$T" ] || [ "$(wc -l < "$T")" -ge "$n_push" ] || dead_lock "$CAIRN_REPO" shared
		;;
	"exited 0") ;;
	*) fail "push $i ($trigger) $res" ;;
	esac
	"$CAIRN" sync "s3://$B/repo" > "$O/push" 2>&1 || fail "push $i: re-run failed: $(cat "$O/push")"
	remote_complete "push $i ($trigger, $res)"
done
no_uploads

# Pulls: each into a new directory, killed, then run again into it.
: > "$T"
t0=$EPOCHREALTIME
CAIRN_S3_TRACE="$T" "$CAIRN" sync --from "s3://$B/repo" -r "$W/pull-0" > /dev/null
pull_ms=$(ms_since "$t0")
n_pull=$(wc -l < "$T")
echo "a pull makes $n_pull requests in $pull_ms ms"
[ "$n_pull" -ge 10 ] || fail "a pull made only $n_pull requests: $(cat "$T")"
rm -rf "$W/pull-0"
for i in $(seq 1 "$iterations"); do
	P="$W/pull-$i"
	if ((i % 3 == 0)); then
		trigger="ms:$(ms_within "$pull_ms")"
	else
		trigger="lines:$T:$((RANDOM % (n_pull - 1) + 1)):$((RANDOM % 10))"
	fi
	: > "$T"
	res=$(CAIRN_S3_TRACE="$T" crash_run "$trigger" -- \
		"$CAIRN" sync --s3-connections 2 --from "s3://$B/repo" -r "$P")
	echo "[$SECONDS s] pull $i: $trigger: $res ($(wc -l < "$T") requests)"
	case $res in
	killed)
		killed=$((killed + 1))
		[ ! -s "$T" ] || [ "$(wc -l < "$T")" -ge "$n_pull" ] || dead_lock "$P" exclusive
		;;
	"exited 0") ;;
	*) fail "pull $i ($trigger) $res" ;;
	esac
	"$CAIRN" sync --from "s3://$B/repo" -r "$P" > "$O/pull" 2>&1 ||
		fail "pull $i: re-run failed: $(cat "$O/pull")"
	for d in config keys packs snapshots; do
		diff -r "$CAIRN_REPO/$d" "$P/$d" >&2 || fail "pull $i: $d differs"
	done
	[ -z "$(ls "$P/tmp")" ] || fail "pull $i: temp files left: $(ls "$P/tmp")"
	"$CAIRN" -r "$P" check --read-data > "$O/check" 2>&1 ||
		fail "pull $i: check --read-data: $(cat "$O/check")"
	n=0
	for id in $(snapshot_ids "$P"); do
		rm -rf "$O/restore"
		"$CAIRN" -r "$P" restore "$id" --target "$O/restore" > /dev/null 2> "$O/restore.err" ||
			fail "pull $i: restore of $id: $(cat "$O/restore.err")"
		[ "$(tree_sum "$O/restore$SRC")" = "${sum_of[$id]}" ] ||
			fail "pull $i: snapshot $id does not restore what was backed up"
		n=$((n + 1))
	done
	[ "$n" = "${#sum_of[@]}" ] || fail "pull $i: $n snapshots, expected ${#sum_of[@]}"
	rm -rf "$P"
done
echo "$killed of $((2 * iterations)) syncs killed"
[ "$killed" -ge $((2 * iterations * 2 / 3)) ] || fail "only $killed of $((2 * iterations)) syncs were killed"
echo ok
