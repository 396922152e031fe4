#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn run, notify and status end to end: a job file in a private CAIRN_CONFIG_DIR
# runs every step (backup, forget --keep-last 2 with prune, check, sync to a private
# Ceph RGW when one can be started), writes the metrics, reports failures to a
# webhook listener on 127.0.0.1 and to a fake sendmail; cairn status judges each
# 3-2-1-1-0 rule without and with the S3 copy.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../s3/rgw-launch.sh"

export CAIRN_CONFIG_DIR="$W/conf" CAIRN_STATE_DIR="$W/state"
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY
mkdir -p "$CAIRN_CONFIG_DIR" "$CAIRN_STATE_DIR" "$W/src/sub" "$W/o"
O="$W/o"
REPO=$CAIRN_REPO PW=$CAIRN_PASSWORD_FILE
# cairn run must take everything from the job file, not from these.
run() { env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" "$@"; }
py() { python3 -c "$@"; }
# json_get FILE EXPR: evaluate a Python expression on the JSON document j in FILE
json_get() { py "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

init_repo
echo one > "$W/src/a"
echo two > "$W/src/sub/b"

# ---- a webhook listener on 127.0.0.1 ---------------------------------------
start_sink() { # NAME [STATUS]: starts it, sets <NAME>_URL
	python3 "$SRCDIR/tests/integration/http-sink.py" "$W/$1.port" "$W/$1.log" "${2:-200}" &
	local pid=$!
	cleanup_hooks+=("kill $pid")
	for _ in $(seq 100); do [ -s "$W/$1.port" ] && break; sleep 0.1; done
	[ -s "$W/$1.port" ] || fail "the HTTP listener $1 did not start"
	printf -v "${1}_URL" 'http://127.0.0.1:%s/hook/T0KEN' "$(cat "$W/$1.port")"
}
start_sink sink
start_sink broken 404
requests() { [ -f "$W/$1.log" ] && wc -l < "$W/$1.log" || echo 0; }
# last_body NAME FILE: the last request's JSON body into FILE (checks the header)
last_body() {
	py "import json,sys
r=[json.loads(l) for l in open(sys.argv[1])][-1]
assert r['content_type']=='application/json', r
assert r['path']=='/hook/T0KEN', r
open(sys.argv[2],'w').write(r['body'])" "$W/$1.log" "$2" || fail "bad request in $1.log"
}

# ---- S3, when a private RGW can be started ---------------------------------
s3=0
# CAIRN_TEST_NO_S3=1 tries the path of machines without Ceph.
if [ -z "${CAIRN_TEST_NO_S3:-}" ] && rgw_start "$W/rgw"; then
	s3=1
	cleanup_hooks+=(rgw_stop)
	export CAIRN_S3_RETRY_BASE_MS=20 CAIRN_S3_RETRY_CAP_MS=200 CAIRN_S3_RETRIES=3
	AWS=(/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL")
else
	echo "note: no Ceph RGW, the job runs without s3-target" >&2
fi

# ---- cairn status before any job: nothing but the local repository ----------
echo x > "$W/src/c"
"$CAIRN" backup "$W/src" > /dev/null
rc=0
"$CAIRN" status --json > "$O/st0.json" || rc=$?
[ "$rc" = 1 ] || fail "status with unmet rules exited $rc"
for rule in copies media offsite immutable errors; do
	[ "$(json_get "$O/st0.json" "j['rules']['$rule']['met']")" = False ] ||
		fail "rule $rule met without an S3 copy or a check: $(cat "$O/st0.json")"
done
[ "$(json_get "$O/st0.json" "j['s3']")" = None ] || fail "status invents an S3 copy"
[ "$(json_get "$O/st0.json" "j['check']")" = None ] || fail "status invents a check"
"$CAIRN" status > "$O/st0.txt" || true
grep -q '^3 copies  *no  *2 of 3: source, repository' "$O/st0.txt" || fail "copies line: $(cat "$O/st0.txt")"
grep -q '^0 errors  *no  *never checked' "$O/st0.txt" || fail "errors line: $(cat "$O/st0.txt")"
grep -q '^5 of 5 rules not met$' "$O/st0.txt" || fail "summary line: $(cat "$O/st0.txt")"

# ---- the job file ------------------------------------------------------------
J="$CAIRN_CONFIG_DIR/nightly.conf"
cat > "$J" <<EOF
# written by run-notify.sh
repository = $REPO
password-file = $PW
paths = $W/src
exclude = *.tmp
tags = auto job-test
keep-last = 2
prune = yes
check-read-data-subset = */2
metrics-file = $O/metrics.prom
notify-url = $sink_URL
EOF
if [ "$s3" = 1 ]; then
	printf 's3-target = s3://%s/nightly\ns3-endpoint = %s\n' "$S3_BUCKET" "$AWS_ENDPOINT_URL" >> "$J"
fi

printf 'repository = %s\npaths = /x\nkeep-lats = 2\n' "$REPO" > "$CAIRN_CONFIG_DIR/typo.conf"

# A dry run shows the commands and runs nothing.
before=$(ls "$REPO/snapshots" | wc -l)
run run --dry-run nightly > "$O/dry.out"
grep -q "backup .*--tag auto --tag job-test --exclude '\*.tmp' --metrics-file .* -- $W/src\$" "$O/dry.out" ||
	fail "dry run backup line: $(cat "$O/dry.out")"
grep -q " forget --keep-last 2 --host .* --prune --lock-wait 600$" "$O/dry.out" ||
	fail "dry run forget line: $(cat "$O/dry.out")"
grep -q " check --read-data-subset [12]/2 --lock-wait 600$" "$O/dry.out" ||
	fail "dry run check line: $(cat "$O/dry.out")"
if [ "$s3" = 1 ]; then
	grep -q " sync --s3-endpoint $AWS_ENDPOINT_URL s3://$S3_BUCKET/nightly\$" "$O/dry.out" ||
		fail "dry run sync line: $(cat "$O/dry.out")"
fi
[ "$(ls "$REPO/snapshots" | wc -l)" = "$before" ] || fail "dry run wrote a snapshot"

# Three runs: every step succeeds, forget keeps the 2 newest of this host and paths.
for i in 1 2 3; do
	echo "run $i" > "$W/src/run"
	run run nightly > "$O/run$i.out" 2> "$O/run$i.err" ||
		fail "run $i failed: $(cat "$O/run$i.err")"
done
grep -q "job nightly succeeded" "$O/run3.err" || fail "no success line: $(cat "$O/run3.err")"
"$CAIRN" snapshots --json > "$O/snaps.json"
[ "$(json_get "$O/snaps.json" "len([s for s in j if '$W/src' in s['paths']])")" = 2 ] ||
	fail "keep-last 2 left $(cat "$O/snaps.json")"
[ "$(json_get "$O/snaps.json" "sorted(j[-1]['tags'])")" = "['auto', 'job-test']" ] ||
	fail "tags of the job's snapshot: $(cat "$O/snaps.json")"
[ "$(requests sink)" = 0 ] || fail "a successful run sent a notification"

# Metrics: the backup's families plus one line per step, sync and check.
M="$O/metrics.prom"
[ "$(stat -c %a "$M")" = 644 ] || fail "metrics file mode $(stat -c %a "$M")"
grep -q '^cairn_backup_success{cairn_job="nightly",repo=".*"} 1$' "$M" || fail "metrics: backup family missing"
steps="backup forget check"
[ "$s3" = 1 ] && steps="$steps sync"
for s in $steps; do
	grep -q "^cairn_run_step_success{cairn_job=\"nightly\",step=\"$s\"} 1\$" "$M" ||
		fail "metrics: step $s not a success: $(grep step_success "$M")"
	grep -q "^cairn_run_step_duration_seconds{cairn_job=\"nightly\",step=\"$s\"} [0-9.]*\$" "$M" ||
		fail "metrics: no duration of $s"
done
grep -q '^cairn_run_exit_code{cairn_job="nightly"} 0$' "$M" || fail "metrics: exit code"
grep -q '^cairn_run_success{cairn_job="nightly"} 1$' "$M" || fail "metrics: run success"
grep -q '^cairn_check_success{cairn_job="nightly"} 1$' "$M" || fail "metrics: check"
if [ "$s3" = 1 ]; then
	grep -q "^cairn_sync_success{cairn_job=\"nightly\",target=\"s3://$S3_BUCKET/nightly\"} 1\$" "$M" ||
		fail "metrics: sync"
	grep -q '^cairn_sync_last_success_timestamp_seconds{.*} [1-9][0-9]*$' "$M" || fail "metrics: sync time"
else
	! grep -q '^cairn_sync_' "$M" || fail "metrics: sync without s3-target"
fi
# Each family once: a rerun replaced the previous run's lines.
[ -z "$(grep '^# TYPE' "$M" | sort | uniq -d)" ] || fail "metrics: duplicate families"

# JSON logs: every line of stderr one object with the same keys, the job in each,
# and each step's result as fields.
# json_log FILE [JOB]: every line parses and has time, level, job, message, fields
json_log() {
	py "import json,sys
lines=[l for l in open(sys.argv[1], encoding='utf-8', errors='surrogateescape')]
assert lines, 'no log lines'
for l in lines:
    o=json.loads(l)
    assert set(o)=={'time','level','job','message','fields'}, o
    assert isinstance(o['time'],(int,float)) and o['time'] > 0, o
    assert o['level'] in ('error','warning','notice','info','debug'), o
    assert isinstance(o['message'],str) and o['message'], o
    assert isinstance(o['fields'],dict), o
    assert len(sys.argv) < 3 or o['job']==sys.argv[2], o" "$@" || fail "JSON log lines of $1: $(cat "$1")"
}
# step_result FILE STEP RESULT EXIT: a line of FILE has these fields
step_result() {
	py "import json,sys
f,step,res,code=sys.argv[1:]
ok=[o for o in map(json.loads, open(f)) if o['fields'].get('step')==step and o['fields'].get('result')==res]
assert ok, 'no line with step %s result %s' % (step, res)
o=ok[-1]['fields']
assert res=='skipped' or (o['exit_code']==int(code) and isinstance(o['duration_seconds'],float)), o
assert res in ('ok','partial','skipped') or o['error'], o" "$@" ||
		fail "no $2 $3 (exit $4) line in $1: $(cat "$1")"
}
run --log-format json -v run nightly > "$O/json.out" 2> "$O/json.err" || fail "json run failed"
json_log "$O/json.err" nightly
# The steps' reports come as JSON lines too (nothing else is printed), and the
# backup's result names the snapshot it wrote.
[ ! -s "$O/json.out" ] || fail "JSON mode printed on stdout: $(cat "$O/json.out")"
"$CAIRN" snapshots --json > "$O/snaps2.json"
py "import json,sys
lines=list(map(json.loads, open(sys.argv[1])))
snap=[o['fields'] for o in lines if o['fields'].get('step')=='backup' and 'result' in o['fields']][0]['snapshot']
ids=lambda f: [s['id'] for s in json.load(open(f))]
assert len(snap) >= 8 and any(i.startswith(snap) for i in ids(sys.argv[2])), snap
assert not any(i.startswith(snap) for i in ids(sys.argv[3])), ('not a new snapshot', snap)
assert any(o['fields'].get('stream')=='stdout' and o['message']=='backup: snapshot %s saved' % snap for o in lines), lines
" "$O/json.err" "$O/snaps2.json" "$O/snaps.json" || fail "snapshot field: $(grep '"result"' "$O/json.err")"
for s in $steps; do
	step_result "$O/json.err" "$s" ok 0
done
grep -q '"message":"job nightly succeeded","fields":{"exit_code":0}}$' "$O/json.err" ||
	fail "no final line: $(cat "$O/json.err")"
# The checker must bite: a line without fields fails it.
echo '{"time":1,"level":"info","job":"nightly","message":"x"}' > "$O/bad.json"
(json_log "$O/bad.json" nightly) 2> /dev/null && fail "json_log accepted a line without fields"

# Usage errors in JSON too, wherever --log-format stands; other bytes than UTF-8
# are escaped so that the line stays JSON.
for args in "--log-format json run --bogus" "run --bogus --log-format json" \
	"--log-format=json run" "--log-format json"; do
	rc=0
	# shellcheck disable=SC2086
	run $args > /dev/null 2> "$O/usage.err" || rc=$?
	[ "$rc" = 2 ] || fail "cairn $args exited $rc"
	[ "$(wc -l < "$O/usage.err")" = 1 ] || fail "cairn $args: $(cat "$O/usage.err")"
	json_log "$O/usage.err"
	grep -q '"level":"error","job":null,.*"fields":{"code":"usage","exit_code":2}}$' "$O/usage.err" ||
		fail "usage error of cairn $args: $(cat "$O/usage.err")"
done
rc=0
run --log-format json "$(printf 'b\377d')" 2> "$O/usage.err" || rc=$?
[ "$rc" = 2 ] || fail "an unknown command exited $rc"
json_log "$O/usage.err"
py "import json,sys
o=json.loads(open(sys.argv[1]).read())
assert \"'b\\udcffd' is not a cairn command\" in o['message'], o" "$O/usage.err" ||
	fail "non-UTF-8 byte not escaped: $(cat "$O/usage.err")"
CAIRN_LOG_FORMAT=json expect_fail 1 '"message":"cannot read job file.*"fields":{"path":".*/missing.conf","code":"ENOENT"}}$' -- run run missing
json_log "$W/err"
expect_fail 2 '"message":".*typo.conf:3: .*"fields":{"code":"usage","exit_code":2}}$' -- run --log-format json run typo
json_log "$W/err"

# ---- cairn status with the job's check (and S3 copy) ----------------------
rc=0
"$CAIRN" status --json --job nightly > "$O/st1.json" || rc=$?
[ "$(json_get "$O/st1.json" "j['rules']['errors']['met']")" = True ] ||
	fail "errors rule after a clean check: $(cat "$O/st1.json")"
[ "$(json_get "$O/st1.json" "j['check']['read_data']")" = subset ] || fail "check mode"
if [ "$s3" = 0 ]; then
	[ "$rc" = 1 ] || fail "status without S3 exited $rc"
	for rule in copies media offsite immutable; do
		[ "$(json_get "$O/st1.json" "j['rules']['$rule']['met']")" = False ] ||
			fail "rule $rule met without S3"
	done
else
	[ "$(json_get "$O/st1.json" "j['s3']['behind_snapshots']")" = 0 ] || fail "S3 copy behind after sync"
	[ "$(json_get "$O/st1.json" "j['s3']['uploaded_snapshots']")" = 2 ] ||
		fail "uploaded snapshots: $(cat "$O/st1.json")"
	for rule in copies media offsite; do
		[ "$(json_get "$O/st1.json" "j['rules']['$rule']['met']")" = True ] ||
			fail "rule $rule not met with S3: $(cat "$O/st1.json")"
	done
	[ "$(json_get "$O/st1.json" "j['s3']['immutability']")" = none ] || fail "immutability of a plain bucket"
	[ "$(json_get "$O/st1.json" "j['rules']['immutable']['met']")" = False ] || fail "plain bucket immutable"
	[ "$rc" = 1 ] || fail "status with an unmet rule exited $rc"
	# A backup not synced yet: one snapshot behind.
	"$CAIRN" backup "$W/src" > /dev/null
	"$CAIRN" status --json --job nightly > "$O/st2.json" || true
	[ "$(json_get "$O/st2.json" "j['s3']['behind_snapshots']")" = 1 ] || fail "behind: $(cat "$O/st2.json")"
	grep -q '1 snapshot behind' <("$CAIRN" status --job nightly) || fail "behind in the text report"
	# Versioning counts as immutable; then every rule is met and the exit status 0.
	"${AWS[@]}" s3api put-bucket-versioning --bucket "$S3_BUCKET" \
		--versioning-configuration Status=Enabled
	"$CAIRN" status --json --job nightly > "$O/st3.json" || rc=$?
	[ "$(json_get "$O/st3.json" "j['s3']['immutability']")" = versioning ] || fail "versioning not seen"
	"$CAIRN" sync --s3-endpoint "$AWS_ENDPOINT_URL" "s3://$S3_BUCKET/nightly" > /dev/null
	"$CAIRN" status --job nightly > "$O/st4.txt" || fail "all rules met, yet: $(cat "$O/st4.txt")"
	grep -q '^all rules met$' "$O/st4.txt" || fail "text report: $(cat "$O/st4.txt")"
	# Object Lock on another bucket.
	"${AWS[@]}" s3api create-bucket --bucket locked --object-lock-enabled-for-bucket > /dev/null
	"${AWS[@]}" s3api put-object-lock-configuration --bucket locked --object-lock-configuration \
		'{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}'
	"$CAIRN" sync --s3-endpoint "$AWS_ENDPOINT_URL" s3://locked/x > /dev/null
	"$CAIRN" status --json --s3 s3://locked/x --s3-endpoint "$AWS_ENDPOINT_URL" > "$O/st5.json" || true
	[ "$(json_get "$O/st5.json" "j['s3']['immutability']")" = object-lock ] ||
		fail "Object Lock not seen: $(cat "$O/st5.json")"
	[ "$(json_get "$O/st5.json" "j['rules']['immutable']['met']")" = True ] || fail "lock: rule"
	# Object Lock without a default retention locks only what sync uploads with
	# --s3-lock-days: it is no more than the versioning it implies, and says so.
	"${AWS[@]}" s3api create-bucket --bucket bare-lock --object-lock-enabled-for-bucket > /dev/null
	"$CAIRN" sync --s3-endpoint "$AWS_ENDPOINT_URL" s3://bare-lock/x > /dev/null
	"$CAIRN" status --json --s3 s3://bare-lock/x --s3-endpoint "$AWS_ENDPOINT_URL" > "$O/st5b.json" || true
	[ "$(json_get "$O/st5b.json" "j['s3']['immutability']")" = versioning ] ||
		fail "Object Lock without default retention: $(cat "$O/st5b.json")"
	json_get "$O/st5b.json" "j['s3']['immutability_detail']" | grep -q "without default retention" ||
		fail "Object Lock without default retention not said: $(cat "$O/st5b.json")"
	# --offline does not ask: unknown, so not met.
	"$CAIRN" status --json --offline --s3 s3://locked/x --s3-endpoint "$AWS_ENDPOINT_URL" \
		> "$O/st6.json" || true
	[ "$(json_get "$O/st6.json" "j['s3']['immutability']")" = unknown ] || fail "--offline asked"
	# Without S3 credentials the sync state in the local index still tells what
	# was uploaded: the copy counts as with --offline; only immutability is
	# unknown, saying why. Online or --offline, with or without credentials.
	nocreds=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE
		-u AWS_SHARED_CREDENTIALS_FILE -u AWS_CONFIG_FILE HOME="$W/nohome")
	mkdir -p "$W/nohome"
	"$CAIRN" status --json --offline --job nightly > "$O/st8a.json" || true
	for mode in online offline; do
		opt=()
		[ "$mode" = offline ] && opt=(--offline)
		"${nocreds[@]}" "$CAIRN" status --json "${opt[@]}" --job nightly > "$O/st8.json" || true
		for k in "['s3']['known']" "['s3']['uploaded_snapshots']" "['s3']['behind_snapshots']" \
			"['rules']['copies']['met']" "['rules']['media']['met']" "['rules']['offsite']['met']"; do
			[ "$(json_get "$O/st8.json" "j$k")" = "$(json_get "$O/st8a.json" "j$k")" ] ||
				fail "status without credentials ($mode): $k differs from --offline: $(cat "$O/st8.json")"
		done
		[ "$(json_get "$O/st8.json" "j['rules']['copies']['met']")" = True ] ||
			fail "no copy counted without credentials ($mode): $(cat "$O/st8.json")"
		[ "$(json_get "$O/st8.json" "j['s3']['immutability']")" = unknown ] ||
			fail "immutability without credentials ($mode): $(cat "$O/st8.json")"
	done
	json_get "$O/st8.json" "j['s3']['immutability_detail']" | grep -q 'not asked' ||
		fail "--offline without credentials: $(cat "$O/st8.json")"
	"${nocreds[@]}" "$CAIRN" status --json --job nightly > "$O/st8.json" || true
	json_get "$O/st8.json" "j['s3']['immutability_detail']" | grep -q 'cannot ask the bucket: no S3 credentials' ||
		fail "why immutability is unknown: $(cat "$O/st8.json")"
	# Another endpoint: nothing was synced there, which is all status knows;
	# it makes no claim about a bucket it did not ask.
	"${nocreds[@]}" "$CAIRN" status --job nightly --s3-endpoint http://127.0.0.1:9 > "$O/st9.txt" || true
	! grep -q 'holds no snapshot' "$O/st9.txt" || fail "a claim about the bucket: $(cat "$O/st9.txt")"
	grep -qF "no snapshot synced to s3://$S3_BUCKET/nightly on http://127.0.0.1:9 yet" "$O/st9.txt" ||
		fail "another endpoint: $(cat "$O/st9.txt")"
fi

# A damaged pack: the data check fails and the errors rule with it.
pack=$(find "$REPO/packs" -type f | head -1)
cp "$pack" "$O/pack.bak"
size=$(stat -c %s "$pack")
flip_byte "$pack" $((size / 2))
rc=0
"$CAIRN" check --read-data > "$O/check.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "check of a damaged pack exited $rc"
"$CAIRN" status --json > "$O/st7.json" || true
[ "$(json_get "$O/st7.json" "j['rules']['errors']['met']")" = False ] || fail "errors rule after damage"
[ "$(json_get "$O/st7.json" "j['check']['ok']")" = False ] || fail "check record after damage"
cp "$O/pack.bak" "$pack"

# ---- failures: exit status, skipped steps, notification --------------------
cat > "$CAIRN_CONFIG_DIR/broken.conf" <<EOF
repository = $REPO
password-file = $PW
paths = $W/does-not-exist
keep-last = 1
metrics-file = $O/broken.prom
notify-url = $sink_URL
EOF
rc=0
run run broken > /dev/null 2> "$O/broken.err" || rc=$?
[ "$rc" = 1 ] || fail "a failed backup gave exit $rc: $(cat "$O/broken.err")"
grep -q "forget skipped: the backup failed" "$O/broken.err" || fail "forget not skipped: $(cat "$O/broken.err")"
grep -q '^cairn_run_step_success{cairn_job="broken",step="backup"} 0$' "$O/broken.prom" || fail "metrics: failed backup"
grep -q '^cairn_run_step_success{cairn_job="broken",step="forget"} 0$' "$O/broken.prom" || fail "metrics: skipped forget"
grep -q '^cairn_run_exit_code{cairn_job="broken"} 1$' "$O/broken.prom" || fail "metrics: exit 1"
[ "$(requests sink)" = 1 ] || fail "no notification of the failure"
last_body sink "$O/body.json"
[ "$(json_get "$O/body.json" "j['job']")" = broken ] || fail "notification job"
[ "$(json_get "$O/body.json" "j['exit_code']")" = 1 ] || fail "notification exit code"
[ "$(json_get "$O/body.json" "j['status']")" = failure ] || fail "notification status"
json_get "$O/body.json" "j['error']" | grep -q "backup exited 1: cannot back up.*; forget skipped" ||
	fail "notification error text: $(cat "$O/body.json")"
# The OnFailure= unit stays quiet after cairn run reported, once.
[ -e "$CAIRN_STATE_DIR/broken.reported" ] || fail "no reported marker"
run notify --job broken --if-unreported || fail "notify --if-unreported failed"
[ "$(requests sink)" = 1 ] || fail "--if-unreported sent a second notification"
run notify --job broken --if-unreported --error "unit failed" || fail "notify --job failed"
[ "$(requests sink)" = 2 ] || fail "--if-unreported without a marker sent nothing"

# A symlink, a hard link or a fifo planted at the metrics path (its directory may
# be writable by others) is never followed, read or waited for: the run replaces
# it with a regular file and warns, and the file it points to stays as it was.
# The backup fails (a missing path), so that the run's own rewrite of the
# metrics meets what was planted.
echo 'TOP-SECRET 42' > "$W/secret"
chmod 600 "$W/secret"
for kind in symlink hardlink fifo; do
	P="$O/planted-$kind.prom"
	case $kind in
	symlink) ln -s "$W/secret" "$P" ;;
	hardlink) ln "$W/secret" "$P" ;;
	fifo) mkfifo "$P" ;;
	esac
	printf 'repository = %s\npassword-file = %s\npaths = %s\nmetrics-file = %s\n' \
		"$REPO" "$PW" "$W/does-not-exist" "$P" > "$CAIRN_CONFIG_DIR/planted.conf"
	rc=0
	timeout 120 env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" run planted > /dev/null \
		2> "$O/planted.err" || rc=$?
	[ "$rc" = 1 ] || fail "$kind at the metrics path: exit $rc: $(cat "$O/planted.err")"
	grep -q "metrics '$P' is not a regular file" "$O/planted.err" ||
		fail "$kind at the metrics path: no warning: $(cat "$O/planted.err")"
	[ -f "$P" ] && [ ! -L "$P" ] && [ "$(stat -c %h:%a "$P")" = 1:644 ] ||
		fail "$kind at the metrics path: not replaced by a file of its own: $(ls -l "$P")"
	! grep -q TOP-SECRET "$P" || fail "$kind at the metrics path: the secret was copied into it"
	grep -q '^cairn_run_exit_code{cairn_job="planted"} 1$' "$P" || fail "$kind: no metrics: $(cat "$P")"
	[ "$(cat "$W/secret")" = 'TOP-SECRET 42' ] && [ "$(stat -c %a "$W/secret")" = 600 ] ||
		fail "$kind at the metrics path: the file behind it changed"
