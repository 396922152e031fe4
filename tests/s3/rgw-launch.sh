#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A private single-node Ceph RGW (mon + memstore OSD + radosgw) on 127.0.0.1 for the
# S3 tests: a real S3 server that checks SigV4 signatures, Content-MD5 and multipart
# rules. Adapted from ../shared/s3/rgw-start.sh, with free ports and a private dir.
#
# Executed:  rgw-launch.sh start DIR   prints `export ...` lines (eval them)
#            rgw-launch.sh stop DIR
# Sourced:   rgw_start DIR; rgw_stop; rgw_gw_stop; rgw_gw_start (radosgw only, same port)
# Exits (or returns) 77 with the reason on stderr when the Ceph packages are missing or
# the cluster does not come up, so callers can SKIP.
# Environment: MEMSTORE_BYTES (default 1 GiB), S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET,
# RGW_EXTRA_CONF (lines for the gateway's section of ceph.conf).

rgw_skip() {
	echo "SKIP: $*" >&2
	return 77
}

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race until the daemon binds).
rgw_free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rgw_write_conf() {
	cat > "$RGW_DIR/ceph.conf" <<CONF
[global]
fsid = $1
mon host = v1:127.0.0.1:$RGW_MON_PORT
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
# Each map change (the OSD's boot, every pool radosgw creates) waits for the
# next proposal, 1 s apart by default: at 10 ms the cluster is up in ~5 s, not ~20.
paxos propose interval = 0.01
paxos min wait = 0.01
osd pool default pg autoscale mode = off
run dir = $RGW_DIR/run
log file = $RGW_DIR/log/\$name.log
admin socket = $RGW_DIR/run/\$name.asok
pid file = $RGW_DIR/run/\$name.pid
keyring = $RGW_DIR/keyring
ms bind ipv6 = false
ms bind msgr2 = false
[mon.a]
mon data = $RGW_DIR/mon.a
[osd.0]
osd data = $RGW_DIR/osd.0
# Left on, the OSD sends its crush commands as soon as it has authenticated, and
# its first monmap has a zero fsid until the monitor's arrives: under load the
# command wins that race and is refused ("wrong fsid"), and the OSD exits
# (with the monitor at nice 19 beside 4 busy loops: 5 boots of 26 failed so,
# none of 20 since). rgw_boot puts it in the crush map from the CLI instead.
osd crush update on start = false
osd class update on start = false
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-1073741824}
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $RGW_DIR/rgw.a
rgw dns name = s3.localhost
debug rgw = 1
# Fewer threads, and no background work that a test never waits for
# (garbage collection, lifecycle, quotas, multisite sync, resharding): a quicker start.
rgw thread pool size = 32
rgw num async rados threads = 4
rgw enable gc threads = false
rgw enable lc threads = false
rgw enable quota threads = false
rgw run sync thread = false
rgw dynamic resharding = false
${RGW_EXTRA_CONF:-}
CONF
}

rgw_wait_http() { # seconds
	local i
	for i in $(seq 1 $(($1 * 10))); do
		curl -s -o /dev/null --noproxy 127.0.0.1 "http://127.0.0.1:$RGW_PORT/" && return 0
		sleep 0.1
	done
	return 1
}

# The daemons run without MALLOC_PERTURB_ (meson sets it for tests): ceph-osd
# does not start with it.
rgw_gw_start() {
	env -u MALLOC_PERTURB_ radosgw -c "$RGW_DIR/ceph.conf" -n client.rgw.a || return 1
	rgw_wait_http 60
}

# rgw_kill_pidfiles SIGNAL PIDFILE...: signal every daemon at once, then wait (up
# to 10 s) until each is gone, and SIGKILL what is left.
rgw_kill_pidfiles() {
	local sig=$1 f pid pids=() i
	shift
	for f in "$@"; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		rm -f "$f"
		kill "$sig" "$pid" 2>/dev/null && pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	done
}

rgw_gw_stop() {
	rgw_kill_pidfiles -TERM "$RGW_DIR/run/client.rgw.a.pid"
}

# The whole cluster is thrown away: SIGKILL, as SIGTERM makes the OSD write its
# memstore out and each daemon shut down in turn (~5 s in all).
rgw_stop() {
	[ -n "${RGW_DIR:-}" ] && [ -d "$RGW_DIR/run" ] || return 0
	rgw_kill_pidfiles -KILL "$RGW_DIR"/run/{client.rgw.a,osd.0,mon.a}.pid
}

