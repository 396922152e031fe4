#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# crash-run.py TRIGGER -- CMD...: run CMD and SIGKILL it at TRIGGER, then print
# "killed" or "exited RC". Used by the crash tests (lib.sh: crash_run).
# TRIGGER is one of
#   ms:N             N ms after the start;
#   events:DIR:K:N   N ms after the K-th file appeared in or vanished from DIR;
#   lines:FILE:K:N   N ms after FILE (a CAIRN_S3_TRACE) reached K lines;
#   count:DIR        never kill: print how many file events the run made and how
#                    many ms it took.
import os
import signal
import subprocess
import sys
import time


def files(d):
    out = set()
    for root, _, names in os.walk(d):
        out.update(os.path.join(root, n) for n in names)
    return out


def lines(f):
    try:
        with open(f, "rb") as fh:
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


trig, cmd = sys.argv[1].split(":"), sys.argv[3:]
kind = trig[0]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
events, seen = 0, files(trig[1]) if kind in ("events", "count") else set()
want = int(trig[2]) if kind in ("events", "lines") else 0
t0 = time.monotonic()
while p.poll() is None:
    if kind == "ms" and time.monotonic() - t0 >= int(trig[1]) / 1000:
        break
    if kind in ("events", "count"):
        now = files(trig[1])
        events += len(now ^ seen)
        seen = now
    if (kind == "events" and events >= want) or (kind == "lines" and lines(trig[1]) >= want):
        time.sleep(int(trig[3]) / 1000)
        break
    time.sleep(0.0005)
if kind == "count":
    p.wait()
    print(events, int((time.monotonic() - t0) * 1000))
elif p.poll() is None:
    p.send_signal(signal.SIGKILL)
    p.wait()
    print("killed")
else:
    print("exited", p.returncode)
