#!/bin/sh
# configure says nothing on stderr where a core/ directory sits beside it
# (an in-tree build, or a build tree configured before): autoconf's
# "rm -f core ..." cleanups must not print "cannot remove 'core'", and its
# exit cleanup must run through (no confdefs.h left behind).
set -u
srcdir=$(cd "${DG_SRCDIR:-.}" && pwd)
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/core"
(cd "$tmp" && "$srcdir/configure" -q --disable-tests --without-hiredis \
	>"$tmp/out" 2>"$tmp/err") || { cat "$tmp/err"; echo "FAIL: configure"; exit 1; }
rc=0
if [ -s "$tmp/err" ]; then
	echo "FAIL: configure wrote to stderr:"; sort "$tmp/err" | uniq -c; rc=1
fi
if [ -e "$tmp/confdefs.h" ]; then
	echo "FAIL: configure left confdefs.h behind"; rc=1
fi
[ $rc -ne 0 ] || echo "ok: configure beside a core/ directory: silent, clean"
exit $rc
