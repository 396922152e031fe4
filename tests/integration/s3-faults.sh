#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A repository in S3 behind a server or a network that misbehaves (docs/S3.md
# §5, DESIGN.md "Listings"): a proxy between cairn and a real Ceph RGW on
# 127.0.0.1 leaves keys out of listings, answers 404 for what is there, repeats
# a page of a listing. Prune never deletes data on the word of one listing; a
# listing out of order is made again, then refused.
. "$(dirname "$0")/lib.sh"

s3_setup
fault_proxy
export CAIRN_CACHE_DIR="$W/cache"
mkdir -p "$W/s1" "$W/s2"
head -c 300000 /dev/urandom > "$W/s1/f1"
head -c 300000 /dev/urandom > "$W/s2/f2"

# mk2 PREFIX: a repository s3://$B/PREFIX holding two snapshots, of s1 and then
# of s2; sets R and S2 (the second one's ID).
mk2() {
	R="s3://$B/$1"
	"$CAIRN" -r "$R" init --kdf-log2n 10 > /dev/null || fail "init of $R"
	"$CAIRN" -r "$R" backup "$W/s1" > /dev/null || fail "backup of s1 into $R"
	S2=$("$CAIRN" -r "$R" backup "$W/s2" | sed -n 's/^snapshot \([0-9a-f]*\) saved$/\1/p')
	[ -n "$S2" ] || fail "backup of s2 into $R"
}
# whole R: both snapshots there, and every blob they need.
whole() {
	"$CAIRN" -r "$1" check > "$W/check" 2>&1 || fail "$1 lost data: $(cat "$W/check")"
	[ "$("$CAIRN" -r "$1" snapshots --json | grep -o '"short_id"' | wc -l)" = 2 ] ||
		fail "$1 does not hold two snapshots: $("$CAIRN" -r "$1" snapshots)"
}

# ---- a listing of snapshots/ that leaves one out: the cache knows it --------
mk2 hide
rules '[{"m":"GET","p":"list-type=2.*prefix=hide%2Fsnapshots","a":"hide","k":"'"$S2"'"}]'
expect_fail 1 "the listing of snapshots/ is inconsistent: snapshot $S2 is there but not listed" -- \
	"$CAIRN" -r "$R" prune