done

# A bad job file: exit 2 naming file:line, nothing runs.
expect_fail 2 "typo.conf:3: 'keep-lats' is not a known key" -- run run typo
expect_fail 2 "not a job name" -- run run ../etc/passwd
expect_fail 1 "cannot read job file" -- run run missing

# ---- cairn notify --------------------------------------------------------------
"$CAIRN" notify --url "$sink_URL" --job j1 --error 'disk "full"' --exit-code 3 --host h1 ||
	fail "notify to the listener failed"
last_body sink "$O/n1.json"
py "import json,sys,re
j=json.load(open(sys.argv[1]))
assert j['job']=='j1' and j['host']=='h1' and j['error']=='disk \"full\"', j
assert j['exit_code']==3 and j['status']=='failure', j
assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', j['time']), j
assert abs(j['timestamp'] - __import__('time').time()) < 600, j
assert 'j1' in j['text'] and 'disk' in j['text'] and j['program'].startswith('cairn '), j" "$O/n1.json" ||
	fail "notification fields: $(cat "$O/n1.json")"
# Without --host, this host's name.
"$CAIRN" notify --url "$sink_URL" || fail "plain notify failed"
last_body sink "$O/n2.json"
[ "$(json_get "$O/n2.json" "j['host']")" = "$(hostname)" ] || fail "default host"
[ "$(json_get "$O/n2.json" "j['error']")" = "job failed" ] || fail "default error text"
# HTTP errors and refused connections are errors; the URL's path (a token) stays out.
expect_fail 1 "answered HTTP 404: no_service" -- "$CAIRN" notify --url "$broken_URL"
! grep -q T0KEN "$W/err" || fail "the webhook token was printed"
# Nor the user and password of the URL's userinfo (user:password@host).
expect_fail 1 "webhook http://127.0.0.1:$(cat "$W/broken.port") answered HTTP 404" -- \
	"$CAIRN" notify --url "http://us%40er:pa55word@127.0.0.1:$(cat "$W/broken.port")/hook/T0KEN"
