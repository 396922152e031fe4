#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Rules the build itself enforces: every C file of the project is compiled with
# store/util/banned.h in force (a banned call is a compile error wherever it is
# written), and a unit or fuzz test listed in meson whose source is missing
# stops the configure step instead of leaving the suite without a sound. Also:
# object paths are built in one place only, restorer.h is included only where
# it is used, and every test source in tests/ is a test of the suite.
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "$(dirname "$CAIRN")/.." && pwd)
[ -f "$BUILD/compile_commands.json" ] || fail "no compile_commands.json in $BUILD"
command -v meson > /dev/null || fail "meson missing"

# ---- banned.h in every compile command ------------------------------------------
# Each distinct set of flags (one per target) compiles a probe twice: calling
# strtol it builds, calling a banned function it must fail naming the ban.
cat > "$W/probe-ok.c" << 'EOF'
#include <stdlib.h>
int probe(const char *s);
int probe(const char *s)
{
	return (int)strtol(s, NULL, 10);
}
EOF
python3 - "$BUILD/compile_commands.json" "$W" << 'PY' || fail "banned functions are not banned everywhere"
import json, os, shlex, subprocess, sys
cmds, w = json.load(open(sys.argv[1])), sys.argv[2]
calls = {"atoi": "return atoi(s);", "strcpy": "char b[8]; return strcpy(b, s) != 0;",
         "sprintf": "char b[64]; return sprintf(b, \"%s\", s);",
         "localtime": "time_t t = 0; return localtime(&t) != 0;"}
seen, tried, bad = set(), 0, []
for e in cmds:
    src = os.path.relpath(os.path.join(e["directory"], e["file"]), os.path.dirname(w))
    args = shlex.split(e["command"])
    # Drop the source, the object and dependency outputs: what remains are the flags.
    out, skip = [], 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
        elif a in ("-o", "-MQ", "-MF", "-MT"):
            skip = 1
        elif a in ("-c", "-MD") or a == e["file"]:
            pass
        else:
            out.append(a)
    key = tuple(out)
    if key in seen:
        continue
    seen.add(key)
    def cc(path):
        return subprocess.run(out + ["-c", path, "-o", os.devnull], cwd=e["directory"],
                              capture_output=True, text=True)
    r = cc(os.path.join(w, "probe-ok.c"))
    if r.returncode:
        bad.append("%s: the probe without a banned call fails: %s" % (e["file"], r.stderr[:300]))
        continue
    for name, body in calls.items():
        p = os.path.join(w, "probe-%s.c" % name)
        with open(p, "w") as f:
            f.write("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
                    "#include <time.h>\nint probe(const char *s);\n"
                    "int probe(const char *s)\n{\n\t%s\n}\n" % body)
        r = cc(p)
        tried += 1
        if r.returncode == 0 or "sorry_%s_is_a_banned_function" % name not in r.stderr:
            bad.append("%s: %s() is allowed with its flags" % (e["file"], name))
print("%d flag sets, %d banned calls tried" % (len(seen), tried))
if len(seen) < 10:
    bad.append("only %d flag sets in compile_commands.json" % len(seen))
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# ---- one place knows the repository's layout (FORMAT.md §2) --------------------------
# Object paths come from cairn_obj_rel() in store/storage.c: no other file of the
# store or the command builds one from a directory name (fs/ names the mount's).
layout=$(cd "$SRCDIR" && grep -nE '"(keys|packs|indexes|snapshots|locks|prune)/(%|xx/|")' \
	store/*.c store/*/*.c tools/*.c | grep -v '^store/storage\.c:' || true)
[ -z "$layout" ] || fail "object paths built outside cairn_obj_rel(): $layout"

# restorer.h is restore's: a command that includes it uses it (issue 14 point 19).
for f in "$SRCDIR"/tools/*.c; do
	grep -q '^#include "restorer.h"' "$f" || continue
	grep -q 'restorer_' "$f" || fail "tools/$(basename "$f") includes restorer.h and uses nothing of it"
done

# ---- every test source is a test of the suite -------------------------------------
# unlisted SRC: the unit, fuzz and integration test sources of the tree SRC that
# are no test of this build (a new or renamed file nobody registered).
meson introspect --tests "$BUILD" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    for s in t["suite"]:
        print(s.split(":")[-1], t["name"])' > "$W/tests"
grep -qx 'unit repo' "$W/tests" && grep -qx 'integration build-rules' "$W/tests" ||
	fail "meson introspect --tests: $(head -5 "$W/tests")"
unlisted() {
	local f n
	for f in "$1"/tests/unit/test-*.c; do
		n=$(basename "$f" .c)
		grep -qx "unit ${n#test-}" "$W/tests" || echo "tests/unit/$n.c"
	done
	# The fuzz suite exists unless the targets are built for libFuzzer.
	if grep -q '^fuzz ' "$W/tests"; then
		for f in "$1"/tests/fuzz/fuzz-*.c; do
			n=$(basename "$f" .c)
			grep -qx "fuzz $n" "$W/tests" || echo "tests/fuzz/$n.c"
		done
	fi
	for f in "$1"/tests/integration/*.sh; do
		n=$(basename "$f" .sh)
		[ "$n" = lib ] || grep -qx "integration $n" "$W/tests" || echo "tests/integration/$n.sh"
	done
}
[ -z "$(unlisted "$SRCDIR")" ] || fail "test sources that are no test: $(unlisted "$SRCDIR" | tr '\n' ' ')"

# ---- a missing test source is a configure error -----------------------------------
# A copy of the source tree without its build directories, minus one unit test
# (and then one fuzz target): meson setup must stop and name the file.
mkdir -p "$W/src"
for f in "$SRCDIR"/* "$SRCDIR"/.[!.]*; do
	[ -e "$f" ] || continue
	case $(basename "$f") in .git) continue ;; esac
	[ -d "$f/meson-private" ] && continue
	cp -a "$f" "$W/src/"
done
# setup_fails FILE: with FILE removed, meson setup fails and names it
setup_fails() {
	local rc=0
	mv "$W/src/$1" "$W/moved"
	meson setup "$W/b-$(basename "$1")" "$W/src" > "$W/setup.out" 2>&1 || rc=$?
	mv "$W/moved" "$W/src/$1"
	[ "$rc" != 0 ] || fail "meson setup succeeded without $1"
	grep -q "$1 is missing" "$W/setup.out" || fail "meson setup did not name $1: $(tail -5 "$W/setup.out")"
}
setup_fails tests/unit/test-tree.c
setup_fails tests/fuzz/fuzz-tree.c
# ... and an unregistered one is found by unlisted() above.
for f in tests/unit/test-new.c tests/fuzz/fuzz-new.c tests/integration/new.sh; do
	: > "$W/src/$f"
	grep -qx "$f" <(unlisted "$W/src") || fail "an unregistered $f is not found"
	rm "$W/src/$f"
done
echo "ok"
