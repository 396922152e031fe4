#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The Prometheus metrics of backup and cairn run: a failed backup never leaves a
# file that still says the last good one succeeded, whether it failed inside
# (no path, a wrong password, no repository) or died before it could write
# (killed: cairn run writes the backup's families then); a dry run writes none;
# the names follow the Prometheus conventions and promtool checks the files; the
# example alert rules of docs/OPERATIONS.md pass promtool and use only metrics
# cairn writes, and the table there lists exactly those.
. "$(dirname "$0")/lib.sh"

command -v promtool > /dev/null || fail "promtool missing (Debian's prometheus: scripts/install-deps.sh test)"
export CAIRN_CONFIG_DIR="$W/conf" CAIRN_STATE_DIR="$W/state"
O="$W/o"
SRC="$W/src"
mkdir -p "$CAIRN_CONFIG_DIR" "$CAIRN_STATE_DIR" "$O" "$SRC/sub"
echo one > "$SRC/a"
echo two > "$SRC/sub/b"
init_repo
M="$O/job.prom"
# value NAME{LABELS}: the sample's value in $M (nothing when absent)
value() { awk -v k="$1" '$1 == k {print $2}' "$M"; }
want() { # NAME{LABELS} VALUE
	[ "$(value "$1")" = "$2" ] || fail "$1 is '$(value "$1")', not $2: $(grep -v '^#' "$M")"
}
# The labels of the backup families of job 'ok', which the failures below reuse
# (its file rewritten): the counters go on, the last success is kept.
L="{cairn_job=\"ok\",repo=\"$CAIRN_REPO\"}"

# A job with every step: sync goes to a closed port on 127.0.0.1 (it fails, and
# still writes its families), so that each family of cairn run is written.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
job() { # NAME [KEY = VALUE]...
	local name=$1
	shift
	{
		printf 'repository = %s\npassword-file = %s\npaths = %s\nkeep-last = 3\n' \
			"$CAIRN_REPO" "$CAIRN_PASSWORD_FILE" "$SRC"
		printf 'check = yes\ns3-target = s3://bucket/x\ns3-endpoint = http://127.0.0.1:%s\n' "$port"
		printf 'metrics-file = %s\n' "$M"
		printf '%s\n' "$@"
	} > "$CAIRN_CONFIG_DIR/$name.conf"
}
run_job() { # NAME [TAG]: runs it, its output into $O/TAG.out, .err, after-TAG.prom
	local rc=0 t=${2:-$1}
	env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
		CAIRN_S3_RETRIES=1 "$CAIRN" --log-format json -v run "$1" > "$O/$t.out" 2> "$O/$t.err" || rc=$?
	[ "$rc" = 1 ] || fail "job $1 (its sync fails) exited $rc: $(cat "$O/$t.err")"
	cp "$M" "$O/after-$t.prom"
}
good() { # NAME: a run whose backup succeeds; sets last_ok
	run_job "$1"
	want "cairn_backup_success$L" 1
	want "cairn_run_step_success{cairn_job=\"$1\",step=\"backup\"}" 1
	last_ok=$(value "cairn_backup_last_success_timestamp_seconds$L")
	[ "$last_ok" -gt 0 ] || fail "no last success time"
}
# failed NAME RUNS FAILURES: the backup of the run failed, and the metrics say so
failed() {
	want "cairn_backup_success$L" 0
	want "cairn_run_step_success{cairn_job=\"$1\",step=\"backup\"}" 0
	want "cairn_backup_runs_total$L" "$2"
	want "cairn_backup_failures_total$L" "$3"
	want "cairn_backup_last_success_timestamp_seconds$L" "$last_ok"
	[ "$(value "cairn_backup_last_run_timestamp_seconds$L")" -ge "$t0" ] || fail "$1: old last run time"
}

job ok
good ok
want "cairn_backup_runs_total$L" 1
want "cairn_backup_failures_total$L" 0
want "cairn_backup_new_files$L" 2
want "cairn_backup_snapshots$L" 1

# A backup killed before it wrote a line: its password command kills it. cairn run
# sees the metrics file untouched and writes the backup's families in its stead.
job ok 'password-command = kill -9 $PPID'
sed -i '/^password-file = /d' "$CAIRN_CONFIG_DIR/ok.conf"
t0=$(date +%s)
run_job ok killed
grep -q '"message":"backup failed (exit 137)' "$O/killed.err" || fail "the backup was not killed: $(cat "$O/killed.err")"
failed ok 2 1
want "cairn_backup_snapshots$L" 1

