#!/bin/sh
# server -> dispatch -> tx, one way (HACKING.md, core/server.h): the compiled
# objects call nothing above them. tx: no dg_server_*, dg_dispatch_*,
# dg_host_*, dg_ptimer_* or dg_pmetric_* symbol and no event_active (the
# server's post event, which dg_server_post_work wraps inline); dispatch:
# none of those but dg_dispatch_*; ptimer (plugin timers) and pmetrics
# (plugin metrics), below host.c: no server, dispatch or tx call and no
# libevent; the small stand-alone files (addr, ratelimit, sock, io, session,
# reqtab, timer, throttle, membudget, directive): nothing of the worker, the
# master, the config or the loader.
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
check tx '^(dg_server_|dg_dispatch_|dg_host_|dg_ptimer_|dg_pmetric_|event_active$)'
check dispatch '^(dg_server_|dg_host_|dg_ptimer_|dg_pmetric_|event_active$)'
check ptimer '^(dg_server_|dg_dispatch_|dg_tx_|dg_host_|dg_pmetric_|event_)'
check pmetrics '^(dg_server_|dg_dispatch_|dg_tx_|dg_ptimer_|event_)'
above='^(dg_server_|dg_dispatch_|dg_tx_|dg_host_|dg_ptimer_|dg_pmetric_|dg_sock_|dg_master_|dg_config_|dg_loader_|dg_ho_|dg_metrics_|dg_options_|event_active$)'
for leaf in addr ratelimit sock io session reqtab timer throttle membudget directive; do
	check "$leaf" "$above"
done
exit $rc
