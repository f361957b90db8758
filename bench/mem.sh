#!/usr/bin/env bash
# bench/mem.sh: dgramd's resident memory at idle and with N live peer
# sessions (default 100000), and the cost per session. Peers are distinct
# loopback source addresses (127.a.b.c), each sending one datagram.
set -u
cd "$(dirname "$0")/.."
N=${N:-100000}
PORT=${PORT:-9110}
OUT=${OUT:-build/bench-out}
mkdir -p "$OUT"
./dev.sh build || exit 1
cat > "$OUT/mem.json" <<EOC
{"log": {"level": "info"},
 "listeners": [{"name": "mem", "bind": "127.0.0.1:$PORT", "codec": "raw", "rcvbuf": 4194304,
                "max_peers": $((N + 1000)), "session_idle_ms": 600000,
                "handler": {"plugin": "echo", "config": {"reply": false}}}]}
EOC
rm -f "$OUT/mem.ready"
build/dgramd -c "$OUT/mem.json" -P build/plugins/.libs -r "$OUT/mem.ready" 2>"$OUT/mem.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do [ -f "$OUT/mem.ready" ] && break; sleep 0.05; done
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
sleep 0.5
idle=$(rss)
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
full=$(rss)
kill -TERM $pid
wait $pid
trap - EXIT
sessions=$(sed -n 's/.*stats listener=mem .* sessions=\([0-9]*\) .*/\1/p' "$OUT/mem.log")
echo "RSS idle: ${idle} KiB"
echo "RSS with ${sessions:-?} sessions: ${full} KiB"
if [ -n "$sessions" ] && [ "$sessions" -gt 0 ]; then
	echo "per session: $(( (full - idle) * 1024 / sessions )) bytes (table, LRU and hash buckets included)"
fi
