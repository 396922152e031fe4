#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Ransomware-safe hosts on a real Ceph RGW (docs/S3.md §8): a host with a
# write-only key and credentials that may put and get objects under the
# repository's prefix but never delete them backs up straight into a versioned
# bucket (locks and index files included, its lock left released), twice, the
# second incrementally; a delete with those credentials fails with
# AccessDenied, an overwrite leaves the old version; the admin's key and
# credentials read everything, prune, and remove the released locks; cairn
# status counts the bucket as the immutable copy; with Object Lock, what the
# host uploads through its job file carries the job's retention.
. "$(dirname "$0")/lib.sh"

s3_setup
RGW_USER=tester # the user rgw-launch.sh creates, owner of the bucket
O="$W/o"
mkdir -p "$O"
URL="s3://$B/r"
MARK="s3wo-marker-2b8e"
printf 'adminpass-1\n' > "$W/admin.pw"
printf 'hostpass-22\n' > "$W/host.pw"
CEPH=(-c "$RGW_DIR/ceph.conf")
# The admin: the bucket owner's credentials, a full key, a cache of its own.
admin() { CAIRN_CACHE_DIR="$W/c/admin-cache" CAIRN_PASSWORD_FILE="$W/admin.pw" "$CAIRN" -r "$URL" "$@"; }
# The host: its own S3 user, a write-only key, its own cache (a machine apart).
host_env=(env AWS_ACCESS_KEY_ID=HOSTKEY1 AWS_SECRET_ACCESS_KEY=HOSTSECRET1
	CAIRN_CACHE_DIR="$W/c/host-cache" CAIRN_PASSWORD_FILE="$W/host.pw")
host() { "${host_env[@]}" "$CAIRN" -r "$URL" "$@"; }
host_aws() { "${host_env[@]}" "${AWS[@]}" "$@"; }
# aws-cli 2.9 cannot print RGW's errors (an empty <Message>): the reply's code,
# read from its debug log.
denied() { # aws arguments...: the request must fail with AccessDenied
	if host_aws --debug "$@" > "$O/aws" 2>&1; then
		fail "the host's credentials may: aws $*"
	fi
	grep -q '<Code>AccessDenied</Code>' "$O/aws" || fail "aws $* failed otherwise: $(tail -3 "$O/aws")"
}

# ---- the bucket: versioning, and a policy for the host's user (docs/S3.md §8) ----------
# On RGW the host is a subuser of the bucket's owner, which then owns what the
# host writes; it may only read, and the bucket policy grants the rest.
timeout 60 radosgw-admin "${CEPH[@]}" subuser create --uid="$RGW_USER" \
	--subuser="$RGW_USER:host1" --access=read > /dev/null &&
	timeout 60 radosgw-admin "${CEPH[@]}" key create --subuser="$RGW_USER:host1" \
		--key-type=s3 --access-key=HOSTKEY1 --secret-key=HOSTSECRET1 > /dev/null ||
	fail "cannot create the host's subuser"
policy() { # BUCKET PREFIX: the policy of docs/S3.md §8 for the subuser
	sed -e "s|BUCKET|$1|g" -e "s|PREFIX|$2|g" \
		-e "s|arn:aws:iam::ACCOUNT:user/HOST|arn:aws:iam:::user/$RGW_USER:host1|g" \
		"$SRCDIR/packaging/s3-host-policy.json"
}
"${AWS[@]}" s3api put-bucket-versioning --bucket "$B" --versioning-configuration Status=Enabled ||
	fail "cannot enable versioning"
"${AWS[@]}" s3api put-bucket-policy --bucket "$B" --policy "$(policy "$B" r)" ||
	fail "RGW refused the policy of packaging/s3-host-policy.json"

# ---- the admin creates the repository and the host's key ----------------------------------
admin init --kdf-log2n 10 --chunk-size 64K/128K/512K --pack-size 1M > /dev/null || fail "init"
admin key add --write-only --new-password-file "$W/host.pw" --key-label host1 > /dev/null ||
	fail "key add --write-only"

SRC="$W/src"
mkdir -p "$SRC/docs" "$SRC/bin"
for i in $(seq 1 20); do echo "note $i $MARK" > "$SRC/docs/n$i.txt"; done
head -c 500000 /dev/urandom > "$SRC/bin/random"
{ echo "$MARK"; seq 1 100000; } > "$SRC/bin/numbers"
files=22

