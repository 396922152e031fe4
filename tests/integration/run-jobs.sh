#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn run, several jobs on one repository: a job's retention policy judges only
# its own snapshots (this host, exactly its paths), never another job's nor a
# backup made by hand of other paths; the run history and the log name the
# snapshot of every backup that wrote one (partial, and under -q too).
. "$(dirname "$0")/lib.sh"

export CAIRN_CONFIG_DIR="$W/conf" CAIRN_STATE_DIR="$W/state"
O="$W/o"
mkdir -p "$CAIRN_CONFIG_DIR" "$CAIRN_STATE_DIR" "$O" "$W/a" "$W/b" "$W/c"
echo a > "$W/a/f"
echo b > "$W/b/f"
echo c > "$W/c/f"
init_repo
# cairn run must take everything from the job file, not from these.
run() { env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" "$@"; }
job() { # NAME [KEY = VALUE]...
	local name=$1
	shift
	{
		printf 'repository = %s\npassword-file = %s\n' "$CAIRN_REPO" "$CAIRN_PASSWORD_FILE"
		printf '%s\n' "$@"
	} > "$CAIRN_CONFIG_DIR/$name.conf"
}
# count PATHS...: the snapshots whose paths are exactly these
count() {
	"$CAIRN" snapshots --json > "$O/snaps.json"
	python3 -c 'import json,sys
print(sum(1 for s in json.load(open(sys.argv[1])) if sorted(s["paths"]) == sorted(sys.argv[2:])))' \
		"$O/snaps.json" "$@"
}
# last_history NAME: the last line of the job's run history
last_history() { tail -1 "$CAIRN_STATE_DIR/$1.runs"; }

# ---- a job's policy applies to its own group only ----------------------------
job keepmany "paths = $W/b" "keep-last = 10"
job keepone "paths = $W/a" "keep-last = 1" "prune = yes"
for i in 1 2 3; do
	run run keepmany > "$O/many.out" 2> "$O/many.err" || fail "job keepmany: $(cat "$O/many.err")"
done
# By hand: the same paths as keepone plus another (a superset of its paths), and
# other paths altogether.
"$CAIRN" backup "$W/a" "$W/c" > /dev/null
"$CAIRN" backup "$W/c" > /dev/null
for i in 1 2; do
	run run keepone > "$O/one.out" 2> "$O/one.err" || fail "job keepone: $(cat "$O/one.err")"
done
[ "$(count "$W/a")" = 1 ] || fail "keepone kept $(count "$W/a") of its snapshots, not 1"
[ "$(count "$W/b")" = 3 ] || fail "keepone's policy removed keepmany's snapshots: $(count "$W/b") left"
[ "$(count "$W/a" "$W/c")" = 1 ] || fail "keepone's policy removed the backup of $W/a and $W/c"
[ "$(count "$W/c")" = 1 ] || fail "keepone's policy removed the backup of $W/c"
out_lacks "$O/one.out" "$W/b"
# The dry run shows the scope: the group of the new snapshot.
run run -n keepone > "$O/dry.out"
out_match "$O/dry.out" "^cairn .* forget --keep-last 1 --host [^ ]* --group-of '<new snapshot>' --prune"
# forget --group-of by hand: only that snapshot's group; a bad ID is an error.
"$CAIRN" forget --keep-last 1 --group-of latest > /dev/null
[ "$(count "$W/b")" = 3 ] && [ "$(count "$W/a")" = 1 ] || fail "forget --group-of latest judged other groups"
expect_fail 1 "" -- "$CAIRN" forget --keep-last 1 --group-of 0000ffff
expect_fail 2 "goes with a policy" -- "$CAIRN" forget --group-of latest latest
[ "$(count "$W/b")" = 3 ] || fail "a failed forget --group-of removed snapshots"

# ---- the snapshot of every backup that wrote one is recorded -------------------
# A partial backup (a path missing) and a clean one under -q, whose summary line
# is silenced: the history and the backup step's log line name the snapshot the
# repository holds.
newest() { "$CAIRN" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"][:8])'; }
job part "paths = $W/c $W/missing"
rc=0
run --log-format json run part > /dev/null 2> "$O/part.err" || rc=$?
[ "$rc" = 3 ] || fail "job part exited $rc: $(cat "$O/part.err")"
id=$(newest)
last_history part | grep -q " snapshot=$id backup=partial,3," ||
	fail "the history lacks the partial snapshot $id: $(last_history part)"
out_has "$O/part.err" "\"step\":\"backup\",\"result\":\"partial\""
grep '"result":"partial"' "$O/part.err" | grep -q "\"snapshot\":\"$id\"" ||
	fail "the backup step's log line lacks the snapshot $id: $(cat "$O/part.err")"
job quiet "paths = $W/c"
run -q run quiet > "$O/quiet.out" 2> "$O/quiet.err" || fail "job quiet: $(cat "$O/quiet.err")"
out_lacks "$O/quiet.out" "saved"
id=$(newest)
last_history quiet | grep -q " snapshot=$id backup=ok,0," ||
	fail "the history of a quiet run lacks the snapshot $id: $(last_history quiet)"

# ---- a metrics file that cannot be written does not stop the backup ----------
job nodir "paths = $W/c" "metrics-file = $W/nodir/c.prom"
n=$(count "$W/c")
rc=0
run run nodir > "$O/nodir.out" 2> "$O/nodir.err" || rc=$?
[ "$rc" = 1 ] || fail "job nodir exited $rc: $(cat "$O/nodir.err")"
[ "$(count "$W/c")" = $((n + 1)) ] || fail "job nodir took no snapshot: $(cat "$O/nodir.err")"
out_match "$O/nodir.err" "cannot write metrics"
out_lacks "$O/nodir.err" "backup: backup:"
last_history nodir | grep -q ' snapshot=[0-9a-f]\{8\} ' || fail "no snapshot in the history: $(last_history nodir)"

# ---- SIGTERM (systemctl stop, shutdown) and SIGHUP stop the job as SIGINT does --
# The signal comes while the backup step waits for its password: the password
# command signals cairn run (its parent's parent) once, when armed. cairn run
# passes the signal on, waits for the step, skips the rest, and records the
# failure: history, metrics, notification.
printf '#!/bin/sh\ncat > "%s/mail.$$"\n' "$O" > "$W/sendmail"
chmod +x "$W/sendmail"
for sig in TERM HUP; do
	job "sig$sig" "paths = $W/c" "keep-last = 5" "metrics-file = $O/sig$sig.prom" \
		"notify-mail = ops@example.org"
	sed -i '/^password-file = /d' "$CAIRN_CONFIG_DIR/sig$sig.conf"
	printf '%s\n' "password-command = if [ -e $W/arm ]; then rm $W/arm; kill -$sig \$(cut -d' ' -f4 /proc/\$PPID/stat); fi; cat $CAIRN_PASSWORD_FILE" \
		>> "$CAIRN_CONFIG_DIR/sig$sig.conf"
	run run "sig$sig" > /dev/null 2> "$O/sig.err" || fail "job sig$sig unarmed: $(cat "$O/sig.err")"
	n=$(count "$W/c")
	rm -f "$O"/mail.*
	touch "$W/arm"
	rc=0
	CAIRN_SENDMAIL="$W/sendmail" run run "sig$sig" > /dev/null 2> "$O/sig.err" || rc=$?
	[ ! -e "$W/arm" ] || fail "the password command did not signal"
	[ "$rc" = 1 ] || fail "job sig$sig stopped by SIG$sig exited $rc: $(cat "$O/sig.err")"
	out_has "$O/sig.err" "job sig$sig interrupted by SIG$sig"
	out_has "$O/sig.err" "forget skipped"
	last_history "sig$sig" | grep -q '^time=[0-9]* exit=1 .*backup=failed,' ||
		fail "no failed run in the history: $(last_history "sig$sig")"
	grep -q "^cairn_run_success{cairn_job=\"sig$sig\"} 0\$" "$O/sig$sig.prom" ||
		fail "the metrics do not say the run failed: $(cat "$O/sig$sig.prom")"
	grep -q '^cairn_backup_success{.*} 0$' "$O/sig$sig.prom" ||
		fail "the metrics still say the backup succeeded: $(cat "$O/sig$sig.prom")"
	cat "$O"/mail.* 2> /dev/null | grep -q "interrupted by SIG$sig" ||
		fail "no notification of the interruption"
	[ "$(count "$W/c")" = "$n" ] || fail "SIG$sig: a snapshot was written after all"
done

# ---- a reader that went away does not kill a backup ---------------------------
# stdout is a pipe whose reader is closed before the backup writes a byte: the
# snapshot and the metrics are written, and the status is the backup's.
n=$(count "$W/c")
rc=0
python3 -c 'import os, subprocess, sys
r, w = os.pipe()
os.close(r)
sys.exit(subprocess.call(sys.argv[1:], stdout=w) & 255)' \
	"$CAIRN" backup --metrics-file "$O/pipe.prom" "$W/c" 2> "$O/pipe.err" || rc=$?
[ "$rc" = 0 ] || fail "backup into a closed pipe exited $rc: $(cat "$O/pipe.err")"
[ "$(count "$W/c")" = $((n + 1)) ] || fail "backup into a closed pipe wrote no snapshot"
grep -q '^cairn_backup_success{.*} 1$' "$O/pipe.prom" || fail "no metrics after a closed pipe"

# ---- job files others may change are refused ----------------------------------
# A job file runs its password-command as the user cairn runs as (root, hourly):
# one writable by group or others, or owned by another user, or in a directory
# others may write (not sticky), is refused before anything runs.
job perms "paths = $W/c" "password-command = touch $W/ran; cat $CAIRN_PASSWORD_FILE"
sed -i '/^password-file = /d' "$CAIRN_CONFIG_DIR/perms.conf"
refused() { # PATTERN
	expect_fail 2 "$1" -- env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" run perms
	out_has "$W/err" "refusing job file '$CAIRN_CONFIG_DIR/perms.conf'"
	[ ! -e "$W/ran" ] || fail "the password command of a refused job file ran"
}
chmod 664 "$CAIRN_CONFIG_DIR/perms.conf"
refused "the file is writable by its group (mode 0664"
chmod 646 "$CAIRN_CONFIG_DIR/perms.conf"
refused "the file is writable by others (mode 0646"
chmod 644 "$CAIRN_CONFIG_DIR/perms.conf"
if [ "$(id -u)" = 0 ]; then
	chown 65534 "$CAIRN_CONFIG_DIR/perms.conf"
	refused "the file is owned by uid 65534, not by root or this user"
	chown 0 "$CAIRN_CONFIG_DIR/perms.conf"
fi
chmod 777 "$CAIRN_CONFIG_DIR"
refused "its directory is writable by others (mode 0777"
chmod 1777 "$CAIRN_CONFIG_DIR" # sticky: nobody replaces another's file
run run perms > /dev/null 2> "$O/perms.err" || fail "job perms in a sticky directory: $(cat "$O/perms.err")"
[ -e "$W/ran" ] || fail "the password command did not run"
chmod 755 "$CAIRN_CONFIG_DIR"

echo "run-jobs: all passed"
