#!/usr/bin/env bash
# bench/stall.sh: how long the event loop keeps a datagram waiting while many
# timeouts, idle expiries and evictions run (issue 9, item 6). For each
# scenario a fresh dgramd gets the traffic of bench/stall.py while a probe
# listener is pinged after every 256 datagrams and back to back afterwards;
# the longest probe round trip is the longest stall, near enough.
#
#   timeouts  64,000 requests held by echo (delay_ms) pass handler_timeout_ms
#   sweep     50,000 busy sessions (a request pending each), then 10,000 idle
#             ones that expire together
#   evict     the table (max_peers 60,000) full of those; 2,000 new peers
#             should each evict an idle session (counted: evicted, dropped)
#
#   bench/stall.sh                     this tree's build/
#   BASE=/other/build bench/stall.sh   ... and another build (say, of the old
#                                      main) first, for before/after figures
# Knobs: SCENARIOS ("timeouts sweep evict") OUT (build/bench-out)
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
OUT=${OUT:-$top/build/bench-out}
SCENARIOS=${SCENARIOS:-"timeouts sweep evict"}
mkdir -p "$OUT"
./dev.sh build || exit 1

say() { printf 'stall: %s\n' "$*" >&2; }

config() { # SCENARIO: the listeners besides "probe"
	local held='"handler": {"plugin": "echo", "config": {"delay_ms": 3600000}}'
	case $1 in
	timeouts) echo "{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"rcvbuf\": 4194304,
		\"ordering\": \"none\", \"handler_timeout_ms\": 1000, $held}" ;;
	sweep) echo "{\"name\": \"s\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"rcvbuf\": 4194304,
		\"max_peers\": 65536, \"session_idle_ms\": 1000, \"handler_timeout_ms\": 0, $held}" ;;
	evict) echo "{\"name\": \"s\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"rcvbuf\": 4194304,
		\"max_peers\": 60000, \"session_idle_ms\": 600000, \"handler_timeout_ms\": 0, $held}" ;;
	esac
}

# run BUILD-DIR LABEL SCENARIO: one line of results
run() {
	local build=$1 label=$2 scen=$3 pid line
	cat > "$OUT/stall.json" <<EOC
{"max_pending": 131072, "shutdown_timeout_ms": 0, "log": {"level": "info"},
 "listeners": [{"name": "probe", "bind": "127.0.0.1:0", "codec": "raw", "handler": "echo"},
               $(config "$scen")]}
EOC
	rm -f "$OUT/stall.ready"
	"$build/dgramd" -c "$OUT/stall.json" -P "$build/plugins/.libs" -r "$OUT/stall.ready" \
		2>"$OUT/stall.log" &
	pid=$!
	for _ in $(seq 200); do [ -f "$OUT/stall.ready" ] && break; sleep 0.05; done
	if [ ! -f "$OUT/stall.ready" ]; then
		say "$label: dgramd did not start: $(tail -3 "$OUT/stall.log")"
		kill "$pid" 2>/dev/null
		return 1
	fi
	line=$(python3 bench/stall.py "$OUT/stall.ready" "$scen")
	kill -TERM "$pid"
	# The old code may still be inside a stall: give it time, then stop it.
	for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local stats
	stats=$(grep -o 'stats listener=[ts] .*' "$OUT/stall.log" | tail -1)
	get() { echo "$stats" | grep -o " $1=[0-9]*" | cut -d= -f2; }
	echo "$label $line timeouts=$(get timeouts) sessions_idle=$(get sessions_idle)" \
	     "sessions_evicted=$(get sessions_evicted) drop_peers_full=$(get drop_peers_full)"
}

say "load $(cut -d' ' -f1-3 /proc/loadavg)"
for scen in $SCENARIOS; do
	[ -n "${BASE:-}" ] && run "$BASE" before "$scen"
	run "$top/build" after "$scen"
done