# ---- two backups with the host's credentials and key -------------------------------------
host backup --json "$SRC" > "$O/b1.json" 2> "$O/b1.err" || fail "host backup 1: $(cat "$O/b1.err")"
[ "$(json_field "$O/b1.json" files_new)" = $files ] || fail "backup 1: $(tail -1 "$O/b1.json")"
cp -a "$SRC" "$W/v1"
echo "changed $MARK" >> "$SRC/docs/n3.txt"
host backup --json "$SRC" > "$O/b2.json" 2> "$O/b2.err" || fail "host backup 2: $(cat "$O/b2.err")"
[ "$(json_field "$O/b2.json" files_unmodified)" = $((files - 1)) ] ||
	fail "backup 2 was not incremental: $(tail -1 "$O/b2.json")"
[ "$(json_field "$O/b2.json" bytes_read)" = "$(stat -c %s "$SRC/docs/n3.txt")" ] ||
	fail "backup 2 read more than the changed file: $(tail -1 "$O/b2.json")"
grep -q -- "$MARK" "$O"/b[12].* && fail "the host's backups printed backed-up data"
listing() { # PREFIX: the keys below r/PREFIX, one a line
	"${AWS[@]}" s3api list-objects-v2 --bucket "$B" --prefix "r/$1" \
		--query 'Contents[].Key || `[]`' --output text | tr '\t' '\n' | grep . || true
}
[ "$(listing snapshots/ | wc -w)" = 2 ] || fail "snapshots in the bucket: $(listing snapshots/)"
[ "$(listing indexes/ | wc -w)" -ge 2 ] || fail "no index files from the host: $(listing indexes/)"
# Its locks could not be deleted: each was written again, released.
locks=$(listing locks/)
[ "$(echo "$locks" | wc -w)" = 2 ] || fail "locks left: $locks"
for k in $locks; do
	"${AWS[@]}" s3 cp --no-progress "s3://$B/$k" - | grep -q '^released = [0-9]*$' ||
		fail "lock $k is not marked released"
done
# The host reads nothing back.
host snapshots > "$O/out" 2>&1 && fail "snapshots with the write-only key succeeded"
grep -q "this key can only add backups" "$O/out" || fail "snapshots said: $(cat "$O/out")"
host dump latest "$SRC/bin/numbers" > "$O/out" 2>&1 && fail "dump with the write-only key"
grep -q -- "$MARK" "$O/out" && fail "dump with the write-only key printed data"

# ---- what the host's credentials cannot do -----------------------------------------------
denied s3api delete-object --bucket "$B" --key r/config
denied s3api delete-object --bucket "$B" --key "$(listing snapshots/ | awk '{print $1}')"
denied s3api delete-object --bucket "$B" --key "$(echo "$locks" | awk '{print $1}')"
denied s3api put-bucket-versioning --bucket "$B" --versioning-configuration Status=Suspended
denied s3api put-object --bucket "$B" --key elsewhere/x --body "$W/host.pw"
"${AWS[@]}" s3api put-object --bucket "$B" --key elsewhere/y --body "$W/host.pw" > /dev/null
denied s3api get-object --bucket "$B" --key elsewhere/y "$O/y"
denied s3api list-objects-v2 --bucket "$B"
denied s3api list-objects-v2 --bucket "$B" --prefix elsewhere/
host unlock --all > "$O/out" 2>&1 && fail "unlock --all with the host's credentials succeeded"
[ "$(listing locks/ | wc -w)" = 2 ] || fail "the host removed locks"
# An overwrite keeps the old version: the admin gets the config back.
echo garbage > "$W/garbage"
host_aws s3api put-object --bucket "$B" --key r/config --body "$W/garbage" > /dev/null ||
	fail "the host may put objects under the prefix"
host backup "$SRC" > "$O/out" 2>&1 && fail "a backup trusted an overwritten config"
old=$("${AWS[@]}" s3api list-object-versions --bucket "$B" --prefix r/config \
	--query 'Versions[?IsLatest==`false`].VersionId' --output text)
[ -n "$old" ] || fail "the overwritten config has no older version"
"${AWS[@]}" s3api copy-object --bucket "$B" --key r/config \
	--copy-source "$B/r/config?versionId=$old" > /dev/null || fail "cannot restore the config"