! grep -q 'pa55word\|us%40er' "$W/err" || fail "the URL's user and password were printed: $(cat "$W/err")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail 1 "cannot reach webhook http://127.0.0.1:$port" -- "$CAIRN" notify --url "http://127.0.0.1:$port/x"
expect_fail 2 "give --url, --mail or --job" -- "$CAIRN" notify
expect_fail 2 "http:// or https://" -- "$CAIRN" notify --url ftp://x/
# Slack and Teams bodies: --format, notify-format, or the URL's host.
# slack_body FILE JOB ERROR / teams_body FILE JOB ERROR: the shape each service wants
slack_body() {
	py "import json,sys
j=json.load(open(sys.argv[1])); job,err=sys.argv[2:]
esc=lambda s: s.replace('&','&amp;').replace('<','&lt;').replace('>','&gt;')
assert set(j)=={'text','blocks'}, j
assert esc(err) in j['text'] and job in j['text'], j
b=j['blocks']
assert [x['type'] for x in b]==['section']*3, b
assert b[0]['text']['type']=='mrkdwn' and job in b[0]['text']['text'], b
f=[x['text'] for x in b[1]['fields']]
assert all(x['type']=='mrkdwn' for x in b[1]['fields']), b
assert f[0]=='*Job*\n'+job and f[1].startswith('*Host*\n') and f[2].startswith('*Exit code*\n'), f
assert f[3].startswith('*Time*\n'), f
assert b[2]['text']['text']=='\`\`\`'+esc(err)+'\`\`\`', b" "$@" || fail "Slack body: $(cat "$1")"
}
teams_body() {
	py "import json,sys
j=json.load(open(sys.argv[1])); job,err=sys.argv[2:]
assert j['type']=='message' and len(j['attachments'])==1, j
a=j['attachments'][0]
assert a['contentType']=='application/vnd.microsoft.card.adaptive', a
c=a['content']
assert c['type']=='AdaptiveCard' and c['version']=='1.4' and c['\$schema'].startswith('http://adaptivecards.io/'), c
b=c['body']
assert [x['type'] for x in b]==['TextBlock','FactSet','TextBlock'], b
assert job in b[0]['text'], b
facts={f['title']:f['value'] for f in b[1]['facts']}
assert facts['Job']==job and facts['Host'] and facts['Time'].endswith('Z'), facts
assert b[2]['text']==err and b[2]['wrap'] is True, b" "$@" || fail "Teams body: $(cat "$1")"
}
err='disk <full> & "gone"'
"$CAIRN" notify --url "$sink_URL" --format slack --job j3 --error "$err" --exit-code 1 ||
	fail "Slack notify failed"
