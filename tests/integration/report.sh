#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn report --html: the run history cairn run keeps, and the page itself: one
# self-contained file (no script, nothing loaded from anywhere, names escaped)
# with the 3-2-1-1-0 state, snapshots per host and tag, size and deduplication,
# the jobs' runs and the last check. A real browser (Debian's chromium,
# headless) renders it to a PNG without errors, and the DOM it dumps has every
# part. Exit 77 only when chromium is missing or cannot start here at all.
. "$(dirname "$0")/lib.sh"

export CAIRN_CONFIG_DIR="$W/conf" CAIRN_STATE_DIR="$W/state"
O="$W/o"
S="$W/src"
mkdir -p "$CAIRN_CONFIG_DIR" "$O" "$S"
init_repo
py() { python3 -c "$@"; }
run_job() { env -u CAIRN_REPO -u CAIRN_PASSWORD_FILE "$CAIRN" run "$@"; }

# ---- a history: two hosts, tags, days of snapshots, jobs that pass and fail ---
head -c 400000 /dev/urandom > "$S/data"
"$CAIRN" backup --tag daily "$S" > /dev/null
# Older snapshots, as days of backups would have left them (a hostile host name
# among them: the page must show it as text).
day=86400
"$CRAFT" relabel-at $((9 * day)) web1 daily
"$CRAFT" relabel-at $((6 * day)) web1 daily weekly
"$CRAFT" relabel-at $((3 * day)) '<script>alert(1)</script>' daily
"$CAIRN" backup --host db1 --tag weekly "$S" > /dev/null
cat > "$CAIRN_CONFIG_DIR/nightly.conf" <<EOF
repository = $CAIRN_REPO
password-file = $CAIRN_PASSWORD_FILE
paths = $S
check-read-data-subset = 50%
EOF
cat > "$CAIRN_CONFIG_DIR/broken.conf" <<EOF
repository = $CAIRN_REPO
password-file = $CAIRN_PASSWORD_FILE
paths = $W/not-there
EOF
cat > "$CAIRN_CONFIG_DIR/elsewhere.conf" <<EOF
repository = $W/other-repo
paths = $S
EOF
for i in 1 2 3; do
	echo "$i" >> "$S/data"
	run_job nightly > /dev/null 2>&1 || fail "nightly run $i failed"
done
rc=0
run_job broken > /dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "the broken job exited $rc"
rc=0
run_job elsewhere > /dev/null 2>&1 || rc=$?

# The run history: one line per run, the newest last.
[ "$(wc -l < "$CAIRN_STATE_DIR/nightly.runs")" = 3 ] || fail "history: $(cat "$CAIRN_STATE_DIR/nightly.runs")"
grep -Eq '^time=[0-9]+ exit=0 seconds=[0-9.]+ snapshot=[0-9a-f]{8} backup=ok,0,[0-9.]+ check=ok,0,[0-9.]+$' \
	"$CAIRN_STATE_DIR/nightly.runs" || fail "history line: $(cat "$CAIRN_STATE_DIR/nightly.runs")"
grep -Eq '^time=[0-9]+ exit=1 seconds=[0-9.]+ backup=failed,1,[0-9.]+$' "$CAIRN_STATE_DIR/broken.runs" ||
	fail "history of a failed run: $(cat "$CAIRN_STATE_DIR/broken.runs")"
# It keeps the last 500 runs.
last=$(tail -1 "$CAIRN_STATE_DIR/broken.runs")
for i in $(seq 600); do echo "$last"; done > "$CAIRN_STATE_DIR/broken.runs"
run_job broken > /dev/null 2>&1 || true
[ "$(wc -l < "$CAIRN_STATE_DIR/broken.runs")" = 500 ] || fail "history not cut to 500 runs"

# ---- the page ----------------------------------------------------------------
# A dot per snapshot in its host's row and in each of its tags' rows.
dots=$("$CAIRN" snapshots --json | py 'import json,sys; print(sum(1 + len(s["tags"]) for s in json.load(sys.stdin)))')
P="$O/report.html"
"$CAIRN" report --html "$P" --offline > "$O/report.out" || fail "report: $(cat "$O/report.out")"
grep -q "^report written to $P\$" "$O/report.out" || fail "report output: $(cat "$O/report.out")"
expect_fail 2 "give --html FILE" -- "$CAIRN" report
# check_page FILE: what both the file and the browser's DOM must hold.
check_page() {
	python3 - "$1" "$dots" <<'PY'
import html.parser, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
want_dots = int(sys.argv[2])
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.stack, self.ids, self.text = [], [], {}, {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a, tuple(t for t, _ in self.stack)))
        if "id" in a:
            self.ids[a["id"]] = tag
        self.stack.append((tag, a))
    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass
    def handle_data(self, d):
        for t, a in self.stack:
            if "id" in a:
                self.text[a["id"]] = self.text.get(a["id"], "") + d
