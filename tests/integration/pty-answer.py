#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run a command on a new terminal and type an answer at each password prompt:
#   pty-answer.py ANSWER... -- COMMAND [ARG...]
# An answer is typed once a prompt ("...password: ") is shown and the echo
# is off: the prompt changes the terminal settings with TCSAFLUSH, which drops
# whatever was typed before. Prints the session's output; exits with the
# command's status.
import os
import pty
import select
import sys
import termios
import time

sep = sys.argv.index("--")
answers, cmd = sys.argv[1:sep], sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)

out = b""
prompts = 0
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    shown = out.count(b"assword")
    if answers and shown > prompts and not termios.tcgetattr(fd)[3] & termios.ECHO:
        os.write(fd, answers.pop(0).encode() + b"\n")
        prompts += 1
sys.stdout.write(out.decode(errors="replace"))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