job ok
good ok
# None of the paths exists: the backup fails before it opens the repository.
mv "$SRC" "$SRC.away"
t0=$(date +%s)
run_job ok
grep -q 'nothing to back up\|cannot back up' "$O/ok.err" || fail "the backup did not fail on its path: $(cat "$O/ok.err")"
failed ok 4 2
mv "$SRC.away" "$SRC"

good ok
# A wrong password: the repository does not open.
printf 'wrong\n' > "$W/wrong"
job ok "password-file = $W/wrong"
sed -i "0,/^password-file = /{/^password-file = /d}" "$CAIRN_CONFIG_DIR/ok.conf"
t0=$(date +%s)
run_job ok wrongpw
failed ok 6 3
job ok

# One of the paths is not there: a warning, a partial snapshot (the backup step
# exits 3), and the run still forgets and checks (and syncs, which fails here).
job gone "paths = $W/gone"
run_job gone
grep -q "cannot back up '$W/gone'" "$O/gone.err" || fail "no warning for the missing path: $(cat "$O/gone.err")"
grep -q '"step":"backup","result":"partial","exit_code":3' "$O/gone.err" ||
	fail "the backup was not partial: $(cat "$O/gone.err")"
for step in backup forget check; do
	want "cairn_run_step_success{cairn_job=\"gone\",step=\"$step\"}" 1
done
want "cairn_run_step_success{cairn_job=\"gone\",step=\"sync\"}" 0

# Two jobs on one repository, one metrics file each: their backup families are
# two series (label cairn_job), not one the node exporter would see twice and
# drop. No family has a label 'job': Prometheus would rename it exported_job.
M="$O/two-a.prom" job two-a
M="$O/two-b.prom" job two-b
for j in two-a two-b; do
	M="$O/$j.prom" run_job "$j"
	M="$O/$j.prom" want "cairn_backup_success{cairn_job=\"$j\",repo=\"$CAIRN_REPO\"}" 1
	M="$O/$j.prom" want "cairn_run_success{cairn_job=\"$j\"}" 0
done
cat "$O/two-a.prom" "$O/two-b.prom" | grep -v '^#' | sed 's/ [^ ]*$//' | sort | uniq -d > "$O/dup"
[ ! -s "$O/dup" ] || fail "series written by both jobs: $(cat "$O/dup")"

# backup alone: a repository that is not there, then a dry run, which writes none.
B="$O/backup.prom"
t0=$(date +%s)
expect_fail 1 "" -- "$CAIRN" -r "$W/no-repo" backup --metrics-file "$B" "$SRC"
M=$B L="{repo=\"$W/no-repo\"}" last_ok=0 want "cairn_backup_success{repo=\"$W/no-repo\"}" 0
"$CAIRN" backup -n --metrics-file "$O/dry.prom" "$SRC" > /dev/null
[ ! -e "$O/dry.prom" ] || fail "a dry run wrote metrics: $(cat "$O/dry.prom")"
"$CAIRN" backup --metrics-file "$O/plain.prom" "$SRC" > /dev/null
# A metrics file whose directory is missing (no node exporter installed) does not
# stop the backup: the snapshot is saved, one warning, exit status 3.
n0=$("$CAIRN" snapshots --json | grep -o '"id"' | wc -l)
rc=0
"$CAIRN" backup --metrics-file "$O/nodir/x.prom" "$SRC" > "$O/nodir.out" 2> "$O/nodir.err" || rc=$?
[ "$rc" = 3 ] || fail "backup with a missing metrics directory exited $rc: $(cat "$O/nodir.err")"
n1=$("$CAIRN" snapshots --json | grep -o '"id"' | wc -l)
[ "$n1" = $((n0 + 1)) ] || fail "no snapshot written: $n0 then $n1"
out_has "$O/nodir.out" "saved"
[ "$(wc -l < "$O/nodir.err")" = 1 ] || fail "not one warning: $(cat "$O/nodir.err")"
out_match "$O/nodir.err" "snapshot saved, but cannot write metrics: .*nodir"
[ ! -e "$O/nodir" ] || fail "the metrics directory was made"
# A directory as the metrics file is bad usage, refused before any backup.
expect_fail 2 "not a regular file" -- "$CAIRN" backup --metrics-file "$O" "$SRC"

# A repository path that is not UTF-8 (a Latin-1 byte) and holds a quote and a
# backslash: the label stays valid (U+FFFD for the byte), so promtool and the
# node exporter take the file (checked below with the others).
B=$(printf '%s/caf\xe9 "q\\b' "$W")
"$CAIRN" -r "$B" init --kdf-log2n 10 > /dev/null
"$CAIRN" -r "$B" backup --metrics-file "$O/latin1.prom" "$SRC" > /dev/null
fffd=$(printf '\xef\xbf\xbd')
grep -qxF "cairn_backup_success{repo=\"$W/caf$fffd \\\"q\\\\b\"} 1" "$O/latin1.prom" ||
	fail "the label of a non-UTF-8 repository path: $(grep success "$O/latin1.prom" | cat -v)"