last_body sink "$O/slack.json"
slack_body "$O/slack.json" j3 "$err"
"$CAIRN" notify --url "$sink_URL" --format teams --job j4 --error "$err" || fail "Teams notify failed"
last_body sink "$O/teams.json"
teams_body "$O/teams.json" j4 "$err"
# A long error within Slack's limits (3000 characters a text, 2000 a field), cut
# between characters.
long=$(python3 -c "print('é&<' * 1500)")
"$CAIRN" notify --url "$sink_URL" --format slack --job "$long" --error "$long" || fail "long Slack notify"
last_body sink "$O/slack-long.json"
py "import json,sys
j=json.load(open(sys.argv[1]))
texts=[j['blocks'][0]['text']['text'], j['blocks'][2]['text']['text']]
fields=[f['text'] for f in j['blocks'][1]['fields']]
assert all(len(t) <= 3000 for t in texts) and all(len(t) <= 2000 for t in fields), [len(t) for t in texts + fields]
assert texts[1].startswith('\`\`\`é&amp;&lt;') and texts[1].endswith('...\`\`\`'), texts[1][-20:]
for t in texts + fields + [j['text']]:
    t.encode('utf-8')  # no lone surrogate: nothing was cut inside a character
" "$O/slack-long.json" || fail "long Slack body: $(head -c 600 "$O/slack-long.json")"
# Bytes that are not UTF-8 (a Latin-1 file name in the error) are U+FFFD in every
# body: valid UTF-8 JSON without lone surrogates, which strict decoders refuse.
bad=$(printf 'cannot read /srv/caf\xe9 \xff')
for fmt in generic slack teams; do
	"$CAIRN" notify --url "$sink_URL" --format $fmt --job j8 --error "$bad" || fail "$fmt notify of non-UTF-8"
	last_body sink "$O/latin1-$fmt.json"
	! grep -qi 'udc' "$O/latin1-$fmt.json" || fail "$fmt body has surrogate escapes: $(cat "$O/latin1-$fmt.json")"
	py "import json,sys
