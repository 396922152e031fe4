#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Packaging: the systemd units pass `systemd-analyze verify` (pointed at the built
# binaries), `meson install` installs the expected set, and the Debian package
# builds with dpkg-buildpackage, holds that set (dpkg -x), and installs for real
# with dpkg -i: then cairn --version, cairnfs --version, man -w of each page, the
# bash completion and systemd-analyze verify of the installed units work, and
# dpkg --purge removes it all again. The install needs root (CI runs as root);
# it refuses (SKIP) when a cairn package this test did not install is present.
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "$(dirname "$CAIRN")/.." && pwd)
CAIRNFS=${CAIRNFS:-$BUILD/fs/cairnfs}
UNITS=(cairn-backup@.service cairn-backup@.timer cairn-notify@.service cairn-mount@.service)
[ -x "$CAIRNFS" ] || fail "no cairnfs binary at $CAIRNFS"
command -v systemd-analyze > /dev/null || fail "systemd-analyze missing (scripts/install-deps.sh test)"

# verify_units DIR BIN: copy DIR's units, point /usr/bin/cairn{,fs} at BIN/cairn{,fs},
# and verify one instance of each; any message at all is a failure (unknown keys
# are only warnings to systemd-analyze).
verify_units() {
	local d
	d=$(mktemp -d "$W/units-XXXXXX")
	for u in "${UNITS[@]}"; do
		[ -f "$1/$u" ] || fail "unit $u missing in $1"
		sed "s#/usr/bin/cairnfs#$2/cairnfs#g; s#/usr/bin/cairn #$2/cairn #g" "$1/$u" > "$d/$u"
	done
	systemd-analyze verify --man=no "$d/cairn-backup@job.service" "$d/cairn-backup@job.timer" \
		"$d/cairn-notify@job.service" "$d/cairn-mount@job.service" > "$W/verify.out" 2>&1 ||
		fail "systemd-analyze verify failed: $(cat "$W/verify.out")"
	[ ! -s "$W/verify.out" ] || fail "systemd-analyze verify complained: $(cat "$W/verify.out")"
}