# ---- the names and the files -----------------------------------------------
! grep -n '[{,]job=' "$O"/*.prom || fail "a metric has the label 'job'"
for f in "$O"/*.prom; do
	promtool check metrics < "$f" > "$O/promtool.out" 2>&1 ||
		fail "promtool check metrics $(basename "$f"): $(cat "$O/promtool.out")"
done
cat "$O"/*.prom | sed -n 's/^# TYPE \(cairn_[a-z_]*\) \([a-z]*\)$/\1 \2/p' | sort -u > "$O/families"
python3 - "$O/families" <<'PY' || fail "metric names: $(cat "$O/families")"
import sys
units = ("seconds", "bytes", "files")
for line in open(sys.argv[1]):
    name, kind = line.split()
    parts = name.split("_")
    base = parts[:-1] if parts[-1] == "total" else parts
    assert (kind == "counter") == (parts[-1] == "total"), ("_total is for counters", name, kind)
    for u in units:  # the base unit comes last
        assert u not in base[:-1], ("unit not last", name)
    if "timestamp" in parts:
        assert name.endswith("_timestamp_seconds"), name
    if "duration" in parts:
        assert name.endswith("_duration_seconds"), name
PY

# ---- docs/OPERATIONS.md: the table and the alert rules ----------------------
# The table lists exactly the metrics written above (the same families).
sed -n '/^## 5\. Metrics/,/^## 6\./p' "$SRCDIR/docs/OPERATIONS.md" | grep '^| `cairn_' |
	cut -d'|' -f2 | grep -o 'cairn_[a-z_]*' | sort -u > "$O/documented"
cut -d' ' -f1 "$O/families" | diff "$O/documented" - ||
	fail "the metrics table of docs/OPERATIONS.md differs from what cairn writes (< documented, > written)"
sed -n '/^```yaml$/,/^```$/p' "$SRCDIR/docs/OPERATIONS.md" | sed '1d;$d' > "$O/rules.yml"
promtool check rules "$O/rules.yml" > "$O/promtool.out" 2>&1 || fail "promtool check rules: $(cat "$O/promtool.out")"
python3 - "$O/rules.yml" "$O/families" <<'PY' || fail "alert rules of docs/OPERATIONS.md: $(cat "$O/rules.yml")"
import re, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
fams = {l.split()[0] for l in open(sys.argv[2])}
rules = [r for g in doc["groups"] for r in g["rules"]]
names = {r["alert"] for r in rules}
for want in ("CairnNoBackup", "CairnBackupFailed", "CairnCheckFailed", "CairnSyncBehind"):
    assert want in names, (want, names)
for r in rules:
    assert r["annotations"]["summary"], r
    used = set(re.findall(r"cairn_[a-z_]+", r["expr"]))
    assert used and used <= fams, (r["alert"], used - fams)
    # Prometheus' own label 'job' is the scrape job (node), never the cairn job.
    assert "$labels.job " not in r["annotations"]["summary"], r["alert"]
PY
# CairnBackupFailed fires on the file of a failed backup and not on that of a
# good one: promtool evaluates the rule on the file's series.
python3 - "$O/rules.yml" "$O/after-wrongpw.prom" "$O/after-ok.prom" > "$O/rules-test.yml" <<'PY'
import json, re, sys, yaml
rule = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]
        if r.get("alert") == "CairnBackupFailed"][0]
def case(path, fires):
    line = [l for l in open(path) if l.startswith("cairn_backup_success{")][0]
    series, value = line.rsplit(" ", 1)
    labels = dict(re.findall(r'([a-z_]+)="([^"]*)"', series))
    summary = rule["annotations"]["summary"]
    for k, v in labels.items():
        summary = summary.replace("{{ $labels.%s }}" % k, v)
    summary = summary.replace("{{ $labels.instance }}", "")
    exp = [{"exp_labels": labels, "exp_annotations": {"summary": summary}}] if fires else []
    return {"interval": "1m", "input_series": [{"series": series, "values": value.strip()}],
            "alert_rule_test": [{"eval_time": "0m", "alertname": "CairnBackupFailed", "exp_alerts": exp}]}
print(json.dumps({"rule_files": ["rules.yml"], "tests": [case(sys.argv[2], True), case(sys.argv[3], False)]}))
PY
(cd "$O" && promtool test rules rules-test.yml) > "$O/promtool.out" 2>&1 ||
	fail "promtool test rules: $(cat "$O/promtool.out")"
echo "metrics: all passed"