p = P()
p.feed(text)
# Nothing to run, nothing to load.
assert not [t for t, a, _ in p.tags if t in ("script", "iframe", "object", "embed", "link", "img")], "foreign elements"
for t, a, _ in p.tags:
    for k, v in a.items():
        assert not k.startswith("on"), (t, k)
        assert not (k in ("src", "href") and v), (t, k, v)
assert "url(" not in text and "@import" not in text, "a URL in the styles"
csp = [a for t, a, _ in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
assert csp and "default-src 'none'" in csp[0]["content"], "no Content-Security-Policy"
# The parts.
for ident in ("rules", "snapshots", "chart-snapshots", "size", "chart-size", "dedup",
              "chart-dedup", "jobs", "check", "chart-runs-nightly", "chart-runs-broken"):
    assert ident in p.ids, ("missing", ident)
for ident in ("chart-snapshots", "chart-size", "chart-dedup", "chart-runs-nightly"):
    assert p.ids[ident] == "svg", (ident, p.ids[ident])
assert "chart-runs-elsewhere" not in p.ids, "a job of another repository"
rules = [a["data-rule"] for t, a, _ in p.tags if t == "tr" and "data-rule" in a]
assert rules == ["copies", "media", "offsite", "immutable", "errors"], rules
rule_rows = {a["data-rule"]: a["class"] for t, a, _ in p.tags if t == "tr" and "data-rule" in a}
assert rule_rows["errors"] == "met" and rule_rows["offsite"] == "unmet", rule_rows
# One dot per snapshot and row: each snapshot has its host's row and one per tag.
dots = [a for t, a, _ in p.tags if t == "circle"]
rows = re.findall(r'class="row (host|tag)"', text)
assert len(rows) == 6, rows  # hosts: this one, web1, the hostile one, db1; tags daily, weekly
assert len(dots) == want_dots, (len(dots), want_dots)
# The hostile host name is text, not an element.
assert "host <script>alert(1)</script>" in p.text.get("chart-snapshots", ""), p.text.get("chart-snapshots")
assert [t for t, a, _ in p.tags if t == "polyline"], "no size line"
runs = [a for t, a, _ in p.tags if t == "rect" and "run" in a.get("class", "")]
assert len([a for a in runs if a["class"] == "run ok"]) == 3, runs
assert len([a for a in runs if a["class"] == "run failed"]) == 30, "broken: the last 30 runs"
assert "no damage" in p.text.get("check", ""), p.text.get("check")
assert "subset 50%" in p.text.get("check", ""), p.text.get("check")
PY
}
check_page "$P" || fail "the page: see above"

# ---- in a browser ---------------------------------------------------------------
command -v chromium > /dev/null || { echo "SKIP: chromium missing (scripts/install-deps.sh test)"; exit 77; }
chrome() { # OUT-PREFIX ARGS...: headless chromium, its stderr into OUT-PREFIX.err
	local out=$1 dir
	shift
	dir=$(mktemp -d "$W/chrome-XXXXXX")
	timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --user-data-dir="$dir" \
		--enable-logging=stderr --v=0 "$@" > "$out.out" 2> "$out.err"
}
# A page that cannot fail first: if that does not render, this machine cannot
# run chromium, which is no fault of the report.
printf '<!DOCTYPE html><title>t</title><p>probe</p>\n' > "$O/probe.html"
if ! chrome "$O/probe" --dump-dom "file://$O/probe.html" || ! grep -q probe "$O/probe.out"; then
	echo "SKIP: chromium cannot run here: $(tail -3 "$O/probe.err")"
	exit 77
fi
chrome "$O/shot" --screenshot="$O/report.png" --window-size=1200,2600 "file://$P" ||
	fail "chromium could not render the report: $(tail -5 "$O/shot.err")"
chrome "$O/dom" --dump-dom "file://$P" || fail "chromium --dump-dom: $(tail -5 "$O/dom.err")"
# Console messages (script errors, refused loads) reach the log as CONSOLE lines.
! grep -i 'CONSOLE\|Uncaught\|Refused to\|Failed to load' "$O/shot.err" "$O/dom.err" ||
	fail "the browser complained (see above)"
python3 - "$O/report.png" <<'PY' || fail "the screenshot"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert (w, h) == (1200, 2600), (w, h)
# Not blank: the image data must vary (a white page compresses to almost nothing).
idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]]
                for i in range(8, len(data) - 12) if data[i + 4:i + 8] == b"IDAT")
raw = zlib.decompress(idat)
assert len(set(raw[::97])) > 8, "a blank page"
PY
check_page "$O/dom.out" || fail "the DOM chromium made of the page: see above"
echo "report: all passed"
