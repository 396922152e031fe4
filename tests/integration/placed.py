#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# placed.py TRACE ROOT: in a trace of strace -f -y (lib.sh placed_durably), the
# objects placed under ROOT were placed durably (STYLE §5): a directory created
# there is synced into its parent before anything is renamed into it, and each
# rename into ROOT is followed by a sync of the directory it lands in. Prints
# what is not so and exits 1.
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