raw=open(sys.argv[1],'rb').read()
j=json.loads(raw.decode('utf-8', 'strict'))
assert 'cannot read /srv/caf\ufffd \ufffd' in json.dumps(j, ensure_ascii=False), j
" "$O/latin1-$fmt.json" || fail "$fmt body of non-UTF-8: $(cat "$O/latin1-$fmt.json")"
done
# An error with three backticks stays inside Slack's code block.
"$CAIRN" notify --url "$sink_URL" --format slack --job j9 --error 'x ``` y `' || fail "Slack notify with backticks"
last_body sink "$O/ticks.json"
py "import json,sys
t=json.load(open(sys.argv[1]))['blocks'][2]['text']['text']
assert t.startswith('\`\`\`x ') and t.endswith('\`\`\`'), t
inner=t[3:-3]
assert '\`\`' not in inner and not inner.endswith('\`') and inner.replace('\u200b', '') == 'x \`\`\` y \`', repr(t)
" "$O/ticks.json" || fail "Slack code block: $(cat "$O/ticks.json")"
# The checks bite: the generic body is neither.
(slack_body "$O/n1.json" j1 'disk "full"') 2> /dev/null && fail "slack_body accepted a generic body"
(teams_body "$O/n1.json" j1 'disk "full"') 2> /dev/null && fail "teams_body accepted a generic body"
# The URL's host picks the format: the sink stands in as an HTTP proxy for
# hooks.slack.com and a *.webhook.office.com host.
# last_proxied NAME FILE HOSTPATH: the last request went to http://HOSTPATH
last_proxied() {
	py "import json,sys
r=[json.loads(l) for l in open(sys.argv[1])][-1]
assert r['path']=='http://'+sys.argv[3], r
open(sys.argv[2],'w').write(r['body'])" "$W/$1.log" "$2" "$3" || fail "proxied request: $(tail -1 "$W/$1.log")"
}
proxy="http://127.0.0.1:$(cat "$W/sink.port")"
http_proxy=$proxy "$CAIRN" notify --url http://hooks.slack.com/services/T0KEN --job j5 --error e5 ||
	fail "notify through the proxy failed"