# ---- the admin reads, checks, prunes and tidies the locks ------------------------------------
admin snapshots --json > "$O/snaps.json" || fail "admin snapshots"
mapfile -t ids < <(python3 -c 'import json,sys; [print(s["id"]) for s in json.load(open(sys.argv[1]))]' "$O/snaps.json")
[ "${#ids[@]}" = 2 ] || fail "the admin sees ${#ids[@]} snapshots"
admin restore "${ids[0]}" --target "$W/r1" > /dev/null || fail "admin restore 1"
admin restore "${ids[1]}" --target "$W/r2" > /dev/null || fail "admin restore 2"
diff -r --no-dereference "$W/v1" "$W/r1$SRC" || fail "backup 1 restored differs"
diff -r --no-dereference "$SRC" "$W/r2$SRC" || fail "backup 2 restored differs"
admin check --read-data > "$O/check" 2>&1 || fail "admin check: $(cat "$O/check")"
CAIRN_CACHE_DIR="$W/c/admin-cache" "$CAIRN" -r "$URL" unlock --list > "$O/locks"
[ "$(grep -c '(released)' "$O/locks")" = 2 ] || fail "unlock --list: $(cat "$O/locks")"
# Released locks hold nobody up: prune finishes its record at once.
admin forget --keep-last 1 --prune --max-unused 0 > "$O/prune" 2>&1 || fail "forget --prune: $(cat "$O/prune")"
[ "$(listing prune/ | wc -w)" = 0 ] || fail "prune waits for released locks: $(listing prune/)"
CAIRN_CACHE_DIR="$W/c/admin-cache" "$CAIRN" -r "$URL" unlock > /dev/null || fail "unlock"
[ "$(listing locks/ | wc -w)" = 0 ] || fail "unlock left: $(listing locks/)"
# and the host's next backup goes on from its host cache
echo "again $MARK" >> "$SRC/docs/n4.txt"
host backup --json "$SRC" > "$O/b3.json" 2> "$O/b3.err" || fail "host backup 3: $(cat "$O/b3.err")"
[ "$(json_field "$O/b3.json" files_changed)" = 1 ] || fail "backup 3: $(tail -1 "$O/b3.json")"
admin restore latest --target "$W/r3" > /dev/null || fail "admin restore 3"
diff -r --no-dereference "$SRC" "$W/r3$SRC" || fail "backup 3 restored differs"

# ---- packs no index file names (a run killed before writing one) --------------------------
# The host reads the headers of its own packs (sealed under K_idx, FORMAT.md
# §6.2) with a fresh cache and stores nothing again; so does the admin.
head -c 200000 /dev/urandom > "$SRC/bin/more"
before=$(listing indexes/)
host backup "$SRC" > /dev/null 2> "$O/b4.err" || fail "host backup 4: $(cat "$O/b4.err")"
for k in $(listing indexes/); do
	grep -qx -- "$k" <<< "$before" && continue
	"${AWS[@]}" s3 rm --quiet "s3://$B/$k" || fail "cannot remove $k"
done
rm -rf "$W/c/host-cache" # not beside the source: no directory the backup records changes
host backup --json "$SRC" > "$O/b5.json" 2> "$O/b5.err" || fail "host backup 5: $(cat "$O/b5.err")"
[ "$(json_field "$O/b5.json" files_new)" = $((files + 1)) ] || fail "backup 5: $(tail -1 "$O/b5.json")"
above=$(echo "$SRC" | tr -cd / | wc -c) # trees above $SRC may change (others touch /tmp)
[ "$(json_field "$O/b5.json" blobs_added)" -le "$above" ] &&
	[ "$(json_field "$O/b5.json" bytes_added)" -lt 4000 ] ||
	fail "the host stored its unnamed packs' blobs again: $(tail -1 "$O/b5.json")"
rm -rf "$W/c/admin-cache"
admin restore latest --target "$W/r5" > /dev/null || fail "admin restore 5"
diff -r --no-dereference "$SRC" "$W/r5$SRC" || fail "backup 5 restored differs"