rules '[]'
whole "$R"
# One that another host removed is gone from the cache too, and prune runs.
CAIRN_CACHE_DIR="$W/cache-other" "$CAIRN" -r "$R" forget "$S2" > /dev/null || fail "forget $S2"
"$CAIRN" -r "$R" prune > "$W/prune" 2>&1 || fail "prune after a forget elsewhere: $(cat "$W/prune")"
ls "$CAIRN_CACHE_DIR"/*/snapshots/ | grep -q "^$S2" && fail "$S2 is still in the cache"
"$CAIRN" -r "$R" check > "$W/check" 2>&1 || fail "check after prune: $(cat "$W/check")"

# ---- a listed snapshot whose GET answers 404 (a cold cache) ----------------
mk2 lost
rules '[{"m":"GET","p":"^/'"$B"'/lost/snapshots/'"$S2"'","a":"status","code":404,"xml":"NoSuchKey"}]'
expect_fail 1 "the listing of snapshots/ is inconsistent: snapshot $S2 is listed but not found" -- \
	env CAIRN_CACHE_DIR="$W/cache-cold" "$CAIRN" -r "$R" prune
rules '[]'
whole "$R"

# ---- a listing that sends a page twice -------------------------------------
# Three snapshots (s1 twice, s2 once) in pages of two: the first page repeated
# named s2's only snapshot twice, and forget kept one copy and removed the other.
mk2 dup
"$CAIRN" -r "$R" backup "$W/s1" > /dev/null || fail "third backup into $R"
rules '[{"m":"GET","p":"list-type=2.*prefix=dup%2Fsnapshots","a":"paginate","size":2}]'
[ "$("$CAIRN" -r "$R" snapshots --json | grep -o '"short_id"' | wc -l)" = 3 ] ||
	fail "a listing in pages of two: $("$CAIRN" -r "$R" snapshots)"
rules '[{"m":"GET","p":"list-type=2.*prefix=dup%2Fsnapshots","a":"paginate","size":2,"mode":"dup"}]'
expect_fail 1 "S3 listing of dup/snapshots/ is not in order: key dup/snapshots/[0-9a-f]* repeated" -- \
	"$CAIRN" -r "$R" forget --keep-last 1
rules '[]'
"$CAIRN" -r "$R" snapshots > "$W/list" || fail "snapshots of $R"
grep -q "$S2" "$W/list" || fail "s2's only snapshot is gone: $(cat "$W/list")"
[ "$("$CAIRN" -r "$R" snapshots --json | grep -o '"short_id"' | wc -l)" = 3 ] ||
	fail "a snapshot is gone: $("$CAIRN" -r "$R" snapshots)"

# ---- init where the server hides a repository ------------------------------
# HEAD config says 404 and the listing of keys/ is empty: the listing of the
# whole prefix still shows the repository.
mk2 init
"${AWS[@]}" s3 cp "s3://$B/init/config" "$W/config.before" > /dev/null
keys_before=$("${AWS[@]}" s3 ls "s3://$B/init/keys/" | wc -l)
head404='{"m":"HEAD","p":"^/'"$B"'/init/config","a":"status","code":404,"xml":"NoSuchKey"}'
rules '['"$head404"',{"m":"GET","p":"list-type=2.*prefix=init%2Fkeys","a":"hide","k":"."}]'
expect_fail 1 "'s3://$B/init' is not empty" -- "$CAIRN" -r "$R" init --kdf-log2n 10
# Every listing of the prefix empty too: the config is written only where there
# is none (If-None-Match), and the key init wrote is taken away again.
rules '['"$head404"',{"m":"GET","p":"list-type=2.*prefix=init","a":"empty"}]'
expect_fail 1 "'s3://$B/init' is not empty: it has a config" -- \
	env CAIRN_CACHE_DIR="$W/cache-init" "$CAIRN" -r "$R" init --kdf-log2n 10
rules '[]'
"${AWS[@]}" s3 cp "s3://$B/init/config" "$W/config.after" > /dev/null
cmp -s "$W/config.before" "$W/config.after" || fail "init replaced the config of $R"
[ "$("${AWS[@]}" s3 ls "s3://$B/init/keys/" | wc -l)" = "$keys_before" ] ||
	fail "init left a key in $R: $("${AWS[@]}" s3 ls "s3://$B/init/keys/")"
whole "$R"
CAIRN_CACHE_DIR="$W/cache-init" "$CAIRN" -r "$R" snapshots > /dev/null ||
	fail "the cache of a refused init does not open $R"
# A server that does not implement If-None-Match: a plain PUT, the listing
# having said the prefix is empty.
rules '[{"m":"PUT","p":"^/'"$B"'/init2/config","hdr":"If-None-Match","a":"status","code":501,"xml":"NotImplemented"}]'
"$CAIRN" -r "s3://$B/init2" init --kdf-log2n 10 > "$W/init2" 2>&1 ||
	fail "init where If-None-Match is not implemented: $(cat "$W/init2")"
rules '[]'
"$CAIRN" -r "s3://$B/init2" backup "$W/s1" > /dev/null || fail "backup into init2"

# ---- an index file that a listing hid from the prune that replaced it ------
# Still there afterwards, it made every open on that host warn of a replay; the
# next prune replaces it again, its packs named by the new files.
mk2 idx
"$CAIRN" -r "$R" backup "$W/s1" > /dev/null || fail "third backup into $R"
"$CAIRN" -r "$R" forget --keep-last 1 > /dev/null || fail "forget in $R"
hidden=$("${AWS[@]}" s3 ls "s3://$B/idx/indexes/" | awk 'NR == 1 { print $4 }')
[ -n "$hidden" ] || fail "no index file in $R"
rules '[{"m":"GET","p":"list-type=2.*prefix=idx%2Findexes","a":"hide","k":"'"${hidden:0:16}"'"}]'
"$CAIRN" -r "$R" prune --max-unused 0 > /dev/null 2>&1 || fail "prune with an index file hidden"
rules '[]'
"${AWS[@]}" s3 ls "s3://$B/idx/indexes/$hidden" > /dev/null || fail "the hidden index file went"
"$CAIRN" -r "$R" snapshots > /dev/null 2> "$W/warn" ||
	fail "snapshots of $R: $(cat "$W/warn")"
out_has "$W/warn" "skipping index file ${hidden:0:8}: a prune replaced it, and it is back"
"$CAIRN" -r "$R" prune > "$W/prune" 2>&1 || fail "the next prune: $(cat "$W/prune")"
out_has "$W/prune" "removed 1 index file that an earlier prune had replaced"
"${AWS[@]}" s3 ls "s3://$B/idx/indexes/$hidden" > /dev/null &&
	fail "the replaced index file is still there"
CAIRN_CACHE_DIR="$W/cache-idx2" "$CAIRN" -r "$R" check --read-data > "$W/check" 2>&1 ||
	fail "check of $R: $(cat "$W/check")"
out_lacks "$W/check" "warning"

# ---- an upload of a pack that a failed backup left -------------------------
# prune aborts the multipart uploads under packs/ initiated long ago, not a
# recent one (a running backup's), nor one elsewhere under the prefix.
uploads() { # PREFIX: the keys of the unfinished uploads under it
	"${AWS[@]}" s3api list-multipart-uploads --bucket "$B" --prefix "$1" \
		--query 'Uploads[].Key' --output text | tr '\t' '\n' | grep -v '^None$' || true
}
mk2 mp
for k in mp/packs/ab/abandoned mp/other; do
	"${AWS[@]}" s3api create-multipart-upload --bucket "$B" --key "$k" > /dev/null ||
		fail "create-multipart-upload $k"
done
"$CAIRN" -r "$R" prune > "$W/prune" 2>&1 || fail "prune of $R: $(cat "$W/prune")"
out_lacks "$W/prune" "aborted"
[ "$(uploads mp/ | wc -l)" = 2 ] || fail "prune aborted a recent upload: $(uploads mp/)"
rules '[{"m":"GET","p":"uploads","a":"oldinit"}]'
"$CAIRN" -r "$R" prune > "$W/prune" 2>&1 || fail "prune of $R: $(cat "$W/prune")"
rules '[]'
out_has "$W/prune" "aborted 1 abandoned upload of packs"
[ "$(uploads mp/)" = mp/other ] || fail "uploads left: $(uploads mp/)"
whole "$R"

# ---- key passwd whose removal of the old key file fails --------------------
# Half done: the new password works and the old one still does; the error says
# so, and which key to remove, rather than only that a DELETE failed.
mk2 kp
old=$("$CAIRN" -r "$R" key list | awk '$1 == "*" { print $2 }')
printf 'another password\n' > "$W/npw"
rules '[{"m":"DELETE","p":"/keys/","a":"status","code":500,"xml":"InternalError"}]'
CAIRN_S3_RETRIES=1 expect_fail 1 "the new password works (key [0-9a-f]*), but the old one still does.*cairn key remove $old" -- \
	"$CAIRN" -r "$R" key passwd --new-password-file "$W/npw"
rules '[]'
"$CAIRN" -r "$R" --password-file "$W/npw" snapshots > /dev/null || fail "the new password does not open $R"
"$CAIRN" -r "$R" --password-file "$W/npw" key remove "$old" > /dev/null ||
	fail "key remove $old as told"
expect_fail 1 "wrong password" -- "$CAIRN" -r "$R" snapshots
exit 0