last_proxied sink "$O/auto1.json" hooks.slack.com/services/T0KEN
slack_body "$O/auto1.json" j5 e5
http_proxy=$proxy "$CAIRN" notify --url http://acme.webhook.office.com/webhookb2/T0KEN --job j6 \
	--error e6 || fail "notify through the proxy failed"
last_proxied sink "$O/auto2.json" acme.webhook.office.com/webhookb2/T0KEN
teams_body "$O/auto2.json" j6 e6
# --format generic wins over the host.
http_proxy=$proxy "$CAIRN" notify --url http://hooks.slack.com/x --format generic --job j7 ||
	fail "notify --format generic failed"
last_proxied sink "$O/auto3.json" hooks.slack.com/x
[ "$(json_get "$O/auto3.json" "j['status']")" = failure ] || fail "generic body: $(cat "$O/auto3.json")"
# notify-format of the job file, for cairn notify --job (and cairn run).
printf 'repository = %s\npaths = /x\nnotify-url = %s\nnotify-format = teams\n' "$REPO" "$sink_URL" \
	> "$CAIRN_CONFIG_DIR/teamsjob.conf"
run notify --job teamsjob --error "unit failed" || fail "notify --job teamsjob failed"
last_body sink "$O/teams2.json"
teams_body "$O/teams2.json" teamsjob "unit failed"
expect_fail 2 "notify format 'xml' is not auto, generic, slack or teams" -- \
	"$CAIRN" notify --url "$sink_URL" --format xml
printf 'repository = %s\npaths = /x\nnotify-format = xml\n' "$REPO" > "$CAIRN_CONFIG_DIR/badfmt.conf"
expect_fail 2 "badfmt.conf:3: 'notify-format' must be auto, generic, slack or teams" -- run run badfmt
# Mail through a fake sendmail that keeps what it was given, and its environment.
cat > "$W/sendmail" <<EOF
#!/bin/sh
env > "$O/mail.env"
echo "args: \$*" > "$O/mail"
cat >> "$O/mail"
EOF
chmod +x "$W/sendmail"
CAIRN_SENDMAIL="$W/sendmail" "$CAIRN" notify --mail ops@example.org --job j2 --error oops ||
	fail "mail notification failed"
grep -q '^args: -t -i$' "$O/mail" || fail "sendmail arguments: $(cat "$O/mail")"
grep -q '^To: ops@example.org$' "$O/mail" || fail "mail To: $(cat "$O/mail")"
grep -q '^Subject: cairn: job j2 failed on ' "$O/mail" || fail "mail Subject: $(cat "$O/mail")"
grep -q '^error: oops$' "$O/mail" || fail "mail body: $(cat "$O/mail")"
grep -q '^MIME-Version: 1.0$' "$O/mail" || fail "mail without MIME-Version: $(cat "$O/mail")"
CAIRN_SENDMAIL="$W/sendmail" "$CAIRN" notify --mail ops@example.org --job j2 --error "$bad" ||
	fail "mail notification of non-UTF-8 failed"
iconv -f UTF-8 -t UTF-8 "$O/mail" > /dev/null || fail "the mail is not valid UTF-8: $(cat -v "$O/mail")"
grep -q "^error: cannot read /srv/caf$(printf '\xef\xbf\xbd') $(printf '\xef\xbf\xbd')\$" "$O/mail" ||
	fail "mail body of non-UTF-8: $(cat -v "$O/mail")"
# no_secrets_in_mail: the mail program got none of the secrets of the
# repository and of S3 (only what the mail needs), but the rest of the environment.
no_secrets_in_mail() {
	grep -qx 'CAIRN_ENV_PROBE=kept' "$O/mail.env" || fail "no environment dump: $(cat "$O/mail.env")"
	! grep -E '^(CAIRN_(FROM_)?PASSWORD[A-Z_]*|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=' "$O/mail.env" ||
		fail "the mail program got secrets"
}
secrets=(CAIRN_PASSWORD=pw-secret CAIRN_PASSWORD_COMMAND='echo pw' AWS_SECRET_ACCESS_KEY=aws-secret
	AWS_SESSION_TOKEN=aws-token CAIRN_FROM_PASSWORD=copy-secret CAIRN_ENV_PROBE=kept)
env "${secrets[@]}" CAIRN_SENDMAIL="$W/sendmail" "$CAIRN" notify --mail ops@example.org ||
	fail "mail notification with secrets in the environment failed"
grep -q '^CAIRN_PASSWORD_FILE=' < <(env) || fail "the test lost CAIRN_PASSWORD_FILE"
no_secrets_in_mail
expect_fail 1 "not one mail address" -- "$CAIRN" notify --mail 'a@b, c@d'
CAIRN_SENDMAIL=/nonexistent expect_fail 1 "not found" -- "$CAIRN" notify --mail a@b

