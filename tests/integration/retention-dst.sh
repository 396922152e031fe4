#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# forget's rules across daylight saving time changes (Europe/Berlin), with the
# clock set by faketime: --keep-within counts hours as real hours.
. "$(dirname "$0")/lib.sh"

command -v faketime > /dev/null || { echo "SKIP: no faketime"; exit 77; }
[ -e /usr/share/zoneinfo/Europe/Berlin ] || { echo "SKIP: no Europe/Berlin zone"; exit 77; }
# faketime works by LD_PRELOAD: a sanitizer build must not refuse it.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
mkdir -p "$W/p"
echo 1 > "$W/p/x"
# backup_at REPO UTC-TIME...: one snapshot at each time
backup_at() {
	local repo=$1
	shift
	for t in "$@"; do
		TZ=UTC faketime "$t" "$CAIRN" -r "$repo" backup -q "$W/p" || fail "backup at $t"
	done
}
# forget_at REPO BERLIN-TIME ARGS...: forget -n --json under that clock
forget_at() {
	local repo=$1 t=$2
	shift 2
	TZ=Europe/Berlin faketime "$t" "$CAIRN" -r "$repo" forget -n --json --group-by '' "$@"
}
kept() { grep -c '"action":"keep"' || true; }

# ---- --keep-within across the spring-forward gap ---------------------------
# 2026-03-29: 02:00 CET is 03:00 CEST (01:00 UTC). At 03:30 CEST, one hour back
# is 00:30 UTC; the wall time 02:30 does not exist that day.
"$CAIRN" -r "$W/spring" init --kdf-log2n 10 > /dev/null
backup_at "$W/spring" '2026-03-29 00:20:00' '2026-03-29 00:40:00' '2026-03-29 01:00:00' \
	'2026-03-29 01:20:00'
forget_at "$W/spring" '2026-03-29 03:30:00' --keep-within 1h > "$W/out"
[ "$(kept < "$W/out")" = 3 ] || fail "--keep-within 1h at 03:30 CEST: $(cat "$W/out")"
# From 12:10 CEST (10:10 UTC), 10 real hours back is 00:10 UTC: all four;
# 9 hours back is 01:10 UTC: one.
forget_at "$W/spring" '2026-03-29 12:10:00' --keep-within 10h > "$W/out"
[ "$(kept < "$W/out")" = 4 ] || fail "--keep-within 10h: $(cat "$W/out")"
forget_at "$W/spring" '2026-03-29 12:10:00' --keep-within 9h > "$W/out"
[ "$(kept < "$W/out")" = 1 ] || fail "--keep-within 9h: $(cat "$W/out")"
# A day back from 02:50 CEST the next day is 02:50 on the 29th, in the gap:
# from the jump (01:00 UTC) on.
forget_at "$W/spring" '2026-03-30 02:50:00' --keep-within 1d > "$W/out"
[ "$(kept < "$W/out")" = 2 ] || fail "--keep-within 1d into the gap: $(cat "$W/out")"
# The real run keeps the recent ones too.
TZ=Europe/Berlin faketime '2026-03-29 03:30:00' "$CAIRN" -r "$W/spring" forget --keep-within 1h \
	--group-by '' > "$W/out"
grep -q "removed 1 snapshot, kept 3" "$W/out" || fail "forget --keep-within 1h: $(cat "$W/out")"

# ---- --keep-hourly across the fall-back ------------------------------------
# 2027-10-31: 03:00 CEST is 02:00 CET again (01:00 UTC). Snapshots at 02:10 and
# 02:40 CEST, then 02:10 and 02:40 CET: two hours, the newest of each kept.
"$CAIRN" -r "$W/autumn" init --kdf-log2n 10 > /dev/null
backup_at "$W/autumn" '2027-10-31 00:10:00' '2027-10-31 00:40:00' '2027-10-31 01:10:00' \
	'2027-10-31 01:40:00'
forget_at "$W/autumn" '2027-10-31 03:00:00' --keep-hourly 24 > "$W/out"
[ "$(kept < "$W/out")" = 2 ] || fail "--keep-hourly over the fall-back: $(cat "$W/out")"
# (faketime's clock runs on from the time given: a slow start reads a second later.)
grep -q '"time":"2027-10-31T02:40:[0-9][0-9.]*+02:00",.*"action":"keep"' "$W/out" ||
	fail "--keep-hourly: the CEST hour's newest is not kept: $(cat "$W/out")"