# ---- the units ---------------------------------------------------------------
mkdir -p "$W/bin"
ln -s "$CAIRN" "$W/bin/cairn"
ln -s "$CAIRNFS" "$W/bin/cairnfs"
U="$SRCDIR/packaging/systemd"
verify_units "$U" "$W/bin"
# The checks of verify_units must bite: an unknown key and a missing binary fail.
mkdir -p "$W/bad"
cp "$U"/* "$W/bad/"
echo "Bogus=1" >> "$W/bad/cairn-notify@.service"
(verify_units "$W/bad" "$W/bin") 2> /dev/null && fail "verify_units missed an unknown key"
cp "$U/cairn-notify@.service" "$W/bad/"
(verify_units "$W/bad" "$W/nonexistent") 2> /dev/null && fail "verify_units missed a missing binary"

# What the issue asks of the units, so that an edit cannot quietly drop it.
has() { grep -q "^$2\$" "$U/$1" || fail "$1 lacks '$2'"; }
has cairn-backup@.timer 'OnCalendar=hourly'
has cairn-backup@.timer 'Persistent=true'
has cairn-backup@.timer 'RandomizedDelaySec=.*'
has cairn-backup@.service 'ExecStart=/usr/bin/cairn run %i'
has cairn-backup@.service 'OnFailure=cairn-notify@%i.service'
for k in 'ProtectSystem=strict' 'ProtectHome=read-only' 'NoNewPrivileges=yes' \
	'Nice=10' 'CPUSchedulingPolicy=batch' 'IOSchedulingClass=idle' 'ReadWritePaths=.*'; do
	has cairn-backup@.service "$k"
done
# The backup unit sees the real /tmp and /var/tmp: a private or hidden one would
# make a job with paths there save an empty snapshot and report success.
! grep -Eiq '^(PrivateTmp=(yes|true|on|1|disconnected)|TemporaryFileSystem=|InaccessiblePaths=)' \
	"$U/cairn-backup@.service" || fail "cairn-backup@.service hides the real /tmp or /var/tmp"
has cairn-notify@.service 'ExecStart=/usr/bin/cairn notify --job %i --if-unreported .*'
# The unit that exists to send mail through a local MTA can write its queue
# under ProtectSystem=strict: postfix's maildrop, exim's spool and log.
if grep -q '^ProtectSystem=strict$' "$U/cairn-notify@.service"; then
	rw=" $(sed -n 's/^ReadWritePaths=//p' "$U/cairn-notify@.service" | tr '\n' ' ') "
	for d in /var/spool/postfix/maildrop /var/spool/exim4 /var/log/exim4; do
		[[ "$rw" == *" -$d "* ]] || fail "cairn-notify@.service cannot write $d:$rw"
	done
fi
has cairn-mount@.service 'Type=simple'
has cairn-mount@.service 'ExecStart=/usr/bin/cairnfs -f .*'
has cairn-mount@.service 'ExecStop=/usr/bin/fusermount3 -u ${MOUNTPOINT}'
for k in 'NoNewPrivileges=yes' \
	'RestrictSUIDSGID=yes' 'MemoryDenyWriteExecute=yes' 'RestrictAddressFamilies=.*'; do
	has cairn-mount@.service "$k"
done
# The cache of an s3:// repository (and a write-only key's host cache) must be
# writable under ProtectHome=read-only: cairn is pointed at CacheDirectory=.
cache=$(sed -n 's/^CacheDirectory=//p' "$U/cairn-backup@.service")
[ -n "$cache" ] || fail "cairn-backup@.service has no CacheDirectory="
has cairn-backup@.service "Environment=CAIRN_CACHE_DIR=/var/cache/$cache"
# Each unit's program may talk to S3 (an s3:// repository, sync to a bucket) or,
# for notify, to a webhook: its address families must let it reach the network.
for u in cairn-backup@.service cairn-notify@.service cairn-mount@.service; do
	fams=" $(sed -n 's/^RestrictAddressFamilies=//p' "$U/$u") "
	for f in AF_UNIX AF_INET AF_INET6; do
		[[ "$fams" == *" $f "* ]] || fail "$u: RestrictAddressFamilies lacks $f:$fams"
	done
done
# cairnfs raises the mount's read-ahead through /sys/class/bdi: /sys stays writable.
! grep -q '^ProtectKernelTunables=' "$U/cairn-mount@.service" ||
	fail "cairn-mount@.service makes /sys read-only: no 1 MiB read-ahead"
# A private mount namespace would hide the mount from everyone else: none of
# the settings for which systemd makes one (its exec_needs_mount_namespace).
ns='ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|PrivateMounts|PrivateIPC|PrivateNetwork'
ns+='|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|ExecPaths|NoExecPaths|BindPaths'
ns+='|BindReadOnlyPaths|TemporaryFileSystem|MountFlags|ProtectKernelTunables'
ns+='|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset'
ns+='|RootDirectory|RootImage|MountAPIVFS'
! grep -Eq "^($ns)=" "$U/cairn-mount@.service" ||
	fail "cairn-mount@.service gets a mount namespace: $(grep -E "^($ns)=" "$U/cairn-mount@.service")"

# ---- meson install -----------------------------------------------------------
# The set of installed names, ignoring prefixes and compression.
names() { (cd "$1" && find . \( -type f -o -type l \) -printf '%f\n' | sed 's/\.gz$//' | sort); }
meson install -C "$BUILD" --no-rebuild --quiet --destdir "$W/mi" > "$W/mi.log" 2>&1 ||
	fail "meson install failed: $(tail -5 "$W/mi.log")"
names "$W/mi" | grep -v '\.a$' > "$W/mi.names"
# All of docs/ (the man pages and --help point there), and the README.
{ ls "$SRCDIR/docs"; cat; } << EOF | sort > "$W/want.names"
README.md
cairn
cairn
cairn-backup@.service
cairn-backup@.timer
cairn-mount@.service
cairn-notify@.service
cairn.1
cairn.conf.5
cairnfs
cairnfs
cairnfs.1
example.conf
s3-host-policy.json
EOF
diff "$W/want.names" "$W/mi.names" >&2 || fail "meson install set differs from the expected one"

# ---- the Debian package ------------------------------------------------------
# dpkg-buildpackage builds the sources with its own meson setup (release flags,
# no sanitizers), so the package the ASan tree would build and install is the
# same one the plain tree's run builds and installs: the units and meson install
# above are what the ASan tree checks of its own build.
if ldd "$CAIRN" 2> /dev/null | grep -q libasan; then
	echo "packaging: units and meson install checked; the .deb is built and installed by the non-ASan tree's run"
	exit 0
fi
if ! command -v dpkg-buildpackage > /dev/null || ! command -v dh > /dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
		bash "$SRCDIR/scripts/install-deps.sh" deb > "$W/deps.log" 2>&1 || true
	fi
	if ! command -v dpkg-buildpackage > /dev/null || ! command -v dh > /dev/null; then
		echo "SKIP: dpkg-buildpackage/debhelper cannot be installed"
		exit 77
	fi
fi
# nocheck: this suite already runs the unit tests; the package build need not repeat them.
DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" bash "$SRCDIR/packaging/build-deb.sh" "$W/deb" \
	> "$W/deb.log" 2>&1 ||
	fail "dpkg-buildpackage failed: $(tail -30 "$W/deb.log")"
deb=$(ls "$W"/deb/cairn_*.deb)
dpkg-deb -I "$deb" > "$W/deb.info"
grep -q '^ Package: cairn$' "$W/deb.info" || fail "package name"
grep -q "^ Version: $("$CAIRN" --version | awk '{print $2}')-" "$W/deb.info" ||
	fail "package version differs from cairn --version: $(grep Version "$W/deb.info")"
R="$W/root"
dpkg -x "$deb" "$R"
for f in usr/bin/cairn usr/bin/cairnfs lib/systemd/system/cairn-backup@.service \
	lib/systemd/system/cairn-backup@.timer lib/systemd/system/cairn-notify@.service \
	lib/systemd/system/cairn-mount@.service usr/share/man/man1/cairn.1.gz \
	usr/share/man/man1/cairnfs.1.gz usr/share/man/man5/cairn.conf.5.gz \
	usr/share/bash-completion/completions/cairn usr/share/bash-completion/completions/cairnfs \
	usr/share/doc/cairn/OPERATIONS.md usr/share/doc/cairn/examples/example.conf etc/cairn; do
	[ -e "$R/$f" ] || fail "the package lacks /$f"
done
# Every guide of docs/, uncompressed (the units link OPERATIONS.md), and every
# /usr/share/doc/cairn file the man pages, the units and the --help texts name.
for f in "$SRCDIR"/docs/*; do
	[ -f "$R/usr/share/doc/cairn/${f##*/}" ] || fail "the package lacks /usr/share/doc/cairn/${f##*/}"
done
{
	zcat "$R"/usr/share/man/man*/*.gz
	cat "$R"/lib/systemd/system/cairn-*
	"$CAIRN" --help
	for c in $("$CAIRN" --help | awk '/^commands:/ { on = 1; next } on && !NF { exit } on { print $1 }'); do
		"$CAIRN" help "$c"
	done
} | grep -o '/usr/share/doc/cairn/[A-Za-z0-9_./-]*[A-Za-z0-9]' | sort -u > "$W/doc-refs"
[ -s "$W/doc-refs" ] || fail "no reference to /usr/share/doc/cairn found"
while read -r f; do
	[ -e "$R$f" ] || fail "$f is named in the documentation but not in the package"
done < "$W/doc-refs"
# The same set as meson install, plus Debian's changelog and copyright.
names "$R" | grep -vx 'changelog.Debian\|copyright' > "$W/deb.names"
diff "$W/mi.names" "$W/deb.names" >&2 || fail "the package and meson install differ"

# The unpacked binaries run and their units verify.
"$R/usr/bin/cairn" --version | grep -q '^cairn [0-9]' || fail "cairn --version from the package"
"$R/usr/bin/cairnfs" --version | grep -q '^cairnfs [0-9]' || fail "cairnfs --version from the package"
verify_units "$R/lib/systemd/system" "$R/usr/bin"
# The pages render without groff warnings.
for p in "$R"/usr/share/man/man*/*.gz; do
	w=$(zcat "$p" | LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l - 2>&1 > /dev/null) || true
	[ -z "$w" ] || fail "man page ${p##*/}: $w"
done
# shlibs found every library the binaries link; each dependency is installed here.
deps=$(dpkg-deb -f "$deb" Depends)
for lib in libfuse3-3 libzstd1 liblmdb0 libssl3 libcurl4 libexpat1 libc6 fuse3; do
	grep -qE "(^|, )$lib( |,|$)" <<< "$deps" || fail "Depends lacks $lib: $deps"
done
! grep -q '\${' <<< "$deps" || fail "unsubstituted variable in Depends: $deps"

# ---- installing it: dpkg -i, use, dpkg --purge -------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: the package built and holds the right files; installing it needs root"
	exit 77
fi
# Two build trees may run this test at once: one install at a time.
exec 9> /run/lock/cairn-packaging-test.lock
flock -w 900 9 || fail "another packaging test holds /run/lock/cairn-packaging-test.lock"
MARK=/var/lib/cairn-packaging-test.installed
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' cairn 2> /dev/null)" != "" ] &&
	[ "$(dpkg-query -W -f='${db:Status-Abbrev}' cairn 2> /dev/null)" != "un " ]; }
if installed; then
	if [ -e "$MARK" ]; then
		# Left behind by a run of this test that was killed before its trap ran.
		dpkg --purge cairn > "$W/purge0.log" 2>&1 || fail "cannot purge the earlier test's cairn: $(cat "$W/purge0.log")"
	else
		echo "SKIP: a cairn package this test did not install is present ($(dpkg-query -W cairn)); not touching it"
		exit 77
	fi
fi
for f in /usr/bin/cairn /usr/bin/cairnfs; do
	if [ -e "$f" ]; then
		echo "SKIP: $f exists outside any package; installing would overwrite it"
		exit 77
	fi
done
echo "$deb" > "$MARK"
cleanup_hooks+=('dpkg --purge cairn > /dev/null 2>&1; rm -f "$MARK"')
# dpkg -i configures only when every dependency is installed: this checks them.
dpkg -i "$deb" > "$W/install.log" 2>&1 || fail "dpkg -i failed: $(cat "$W/install.log")"
[ "$(dpkg-query -W -f='${Status}' cairn)" = "install ok installed" ] ||
	fail "cairn not configured: $(dpkg-query -W -f='${Status}' cairn)"
version=$(dpkg-query -W -f='${Version}' cairn)
[ "$version" = "$(dpkg-deb -f "$deb" Version)" ] || fail "installed $version is not the built package"
# What dpkg installed is what the package holds.
dpkg -L cairn | while read -r f; do [ -e "$f" ] || echo "$f"; done > "$W/missing"
[ ! -s "$W/missing" ] || fail "dpkg -L lists missing files: $(cat "$W/missing")"

# From PATH and the system's man configuration, as an administrator would.
hash -r
[ "$(command -v cairn)" = /usr/bin/cairn ] || fail "cairn on PATH is $(command -v cairn)"
cairn --version | grep -q "^cairn ${version%%-*} " || fail "cairn --version: $(cairn --version)"
cairnfs --version | grep -q "^cairnfs ${version%%-*}" || fail "cairnfs --version: $(cairnfs --version 2>&1)"
for page in cairn:man1/cairn.1.gz cairnfs:man1/cairnfs.1.gz cairn.conf:man5/cairn.conf.5.gz; do
	p=$(env -u MANPATH man -w "${page%%:*}") || fail "man -w ${page%%:*} found nothing"
	[ "$p" = "/usr/share/man/${page#*:}" ] || fail "man -w ${page%%:*} found $p"
done
[ "$(env -u MANPATH man -w 5 cairn.conf)" = /usr/share/man/man5/cairn.conf.5.gz ] || fail "man -w 5 cairn.conf"
env -u MANPATH MANWIDTH=80 man cairn 2> /dev/null | grep -q 'cairn run' || fail "man cairn does not show the page"
# Completion as bash-completion loads it on demand, from the installed file.
for f in /usr/share/bash-completion/completions/cairn /usr/share/bash-completion/completions/cairnfs; do
	[ -f "$f" ] || fail "$f not installed"
done
out=$(bash -c '. /usr/share/bash-completion/bash_completion
	__load_completion cairn || exit 1
	COMP_WORDS=(cairn ru); COMP_CWORD=1; COMP_LINE="cairn ru"; COMP_POINT=8
	_cairn; echo "${COMPREPLY[*]}"
	COMP_WORDS=(cairn notify --format s); COMP_CWORD=3; COMP_LINE="cairn notify --format s"
	COMP_POINT=23; _cairn; echo "${COMPREPLY[*]}"
	COMP_WORDS=(cairn mo); COMP_CWORD=1; COMP_LINE="cairn mo"; COMP_POINT=8
	_cairn; echo "${COMPREPLY[*]}"') || fail "bash-completion cannot load cairn's completion"
[ "$out" = "run
slack
mount" ] || fail "installed bash completion gave: $out"
# The units where systemd looks for them, against the installed binaries.
for u in "${UNITS[@]}"; do
	[ -f "/lib/systemd/system/$u" ] || fail "/lib/systemd/system/$u not installed"
done
systemd-analyze verify --man=no /lib/systemd/system/cairn-backup@job.service \
	/lib/systemd/system/cairn-backup@job.timer /lib/systemd/system/cairn-notify@job.service \
	/lib/systemd/system/cairn-mount@job.service > "$W/verify-installed.out" 2>&1 ||
	fail "systemd-analyze verify of the installed units: $(cat "$W/verify-installed.out")"
[ ! -s "$W/verify-installed.out" ] || fail "systemd-analyze verify complained: $(cat "$W/verify-installed.out")"
# Nothing enabled: the administrator enables a job's timer.
[ ! -e /etc/systemd/system/timers.target.wants/cairn-backup@.timer ] || fail "the package enabled a unit"
# The installed cairn works: a repository, a backup, a snapshot list.
printf 'package test password\n' > "$W/pkg-pw"
mkdir -p "$W/pkg-src" && echo hello > "$W/pkg-src/f"
cairn -r "$W/pkg-repo" --password-file "$W/pkg-pw" init --kdf-log2n 10 > /dev/null || fail "installed cairn init"
cairn -r "$W/pkg-repo" --password-file "$W/pkg-pw" backup "$W/pkg-src" > /dev/null || fail "installed cairn backup"
cairn -r "$W/pkg-repo" --password-file "$W/pkg-pw" snapshots --json | grep -q "$W/pkg-src" ||
	fail "installed cairn snapshots"

# Purge removes every file again (and the test's trap has nothing left to do).
dpkg --purge cairn > "$W/purge.log" 2>&1 || fail "dpkg --purge failed: $(cat "$W/purge.log")"
rm -f "$MARK"
! installed || fail "cairn still installed after purge: $(dpkg-query -W cairn)"
for f in /usr/bin/cairn /usr/bin/cairnfs /lib/systemd/system/cairn-backup@.service \
	/usr/share/man/man1/cairn.1.gz /usr/share/bash-completion/completions/cairn /etc/cairn; do
	[ ! -e "$f" ] || fail "$f left after purge"
done
echo "packaging: all passed"