# ---- each step's failure: log line, notification, metrics, exit status -------
# A repository of their own, so that the damage done here stays here.
R2="$W/repo2"
CAIRN_REPO=$R2 init_repo
mkdir -p "$W/src2"
echo data > "$W/src2/f"
# job NAME [KEY=VALUE lines...]: a job file on R2 reporting to the sink
job() {
	local n=$1
	shift
	{
		printf 'repository = %s\npassword-file = %s\npaths = %s\n' "$R2" "$PW" "$W/src2"
		printf 'metrics-file = %s\nnotify-url = %s\n' "$O/$n.prom" "$sink_URL"
		printf '%s\n' "$@"
	} > "$CAIRN_CONFIG_DIR/$n.conf"
}
# metric FILE LINE: FILE has exactly this line
metric() { grep -qxF "$2" "$1" || fail "metrics $1 lack '$2': $(grep -v '^#' "$1")"; }
# notified JOB PATTERN: the last notification is JOB's and its error matches
notified() {
	last_body sink "$O/nb.json"
	[ "$(json_get "$O/nb.json" "j['job']")" = "$1" ] || fail "notification of $1: $(cat "$O/nb.json")"
	json_get "$O/nb.json" "j['error']" | grep -q -- "$2" ||
		fail "notification of $1 lacks '$2': $(cat "$O/nb.json")"
}

# Sync to a closed port on 127.0.0.1: the sync step fails, the check after it
# still runs (a failed step does not stop the later ones), exit status 1.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
job syncfail "s3-target = s3://bucket/x" "s3-endpoint = http://127.0.0.1:$port" "check = yes"
n=$(requests sink)
rc=0
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test CAIRN_S3_RETRIES=1 \
	run --log-format json -v run syncfail > /dev/null 2> "$O/syncfail.err" || rc=$?
[ "$rc" = 1 ] || fail "a failed sync gave exit $rc: $(cat "$O/syncfail.err")"
json_log "$O/syncfail.err" syncfail
step_result "$O/syncfail.err" backup ok 0
step_result "$O/syncfail.err" sync failed 1
step_result "$O/syncfail.err" check ok 0
grep -q '"message":"sync failed (exit 1): .*127.0.0.1' "$O/syncfail.err" || fail "sync error line"
M=$O/syncfail.prom
metric "$M" 'cairn_run_step_success{cairn_job="syncfail",step="backup"} 1'
metric "$M" 'cairn_run_step_success{cairn_job="syncfail",step="sync"} 0'
metric "$M" 'cairn_run_step_success{cairn_job="syncfail",step="check"} 1'
metric "$M" 'cairn_sync_success{cairn_job="syncfail",target="s3://bucket/x"} 0'
metric "$M" 'cairn_sync_last_success_timestamp_seconds{cairn_job="syncfail",target="s3://bucket/x"} 0'
metric "$M" 'cairn_run_exit_code{cairn_job="syncfail"} 1'
metric "$M" 'cairn_run_success{cairn_job="syncfail"} 0'
[ "$(requests sink)" = $((n + 1)) ] || fail "no notification of the failed sync"
notified syncfail "^sync exited 1: .*127.0.0.1"
! json_get "$O/nb.json" "j['error']" | grep -q check || fail "the check is reported failed"

# A partial backup (one path is missing: exit 3) whose notification fails (the
# webhook answers 404): the job exits 1, and its metrics and history say 1 too,
# not the 3 it had before the notification.
job notefail "paths = $W/no-such-path"
sed -i "s#^notify-url = .*#notify-url = $broken_URL#" "$CAIRN_CONFIG_DIR/notefail.conf"
rc=0
run --log-format json -v run notefail > /dev/null 2> "$O/notefail.err" || rc=$?
[ "$rc" = 1 ] || fail "a partial backup with a failed notification gave exit $rc: $(cat "$O/notefail.err")"
step_result "$O/notefail.err" backup partial 3
grep -q '"message":"notification failed: .*HTTP 404' "$O/notefail.err" ||
	fail "the notification did not fail: $(cat "$O/notefail.err")"
metric "$O/notefail.prom" 'cairn_run_exit_code{cairn_job="notefail"} 1'
metric "$O/notefail.prom" 'cairn_run_success{cairn_job="notefail"} 0'
metric "$O/notefail.prom" 'cairn_run_last_success_timestamp_seconds{cairn_job="notefail"} 0'
metric "$O/notefail.prom" 'cairn_run_step_success{cairn_job="notefail",step="backup"} 1'
metric "$O/notefail.prom" 'cairn_backup_runs_total{cairn_job="notefail",repo="'"$R2"'"} 1'
[ "$(grep -c '^cairn_run_exit_code' "$O/notefail.prom")" = 1 ] || fail "metrics written twice: $(cat "$O/notefail.prom")"
tail -n 1 "$CAIRN_STATE_DIR/notefail.runs" | grep -q 'exit=1' ||
	fail "the history of notefail: $(cat "$CAIRN_STATE_DIR/notefail.runs")"

# The steps of cairn run do get the secrets: a job without password-file opens
# the repository with CAIRN_PASSWORD, and sync tries S3 with the AWS keys (and
# fails on the closed port); the mail that reports it gets none of them.
job envmail "s3-target = s3://bucket/x" "s3-endpoint = http://127.0.0.1:$port" "check = yes" \
	"notify-mail = ops@example.org"
sed -i '/^password-file = /d' "$CAIRN_CONFIG_DIR/envmail.conf"
rm -f "$O/mail.env"
rc=0
env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE CAIRN_PASSWORD="$(cat "$PW")" AWS_ACCESS_KEY_ID=test \
	AWS_SECRET_ACCESS_KEY=aws-secret AWS_SESSION_TOKEN=aws-token CAIRN_ENV_PROBE=kept \
	CAIRN_S3_RETRIES=1 CAIRN_SENDMAIL="$W/sendmail" "$CAIRN" --log-format json -v run envmail > /dev/null 2> "$O/envmail.err" || rc=$?
[ "$rc" = 1 ] || fail "envmail gave exit $rc: $(cat "$O/envmail.err")"
step_result "$O/envmail.err" backup ok 0
step_result "$O/envmail.err" check ok 0
grep -q '"message":"sync failed (exit 1): .*127.0.0.1' "$O/envmail.err" ||
	fail "sync did not reach S3 with the AWS keys: $(cat "$O/envmail.err")"
grep -q '^Subject: cairn: job envmail failed on ' "$O/mail" || fail "no mail of envmail: $(cat "$O/mail")"
no_secrets_in_mail

