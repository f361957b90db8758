#!/bin/sh
# "make install prefix=DIR" after configuring another prefix is refused
# before anything is copied, with a message that names ./configure --prefix.
set -u
b=${DG_BUILDDIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$(make -C "$b" -j2 install prefix="$tmp/p" 2>&1) && { echo "FAIL: install was not refused"; exit 1; }
echo "$out" | grep -q -- './configure --prefix' || { echo "FAIL: message: $out"; exit 1; }
[ ! -e "$tmp/p" ] || { echo "FAIL: files were copied: $(find "$tmp/p" | head)"; exit 1; }
echo "ok: refused"