# ---- cairn status: the bucket is the immutable copy -----------------------------------------
admin status --json > "$O/status.json" || true
python3 - "$O/status.json" <<'PY' || fail "status: $(cat "$O/status.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["rules"]["immutable"]["met"], j["rules"]["immutable"]
assert j["rules"]["offsite"]["met"] and j["rules"]["media"]["met"], j["rules"]
assert j["repository_s3"]["immutability"] == "versioning", j["repository_s3"]
assert j["repository_s3"]["write_only_keys"] == 1, j["repository_s3"]
assert "write-only key" in j["rules"]["immutable"]["detail"], j["rules"]["immutable"]
PY
admin status > "$O/status.txt" || true
grep -q '^1 immutable  *yes  *versioning: versioning enabled (the repository.s bucket; hosts back up with 1 write-only key)$' \
	"$O/status.txt" || fail "status text: $(cat "$O/status.txt")"

# ---- Object Lock: the job file's retention on every object the host writes ------------------
LB=cairn-wo-lock
"${AWS[@]}" s3api create-bucket --bucket $LB --object-lock-enabled-for-bucket > /dev/null ||
	fail "cannot create a bucket with Object Lock"
"${AWS[@]}" s3api put-object-lock-configuration --bucket $LB --object-lock-configuration \
	'{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}' ||
	fail "cannot set a default retention"
"${AWS[@]}" s3api put-bucket-policy --bucket $LB --policy "$(policy $LB r)" || fail "policy on $LB"
LURL="s3://$LB/r"
CAIRN_CACHE_DIR="$W/c/admin-cache" CAIRN_PASSWORD_FILE="$W/admin.pw" "$CAIRN" -r "$LURL" \
	init --kdf-log2n 10 > /dev/null || fail "init on $LB"
CAIRN_CACHE_DIR="$W/c/admin-cache" CAIRN_PASSWORD_FILE="$W/admin.pw" "$CAIRN" -r "$LURL" \
	key add --write-only --new-password-file "$W/host.pw" > /dev/null || fail "key add on $LB"
mkdir -p "$W/conf" "$W/state"
cat > "$W/conf/host.conf" <<EOF
repository = $LURL
password-file = $W/host.pw
path = $SRC
s3-endpoint = $AWS_ENDPOINT_URL
s3-lock-days = 3
EOF
"${host_env[@]}" CAIRN_STATE_DIR="$W/state" "$CAIRN" run --config "$W/conf/host.conf" > "$O/run" 2>&1 ||
	fail "cairn run of the host's job: $(cat "$O/run")"
"${host_env[@]}" CAIRN_STATE_DIR="$W/state" "$CAIRN" run --dry-run --config "$W/conf/host.conf" |
	grep -q -- "--s3-lock-days 3 --s3-lock-mode compliance backup" || fail "the job passes no retention"
n=0
for k in $("${AWS[@]}" s3api list-objects-v2 --bucket $LB --prefix r/ --query 'Contents[].Key' --output text); do
	case $k in r/config | r/keys/*) continue ;; esac # the admin's, with the default retention
	"${AWS[@]}" s3api get-object-retention --bucket $LB --key "$k" > "$O/ret" ||
		fail "no retention on $k"
	python3 - "$O/ret" <<'PY' || fail "retention of $k: $(cat "$O/ret")"
import datetime, json, sys
r = json.load(open(sys.argv[1]))["Retention"]
assert r["Mode"] == "COMPLIANCE", r
until = datetime.datetime.fromisoformat(r["RetainUntilDate"].replace("Z", "+00:00"))
days = (until - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400
assert 2.9 < days < 3.1, days
PY
	n=$((n + 1))
done
[ "$n" -ge 4 ] || fail "only $n objects of the host's backup checked"
denied s3api delete-object --bucket $LB --key "$("${AWS[@]}" s3api list-objects-v2 --bucket $LB \
	--prefix r/snapshots/ --query 'Contents[0].Key' --output text)"
CAIRN_CACHE_DIR="$W/c/admin-cache" CAIRN_PASSWORD_FILE="$W/admin.pw" "$CAIRN" -r "$LURL" \
	status --json > "$O/status.json" || true
python3 - "$O/status.json" <<'PY' || fail "status of $LB: $(cat "$O/status.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["repository_s3"]["immutability"] == "object-lock", j
assert j["rules"]["immutable"]["met"], j["rules"]["immutable"]
PY
echo "s3-write-only: all passed"
