#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the Debian package of the working tree:
#   cp -r packaging/debian debian && dpkg-buildpackage -us -uc -b
# done on a copy (the tree stays clean; committed or not, what is there is built).
# Usage: packaging/build-deb.sh [OUTDIR]      (default: ./deb-out)
# Build dependencies: scripts/install-deps.sh test (debhelper, dpkg-dev, ...).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$src/deb-out}" && cd "${1:-$src/deb-out}" && pwd)
version=$(sed -n "s/^ *version: '\([^']*\)'.*/\1/p" "$src/meson.build" | head -1)
[ -n "$version" ] || { echo "build-deb: no version in meson.build" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/cairn-$version"
mkdir -p "$tree"
# Build directories, .git and earlier output stay behind.
tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./deb-out --exclude=./debian \
	-cf - . | tar -C "$tree" -xf -
cp -r "$src/packaging/debian" "$tree/debian"
(cd "$tree" && dpkg-buildpackage -us -uc -b)
cp "$work"/*.deb "$out"/
ls "$out"/*.deb
