#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Windows "Previous Versions" through Samba: a private smbd on 127.0.0.1 shares a
# backed-up directory with vfs_shadow_copy2 reading cairnfs's shadow/<host>/ (the
# smb.conf lines of docs/MOUNT.md), and smbclient lists a file's previous versions
# and reads an old version's bytes. Skips (77) only when smbd cannot run here.
. "$(dirname "$0")/lib.sh"
fuse_setup
skip() { echo "SKIP: $*"; exit 77; }
command -v smbd > /dev/null && command -v smbclient > /dev/null && command -v smbpasswd > /dev/null ||
	skip "no smbd or smbclient (Debian's samba, samba-vfs-modules and smbclient: scripts/install-deps.sh test)"
modules=$(smbd -b | sed -n 's/^ *MODULESDIR: *//p')
[ -f "$modules/vfs/shadow_copy2.so" ] || skip "no vfs_shadow_copy2 in '$modules/vfs' (Debian's samba-vfs-modules)"
# smbd serves each file as the connecting user: it must be able to switch users.
[ "$(id -u)" = 0 ] || skip "smbd needs root to serve files as the connecting user"

# The names under shadow/ are UTC, the others local time: make them differ.
export TZ=EST5EDT,M3.2.0,M11.1.0
init_repo
S="$W/share/data" # the shared directory, backed up twice
mkdir -p "$S/sub"
head -c 300000 /dev/urandom > "$W/v1"
cp "$W/v1" "$S/report.bin"
echo "sub one" > "$S/sub/notes.txt"
"$CAIRN" backup --host fileserver "$S" > /dev/null
head -c 200000 /dev/urandom > "$W/v2"
cp "$W/v2" "$S/report.bin"
echo "sub two" > "$S/sub/notes.txt"
echo "new in two" > "$S/new.txt"
# Another host's backup of the same path must not show as a version.
"$CAIRN" backup --host otherhost "$S" > /dev/null
sleep 1 # a second of its own: the next backup's name is not moved (see below)
"$CAIRN" backup --host fileserver "$S" > /dev/null
echo "live now" > "$S/report.bin"
mount_fs -o allow_other

mapfile -t gmt < <(ls "$MNT/shadow/fileserver")
[ "${#gmt[@]}" = 2 ] || fail "shadow/fileserver lists ${gmt[*]}"
[[ "${gmt[0]}" =~ ^@GMT-[0-9]{4}\.[0-9]{2}\.[0-9]{2}-[0-9]{2}\.[0-9]{2}\.[0-9]{2}$ ]] || fail "name '${gmt[0]}'"
[ "$(ls "$MNT/shadow")" = "$(printf 'fileserver\notherhost')" ] || fail "shadow/ lists $(ls "$MNT/shadow")"
# The names are the snapshots' times in UTC (cairn snapshots --json has them).
"$CAIRN" snapshots --json | python3 -c '
import datetime, json, sys
for s in json.load(sys.stdin):
    if s["hostname"] == "fileserver":
        t = datetime.datetime.fromisoformat(s["time"][:19] + s["time"][29:])
        print(t.astimezone(datetime.timezone.utc).strftime("@GMT-%Y.%m.%d-%H.%M.%S"))
' | sort > "$W/want"
diff <(printf '%s\n' "${gmt[@]}") "$W/want" > /dev/null || fail "names ${gmt[*]}, want $(cat "$W/want")"

# ---- a private smbd on a free port of 127.0.0.1 ------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
D="$W/samba"
mkdir -p "$D/private" "$D/lock" "$D/state" "$D/cache" "$D/pid" "$D/ncalrpc"
cat > "$D/smb.conf" << EOF
[global]
  server role = standalone server
  interfaces = 127.0.0.1
  bind interfaces only = yes
  smb ports = $port
  disable netbios = yes
  private dir = $D/private
  lock directory = $D/lock
  state directory = $D/state
  cache directory = $D/cache
  pid directory = $D/pid
  ncalrpc dir = $D/ncalrpc
  log file = $D/log.%m
  passdb backend = tdbsam:$D/private/passdb.tdb
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
[data]
  path = $S
  read only = yes
  # docs/MOUNT.md: Windows "Previous Versions"
  vfs objects = shadow_copy2
  shadow:snapdir = $MNT/shadow/fileserver
  shadow:mountpoint = /
EOF
printf 'pw-for-smb\npw-for-smb\n' | smbpasswd -c "$D/smb.conf" -s -a root > /dev/null ||
	skip "smbpasswd cannot add a user: $(cat "$D"/log.* 2> /dev/null | tail -3)"
# In a process group of its own: when stopped, smbd signals its whole group.
setsid smbd --foreground --no-process-group -s "$D/smb.conf" --debug-stdout -d 1 > "$D/smbd.log" 2>&1 &
smbpid=$!
# Before the unmount: smbd may hold files of the mount open.
cleanup_hooks=('kill $smbpid 2>/dev/null; wait $smbpid 2>/dev/null' "${cleanup_hooks[@]}")
up=
for _ in $(seq 100); do
	python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2> /dev/null && { up=1; break; }
	kill -0 $smbpid 2> /dev/null || break
	sleep 0.1
done
[ -n "$up" ] || skip "smbd did not start: $(tail -5 "$D/smbd.log")"
smb() { smbclient "//127.0.0.1/data" -p "$port" -U 'root%pw-for-smb' -c "$1" 2>> "$W/smbclient.err"; }

# ---- the previous versions of a file, and an old version's bytes ---------------
smb 'allinfo report.bin' > "$W/allinfo" || fail "allinfo: $(cat "$W/smbclient.err")"
[ "$(grep '^@GMT-' "$W/allinfo" | sort)" = "$(printf '%s\n' "${gmt[@]}")" ] ||
	fail "allinfo lists versions $(grep '^@GMT-' "$W/allinfo" | tr '\n' ' '), want ${gmt[*]}"
(cd "$W" && smb "get ${gmt[0]}/report.bin old1; get ${gmt[1]}/report.bin old2; get report.bin live") > /dev/null ||
	fail "get: $(cat "$W/smbclient.err")"
cmp "$W/old1" "$W/v1" || fail "the first version's bytes are not the first backup's"
cmp "$W/old2" "$W/v2" || fail "the second version's bytes are not the second backup's"
[ "$(cat "$W/live")" = "live now" ] || fail "the live file: $(cat "$W/live")"
# Below the share root, and a file only the second backup has.
(cd "$W" && smb "get ${gmt[0]}/sub/notes.txt n1; get ${gmt[1]}/sub/notes.txt n2") > /dev/null ||
	fail "get sub/: $(cat "$W/smbclient.err")"
[ "$(cat "$W/n1")/$(cat "$W/n2")" = "sub one/sub two" ] || fail "sub/notes.txt: $(cat "$W/n1") / $(cat "$W/n2")"
smb 'allinfo new.txt' > "$W/allinfo" 2>&1 || true
grep -q "^${gmt[1]}$" "$W/allinfo" && grep -q "pathinfo(${gmt[0]}.*failed" "$W/smbclient.err" ||
	fail "new.txt: $(cat "$W/allinfo")"
(cd "$W" && smb "get ${gmt[0]}/new.txt x") > /dev/null 2>&1 && fail "a version that does not exist"

kill $smbpid
wait $smbpid 2> /dev/null || true
umount_fs
echo ok
