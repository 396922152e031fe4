#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Corpus B of issue 17: DIRS directories of FILES files of SIZE bytes each.

Every file's content is distinct (SHAKE-128 of its number), so each one is a
blob of its own: 1,000 x 1,000 x 100 bytes makes a million blobs. The content
is the same from run to run, so repositories made from two copies agree.

usage: corpus-b.py DIR [DIRS [FILES [SIZE]]]   (defaults 1000 1000 100)
"""
import hashlib
import os
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = sys.argv[1]
    dirs, files, size = (int(a) for a in (sys.argv[2:] + ["1000", "1000", "100"][len(sys.argv) - 2:])[:3])
    os.makedirs(top, exist_ok=True)
    for d in range(dirs):
        path = os.path.join(top, "d%04d" % d)
        os.makedirs(path, exist_ok=True)
        for f in range(files):
            n = d * files + f
            data = hashlib.shake_128(n.to_bytes(8, "little")).digest(size)
            fd = os.open(os.path.join(path, "f%04d" % f), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.close(fd)


if __name__ == "__main__":
    main()
