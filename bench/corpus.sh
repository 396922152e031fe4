# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the benchmarks: sets CORPUS to $1, or to a fresh copy of /usr/share
# in $WORK, as an absolute path, and says what it is.
CORPUS=${1:-}
if [ -z "$CORPUS" ]; then
	CORPUS="$WORK/corpus"
	cp -a /usr/share "$CORPUS"
fi
CORPUS=$(realpath "$CORPUS")
echo "corpus: $CORPUS ($(du -sh "$CORPUS" | cut -f1), $(find "$CORPUS" | wc -l) entries), $(nproc) cores"
