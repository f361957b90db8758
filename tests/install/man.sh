#!/bin/sh
# Every man page renders with groff -ww -man without a warning.
set -u
srcdir=${DG_SRCDIR:-.}
command -v groff >/dev/null 2>&1 || { echo "SKIP: groff is not installed"; exit 77; }
rc=0
for m in dgramd.8 dgramd.conf.5 dgramd-plugin.3 dgramc.1; do
	err=$(groff -ww -man -Tutf8 -z "$srcdir/doc/$m" 2>&1)
	if [ -n "$err" ]; then echo "FAIL $m: $err"; rc=1; else echo "ok $m"; fi
done
exit $rc
