#!/bin/sh
# server -> dispatch -> tx, one way (core/server.h): the compiled objects of
# tx.c and dispatch.c call nothing above them. tx: no dg_server_*,
# dg_dispatch_* or dg_host_* symbol and no event_active (the server's post
# event, which dg_server_post_work wraps inline); dispatch: no dg_server_*,
# dg_host_* or event_active.
set -u
b=${DG_BUILDDIR:-.}/core
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm is not installed"; exit 77; }
obj() {
	for o in "$b/.libs/$1.o" "$b/$1.o" "$b/.libs/libdgcore_la-$1.o" "$b/libdgcore_la-$1.o"; do
		[ -f "$o" ] && { echo "$o"; return 0; }
	done
	return 1
}
rc=0
check() { # check NAME PATTERN
	o=$(obj "$1") || { echo "FAIL $1: no object under $b"; rc=1; return; }
	up=$(nm -u "$o" | awk '{print $NF}' | grep -E "$2")
	if [ -n "$up" ]; then
		echo "FAIL $1.c calls up:" $up
		rc=1
	else
		echo "ok $1.c calls nothing above it"
	fi
}
check tx '^(dg_server_|dg_dispatch_|dg_host_|event_active$)'
check dispatch '^(dg_server_|dg_host_|event_active$)'
exit $rc
