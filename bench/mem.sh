#!/usr/bin/env bash
# bench/mem.sh [sessions|flood|all]: dgramd's resident memory.
#   sessions: at idle and with N live peer sessions (default 100000), and
#     the cost per session. Peers are distinct loopback source addresses
#     (127.a.b.c), each sending one datagram.
#   flood: under a flood of FLOOD (default 200) large JSON datagrams
#     ([{},{},...], 60 kB, 5.4 MB decoded each) from as many peers, all kept
#     pending (echo delay_ms): resident memory must stay within
#     memory_budget (BUDGET bytes, default 64 MiB; BUDGET=none leaves the key
#     out, to run a dgramd without it) plus a fixed overhead.
# DGRAMD=path runs another build of dgramd (plugins from its own tree).
set -u
cd "$(dirname "$0")/.."
MODE=${1:-all}
N=${N:-100000}
PORT=${PORT:-9110}
OUT=${OUT:-build/bench-out}
FLOOD=${FLOOD:-200}
BUDGET=${BUDGET:-67108864}
DGRAMD=${DGRAMD:-build/dgramd}
PLUGINS=$(dirname "$DGRAMD")/plugins/.libs
mkdir -p "$OUT"
[ "$DGRAMD" != build/dgramd ] || ./dev.sh build || exit 1
rss() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# The worker under master $1: it holds sessions and requests, not the master.
worker() {
	local c
	for c in $(cat "/proc/$1/task/$1/children"); do
		[ "$(cat "/proc/$c/comm" 2>/dev/null)" = dgramd-worker ] && { echo "$c"; return; }
	done
	echo "bench/mem.sh: no worker under pid $1" >&2; exit 1
}

flood() {
	local budget_key="" master pid idle peak after
	[ "$BUDGET" = none ] || budget_key="\"memory_budget\": $BUDGET,"
	cat > "$OUT/flood.json" <<EOC
{"log": {"level": "info"}, $budget_key "shutdown_timeout_ms": 0,
 "listeners": [{"name": "flood", "bind": "127.0.0.1:$PORT", "rcvbuf": 4194304,
                "handler_timeout_ms": 600000,
                "handler": {"plugin": "echo", "config": {"delay_ms": 600000}}}]}
EOC
	rm -f "$OUT/flood.ready"
	"$DGRAMD" -c "$OUT/flood.json" -P "$PLUGINS" -r "$OUT/flood.ready" 2>"$OUT/flood.log" &
	master=$!
	trap 'kill $master 2>/dev/null; wait $master 2>/dev/null' EXIT
	for _ in $(seq 100); do [ -f "$OUT/flood.ready" ] && break; sleep 0.05; done
	pid=$(worker $master)
	idle=$(rss $pid VmRSS)
	python3 - "$FLOOD" "$PORT" <<'EOP'
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
body = b'[' + b'{},' * 19999 + b'{}]'
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.3.%d.%d' % (i // 250, i % 250 + 1), 0))
    s.sendto(body, ('127.0.0.1', port))
    s.close()
    time.sleep(0.02)  # each decodes in ~10 ms: let every datagram arrive
EOP
	# The sender can be ahead of the daemon: wait until resident memory
	# stops growing (at most 30 s).
	after=$(rss $pid VmRSS)
	for _ in $(seq 60); do
		sleep 0.5
		[ "$(rss $pid VmRSS)" = "$after" ] && break
		after=$(rss $pid VmRSS)
	done
	peak=$(rss $pid VmHWM)
	[ "$peak" -ge "$after" ] || peak=$after # VmHWM is updated lazily
	kill -TERM $master
	wait $master
	trap - EXIT
	stat() { grep "stats listener=flood " "$OUT/flood.log" | grep -o " $1=[0-9]*" | cut -d= -f2; }
	echo "flood: $FLOOD datagrams of 60001 bytes (5.4 MB decoded each), memory_budget ${BUDGET}"
	echo "  rx $(stat rx), handled (pending) $(stat handled), drop_memory $(stat drop_memory)"
	echo "  RSS before ${idle} KiB, after ${after} KiB, peak ${peak} KiB"
	if [ "$BUDGET" != none ]; then
		echo "  peak - before - budget = $(( peak - idle - BUDGET / 1024 )) KiB (the fixed overhead)"
	fi
}

if [ "$MODE" = flood ] || [ "$MODE" = all ]; then
	flood
fi
[ "$MODE" = flood ] && exit 0
cat > "$OUT/mem.json" <<EOC
{"log": {"level": "info"},
 "listeners": [{"name": "mem", "bind": "127.0.0.1:$PORT", "codec": "raw", "rcvbuf": 4194304,
                "max_peers": $((N + 1000)), "session_idle_ms": 600000,
                "handler": {"plugin": "echo", "config": {"reply": false}}}]}
EOC
rm -f "$OUT/mem.ready"
"$DGRAMD" -c "$OUT/mem.json" -P "$PLUGINS" -r "$OUT/mem.ready" 2>"$OUT/mem.log" &
master=$!
trap 'kill $master 2>/dev/null; wait $master 2>/dev/null' EXIT
for _ in $(seq 100); do [ -f "$OUT/mem.ready" ] && break; sleep 0.05; done
sleep 0.5
pid=$(worker $master)
idle=$(rss $pid VmRSS)
python3 - "$N" "$PORT" <<'EOP'
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.%d.%d.%d' % (1 + i // 62500, (i // 250) % 250, i % 250 + 1), 40000))
    s.sendto(b'x', ('127.0.0.1', port))
    s.close()
    if i % 2000 == 1999:
        time.sleep(0.01)  # let the server keep up: every datagram must arrive
EOP
sleep 1
full=$(rss $pid VmRSS)
kill -TERM $master
wait $master
trap - EXIT
sessions=$(sed -n 's/.*stats listener=mem .* sessions=\([0-9]*\) .*/\1/p' "$OUT/mem.log")
echo "RSS idle: ${idle} KiB"
echo "RSS with ${sessions:-?} sessions: ${full} KiB"
if [ -n "$sessions" ] && [ "$sessions" -gt 0 ]; then
	echo "per session: $(( (full - idle) * 1024 / sessions )) bytes (table, LRU and hash buckets included)"
fi