rgw_boot() {
	local C="-c $RGW_DIR/ceph.conf" fsid uuid
	fsid=$(cat /proc/sys/kernel/random/uuid)
	# The OSD's uuid is given to both "osd create" and mkfs: left to each, they can
	# disagree under load, and the OSD then fails to boot with "wrong fsid".
	uuid=$(cat /proc/sys/kernel/random/uuid)
	rgw_write_conf "$fsid"
	(cd "$RGW_DIR" &&
		ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null &&
		monmaptool --create --add a "v1:127.0.0.1:$RGW_MON_PORT" --fsid "$fsid" monmap >/dev/null) &&
	ceph-mon $C --mkfs -i a --monmap "$RGW_DIR/monmap" --keyring "$RGW_DIR/keyring" &&
	ceph-mon $C -i a &&
	# One CLI run (commands on stdin) creates the OSD and puts it in the map.
	printf 'osd create %s\nosd crush add osd.0 1 root=default\n' "$uuid" |
		timeout 60 ceph $C >/dev/null &&
	ceph-osd $C -i 0 --mkfs --osd-uuid "$uuid" &&
	ceph-osd $C -i 0 && # its stderr (in boot.log) says why it would not start
	rgw_gw_start &&
	timeout 60 radosgw-admin $C user create --uid=tester --display-name=tester \
		--access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >/dev/null
}

# rgw_start DIR: boot the cluster, create the user and bucket, export the client env.
rgw_start() {
	local p
	for p in radosgw ceph-mon ceph-osd ceph-authtool monmaptool radosgw-admin ceph curl; do
		command -v "$p" >/dev/null ||
			{ rgw_skip "$p not installed (scripts/install-deps.sh test)"; return 77; }
	done
	[ -x /usr/bin/aws ] || { rgw_skip "/usr/bin/aws (Debian awscli) not installed"; return 77; }
	RGW_DIR=$1
	: "${S3_ACCESS_KEY:=TESTACCESSKEY}" "${S3_SECRET_KEY:=TESTSECRETKEY}" "${S3_BUCKET:=cairn-test}"
	local attempt ok=0 why=
	# A loaded machine (2 cores, tests in parallel) can miss a port race or a
	# timeout: more attempts on fresh ports, after a pause that lets a burst of
	# load (a parallel test's build) pass.
	for attempt in 1 2 3; do
		[ "$attempt" = 1 ] || sleep $((5 * (attempt - 1)))
		rm -rf "$RGW_DIR"
		mkdir -p "$RGW_DIR"/{run,log,mon.a,osd.0,rgw.a} || return 1
		RGW_PORT=$(rgw_free_port) && RGW_MON_PORT=$(rgw_free_port) ||
			{ rgw_skip "no free port"; return 77; }
		if (unset MALLOC_PERTURB_ && set -x && rgw_boot) >"$RGW_DIR/log/boot.log" 2>&1; then
			ok=1
			break
		fi
		# boot.log traces each step (set -x): its last lines name the one that
		# failed; each attempt's, as the next one starts afresh.
		why+="attempt $attempt: $(grep . "$RGW_DIR/log/boot.log" | tail -2 | tr '\n' ' ')"
		# the two fsids the monitor compared, when it refused a command
		why+=" $(grep -ho 'handle_command on fsid .*' "$RGW_DIR"/log/mon.a.log 2>/dev/null | sed -n 1p)"$'\n'
		[ "$attempt" = 3 ] || rgw_stop
	done
	if [ "$ok" = 0 ]; then
		rgw_stop
		# The daemons log errors at level -1: the first one usually says why.
		rgw_skip "Ceph RGW did not start in 3 attempts;" "$why" \
			"$(grep -h ' -1 ' "$RGW_DIR"/log/*.log 2>/dev/null | grep -vi 'signal' | sed -n 1p)"
		return 77
	fi
	export RGW_DIR RGW_PORT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET
	export AWS_ENDPOINT_URL="http://127.0.0.1:$RGW_PORT" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY"
	export AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
	export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 AWS_CA_BUNDLE
	# The bucket is created with the independent client, so a broken cairn cannot hide.
	/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" s3api create-bucket --bucket "$S3_BUCKET" \
		>/dev/null 2>>"$RGW_DIR/log/boot.log" || {
		rgw_stop
		rgw_skip "cannot create bucket: $(tail -1 "$RGW_DIR/log/boot.log")"
		return 77
	}
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	case "${1:-}" in
	start)
		[ -n "${2:-}" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
		rgw_start "$2" || exit $?
		for v in RGW_DIR RGW_PORT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET AWS_ENDPOINT_URL \
			AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION; do
			printf 'export %s=%q\n' "$v" "${!v}"
		done
		;;
	stop)
		[ -n "${2:-}" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
		RGW_DIR=$2 rgw_stop
		;;
	*)
		echo "usage: $0 start|stop DIR" >&2
		exit 2
		;;
	esac
fi
