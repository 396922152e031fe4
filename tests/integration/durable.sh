#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Objects are placed durably (STYLE §5, issue 14 point 4), seen through strace:
# a directory made for an object (packs/xx/) is synced into its parent before
# anything is renamed into it, and every object renamed into place is followed
# by a sync of its directory, also when threads place packs into one new
# directory at once. Traced: backups into a repository, and a copy into
# another one (a pulled pack takes the same way: the storage's put).
. "$(dirname "$0")/lib.sh"
command -v strace > /dev/null || fail "strace missing (scripts/install-deps.sh test)"

cat > "$W/check.py" << 'EOF'
import os, re, sys
trace, root = sys.argv[1], os.path.realpath(sys.argv[2])
skip = [os.path.join(root, d) for d in ("tmp", "index")]  # scratch, and LMDB's own syncs
def ours(p):
    return p.startswith(root + "/") and not any(p == s or p.startswith(s + "/") for s in skip)
# One line per call, completed where strace split it between threads.
calls, started = [], {}
for line in open(trace):
    m = re.match(r"(\d+)\s+(.*)", line.rstrip("\n"))
    if not m:
        continue
    pid, text = m.groups()
    if text.endswith("<unfinished ...>"):
        started[pid] = text[: -len("<unfinished ...>")].rstrip()
        continue
    r = re.match(r"<\.\.\. \w+ resumed>(.*)", text)
    calls.append(started.pop(pid, "") + r.group(1) if r else text)
at = r"(?:AT_FDCWD(?:<[^>]*>)?, )?"
created, unsynced, errors, renames = {}, {}, [], 0
for text in calls:
    if not re.search(r"\)\s+= 0$", text):
        continue
    m = re.match(r'mkdir(?:at)?\(' + at + r'"([^"]+)"', text)
    if m and ours(m.group(1)):
        created[m.group(1)] = False
    m = re.match(r"f(?:data)?sync\(\d+<([^>]+)>\)", text)
    if m:
        for c in created:
            if os.path.dirname(c) == m.group(1):
                created[c] = True
        unsynced.pop(m.group(1), None)
    m = re.match(r'rename(?:at2?)?\(' + at + r'"[^"]+", ' + at + r'"([^"]+)"', text)
    if m and ours(m.group(1)):
        renames += 1
        dst = m.group(1)
        d = os.path.dirname(dst)
        while d.startswith(root + "/"):
            if created.get(d) is False:
                errors.append("%s renamed into %s before it was synced into its parent" % (dst, d))
            d = os.path.dirname(d)
        unsynced[os.path.dirname(dst)] = dst
errors += ["%s: no sync of %s after it" % (dst, d) for d, dst in unsynced.items()]
errors += ["%s never synced into its parent" % c for c, s in created.items() if not s]
if renames < 3:
    errors.append("only %d renames into %s traced" % (renames, root))
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
# traced ROOT -- CMD...: run CMD under strace, then check what it placed under ROOT.
traced() {
	local root=$1
	shift 2
	# LeakSanitizer cannot run under ptrace (the ASan build); the other tests
	# run the same commands untraced.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		strace -f -y -qq -o "$W/trace" -e trace=mkdir,mkdirat,fsync,fdatasync,rename,renameat,renameat2 \
		"$@" > "$W/out" 2>&1 || fail "$*: $(cat "$W/out")"
	python3 "$W/check.py" "$W/trace" "$root" > "$W/bad" || fail "$* placed objects unsafely: $(cat "$W/bad")"
}

init_repo --pack-size 1M
mkdir -p "$W/src"
for i in $(seq 12); do head -c 300000 /dev/urandom > "$W/src/f$i"; done
traced "$CAIRN_REPO" -- "$CAIRN" backup --threads 4 "$W/src"
echo more > "$W/src/more"
traced "$CAIRN_REPO" -- "$CAIRN" backup "$W/src"
CAIRN_REPO="$W/dst" init_repo
traced "$W/dst" -- env CAIRN_REPO="$W/dst" "$CAIRN" copy --from-repo "$CAIRN_REPO" \
	--from-password-file "$CAIRN_PASSWORD_FILE"
CAIRN_REPO="$W/dst" "$CAIRN" check --read-data > /dev/null || fail "check of the copy"
# Threads that place packs of one packs/xx/ at once: the one whose mkdir finds
# the directory waits until its maker has synced it. Many one-blob packs, so
# that some share a directory; a few rounds, as the threads' timing varies.
mkdir -p "$W/many"
for i in $(seq 600); do echo "small file $i" > "$W/many/f$i"; done
for round in 1 2 3 4 5 6; do
	rm -rf "$W/r$round"
	CAIRN_REPO="$W/r$round" init_repo
	CAIRN_TEST_PACK_BLOBS=1 traced "$W/r$round" -- env CAIRN_REPO="$W/r$round" "$CAIRN" backup --threads 8 "$W/many"
	rm -rf "$W/r$round"
done
echo ok