# A damaged pack: the check step fails; backup and forget before it succeed.
job checkfail "keep-last = 3" "check-read-data-subset = 100%"
run run checkfail > /dev/null 2> "$O/checkfail0.err" || fail "clean checkfail run: $(cat "$O/checkfail0.err")"
M=$O/checkfail.prom
metric "$M" 'cairn_check_success{cairn_job="checkfail"} 1'
ok_time=$(awk '/^cairn_check_last_success_timestamp_seconds/ {print $2}' "$M")
run_time=$(awk '/^cairn_run_last_success_timestamp_seconds/ {print $2}' "$M")
[ "${ok_time:-0}" -gt 0 ] && [ "${run_time:-0}" -gt 0 ] || fail "no success times: $(cat "$M")"
pack=$(find "$R2/packs" -type f -name '*.pack' | head -1)
[ -n "$pack" ] || pack=$(find "$R2/packs" -type f | head -1)
cp "$pack" "$O/pack2.bak"
size=$(stat -c %s "$pack")
flip_byte "$pack" $((size / 2))
echo more > "$W/src2/g"
n=$(requests sink)
rc=0
run run checkfail > /dev/null 2> "$O/checkfail.err" || rc=$?
[ "$rc" = 1 ] || fail "a failed check gave exit $rc: $(cat "$O/checkfail.err")"
grep -q '^cairn: check failed (exit 1)' "$O/checkfail.err" || fail "no check failure line: $(cat "$O/checkfail.err")"
grep -q '^cairn: job checkfail finished with exit status 1$' "$O/checkfail.err" || fail "no final line"
metric "$M" 'cairn_run_step_success{cairn_job="checkfail",step="backup"} 1'
metric "$M" 'cairn_run_step_success{cairn_job="checkfail",step="forget"} 1'
metric "$M" 'cairn_run_step_success{cairn_job="checkfail",step="check"} 0'
metric "$M" 'cairn_check_success{cairn_job="checkfail"} 0'
# The times of the last success survive the failed run (backup rewrote the file).
metric "$M" "cairn_check_last_success_timestamp_seconds{cairn_job=\"checkfail\"} $ok_time"
metric "$M" "cairn_run_last_success_timestamp_seconds{cairn_job=\"checkfail\"} $run_time"
metric "$M" 'cairn_run_exit_code{cairn_job="checkfail"} 1'
[ "$(requests sink)" = $((n + 1)) ] || fail "no notification of the failed check"
notified checkfail "^check exited 1"
# Mended: the pack back whole, and its blobs back in the index, which the check
# above left without the copy it found damaged.
cp "$O/pack2.bak" "$pack"
"$CAIRN" -r "$R2" --password-file "$PW" rebuild-index > /dev/null || fail "rebuild-index after the mend"

# forget cannot remove a snapshot (immutable file): the forget step fails, the
# check after it still runs. chattr +i needs root and a file system with the flag.
job forgetfail "keep-last = 1" "prune = yes" "check = yes"
run run forgetfail > /dev/null 2> "$O/forgetfail0.err" || fail "clean forgetfail run: $(cat "$O/forgetfail0.err")"
locked=()
for f in "$R2"/snapshots/*; do
	chattr +i "$f" 2> /dev/null && locked+=("$f")
done
if [ "${#locked[@]}" -gt 0 ]; then
	cleanup_hooks+=('chattr -i "${locked[@]}"')
	n=$(requests sink)
	rc=0
	run --log-format json -v run forgetfail > /dev/null 2> "$O/forgetfail.err" || rc=$?
	chattr -i "${locked[@]}"
	[ "$rc" = 1 ] || fail "a failed forget gave exit $rc: $(cat "$O/forgetfail.err")"
	json_log "$O/forgetfail.err" forgetfail
	step_result "$O/forgetfail.err" backup ok 0
	step_result "$O/forgetfail.err" forget failed 1
	step_result "$O/forgetfail.err" check ok 0
	M=$O/forgetfail.prom
	metric "$M" 'cairn_run_step_success{cairn_job="forgetfail",step="forget"} 0'
	metric "$M" 'cairn_run_step_success{cairn_job="forgetfail",step="check"} 1'
	metric "$M" 'cairn_run_exit_code{cairn_job="forgetfail"} 1'
	[ "$(requests sink)" = $((n + 1)) ] || fail "no notification of the failed forget"
	notified forgetfail "^forget exited 1: cannot remove snapshot"
else
	echo "note: chattr +i not possible here, forget failure not tested" >&2
fi

# A partial backup (a file it cannot read, with a name that is not UTF-8): exit
# 3, and the warning's fields name the path and the error code. Root reads
# everything, so root runs this as nobody.
bad=$(printf 'secret\377')
echo secret > "$W/src2/$bad"
chmod 000 "$W/src2/$bad"
job partial
as=()
if [ "$(id -u)" = 0 ]; then
	command -v setpriv > /dev/null && as=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/)
fi
if [ "$(id -u)" != 0 ] || [ "${#as[@]}" -gt 0 ]; then
	chmod -R a+rwX "$W/src2" "$R2" "$CAIRN_STATE_DIR" "$O"
	chmod a+rx "$W" "$CAIRN_CONFIG_DIR"
	chmod a+r "$PW" "$CAIRN_CONFIG_DIR/partial.conf"
	chmod 000 "$W/src2/$bad"
	rc=0
	env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "${as[@]}" "$CAIRN" --log-format json -v run partial \
		> /dev/null 2> "$O/partial.err" || rc=$?
	[ "$rc" = 3 ] || fail "a partial backup gave exit $rc: $(cat "$O/partial.err")"
	json_log "$O/partial.err" partial
	step_result "$O/partial.err" backup partial 3
	py "import json,sys
w=[o for o in map(json.loads, open(sys.argv[1])) if o['level']=='warning' and 'path' in o['fields']]
assert w, 'no warning with a path'
f=w[0]['fields']
assert f['path']==sys.argv[2]+'/secret\udcff' and f['code']=='EACCES' and f['step']=='backup', f" \
		"$O/partial.err" "$W/src2" || fail "the warning's fields: $(cat "$O/partial.err")"
	metric "$O/partial.prom" 'cairn_run_exit_code{cairn_job="partial"} 3'
	metric "$O/partial.prom" 'cairn_run_success{cairn_job="partial"} 1'
else
	echo "note: no setpriv, partial backup not tested" >&2
fi
rm -f "$W/src2/$bad"

# The example alert rules of docs/OPERATIONS.md and the metric names: metrics.sh.
echo "run-notify: all passed (s3=$s3)"
