#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Packaging: the systemd units pass `systemd-analyze verify` (pointed at the built
# binaries), `meson install` installs the expected set, and the Debian package
# builds with dpkg-buildpackage, unpacks with dpkg -x, and its cairn --version,
# cairnfs --version, man -w and bash completion work from the unpacked tree.
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
for k in 'ProtectSystem=strict' 'ProtectHome=read-only' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
	'Nice=10' 'CPUSchedulingPolicy=batch' 'IOSchedulingClass=idle' 'ReadWritePaths=.*'; do
	has cairn-backup@.service "$k"
done
has cairn-notify@.service 'ExecStart=/usr/bin/cairn notify --job %i --if-unreported .*'
has cairn-mount@.service 'Type=simple'
has cairn-mount@.service 'ExecStart=/usr/bin/cairnfs -f .*'
has cairn-mount@.service 'ExecStop=/usr/bin/fusermount3 -u ${MOUNTPOINT}'
# A private mount namespace would hide the mount from everyone else.
! grep -Eq '^(ProtectSystem|ProtectHome|PrivateTmp|ReadWritePaths|PrivateMounts)=' \
	"$U/cairn-mount@.service" || fail "cairn-mount@.service gets a mount namespace"

# ---- meson install -----------------------------------------------------------
# The set of installed names, ignoring prefixes and compression.
names() { (cd "$1" && find . \( -type f -o -type l \) -printf '%f\n' | sed 's/\.gz$//' | sort); }
meson install -C "$BUILD" --no-rebuild --quiet --destdir "$W/mi" > "$W/mi.log" 2>&1 ||
	fail "meson install failed: $(tail -5 "$W/mi.log")"
names "$W/mi" | grep -v '\.a$' > "$W/mi.names"
cat > "$W/want.names" <<EOF
OPERATIONS.md
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
EOF
diff "$W/want.names" "$W/mi.names" >&2 || fail "meson install set differs from the expected one"

# ---- the Debian package ------------------------------------------------------
# The .deb is built from the sources; building it again in the sanitizer tree
# would only repeat the same work.
if ldd "$CAIRN" 2> /dev/null | grep -q libasan; then
	echo "packaging: units and meson install checked; .deb skipped in the ASan build"
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
# The same set as meson install, plus Debian's changelog and copyright.
names "$R" | grep -vx 'changelog.Debian\|copyright' > "$W/deb.names"
diff "$W/mi.names" "$W/deb.names" >&2 || fail "the package and meson install differ"

# The unpacked binaries run, their units verify, and man finds the pages.
"$R/usr/bin/cairn" --version | grep -q '^cairn [0-9]' || fail "cairn --version from the package"
"$R/usr/bin/cairnfs" --version | grep -q '^cairnfs [0-9]' || fail "cairnfs --version from the package"
verify_units "$R/lib/systemd/system" "$R/usr/bin"
for page in cairn cairnfs 'cairn.conf'; do
	p=$(MANPATH="$R/usr/share/man" man -w "$page") || fail "man -w $page found nothing"
	case $p in "$R"/*) ;; *) fail "man -w $page found $p, not the package's page" ;; esac
done
MANPATH="$R/usr/share/man" man -w 5 cairn.conf | grep -q 'man5/cairn.conf.5.gz$' || fail "man -w 5"
# The pages render without groff warnings.
for p in "$R"/usr/share/man/man*/*.gz; do
	w=$(zcat "$p" | LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l - 2>&1 > /dev/null) || true
	[ -z "$w" ] || fail "man page ${p##*/}: $w"
done
# Completion: the command names and a command's options.
if [ -f /usr/share/bash-completion/bash_completion ]; then
	out=$(bash -c '. /usr/share/bash-completion/bash_completion
		. "$1"
		COMP_WORDS=(cairn ru); COMP_CWORD=1; COMP_LINE="cairn ru"; COMP_POINT=8
		_cairn; echo "${COMPREPLY[*]}"
		COMP_WORDS=(cairn status --j); COMP_CWORD=2; COMP_LINE="cairn status --j"; COMP_POINT=16
		_cairn; echo "${COMPREPLY[*]}"' _ "$R/usr/share/bash-completion/completions/cairn")
	[ "$out" = "run
--json --job" ] || fail "bash completion gave: $out"
fi
echo "packaging: all passed"
