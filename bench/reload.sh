#!/usr/bin/env bash
# bench/reload.sh: datagrams lost while dgramd reloads. udpload (from
# UDPLOAD_DIR, default /work/shared/bench; built there with make) runs in
# closed loop, WINDOW (64) requests in flight, against JSON echo with WORKERS
# (2) workers, while the master gets SIGHUP RELOADS (10) times, each once
# the previous reload has logged "reload: generation N serving". Prints
# udpload's JSON line and "sent=.. answered=.. lost=..".
# DGRAMD=path runs another build of dgramd (plugins from its own tree).
set -u
cd "$(dirname "$0")/.."
UDPLOAD_DIR=${UDPLOAD_DIR:-/work/shared/bench}
WINDOW=${WINDOW:-64}
WORKERS=${WORKERS:-2}
RELOADS=${RELOADS:-10}
SECONDS_=${DURATION:-8}
OUT=${OUT:-build/bench-out}
DGRAMD=${DGRAMD:-build/dgramd}
PLUGINS=$(dirname "$DGRAMD")/plugins/.libs
mkdir -p "$OUT"
[ "$DGRAMD" != build/dgramd ] || ./dev.sh build >/dev/null || exit 1
[ -x "$UDPLOAD_DIR/udpload" ] || make -C "$UDPLOAD_DIR" udpload >/dev/null || exit 1

cat > "$OUT/reload.json" <<EOC
{"workers": $WORKERS, "listeners": [{"name": "echo", "bind": "127.0.0.1:0", "codec": "json",
  "handler": "echo"}]}
EOC
rm -f "$OUT/reload.ready"
"$DGRAMD" -c "$OUT/reload.json" -P "$PLUGINS" -r "$OUT/reload.ready" 2>"$OUT/reload.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 200); do [ -s "$OUT/reload.ready" ] && break; sleep 0.05; done
addr=$(awk '$1 == "echo" { print $2; exit }' "$OUT/reload.ready")
[ -n "$addr" ] || { echo "dgramd did not start; see $OUT/reload.log"; exit 1; }

"$UDPLOAD_DIR/udpload" --target "$addr" --expect-reply --window "$WINDOW" \
	--payload "$UDPLOAD_DIR/payload.json" --duration "$SECONDS_" --timeout 2 --json \
	>"$OUT/reload.udpload" 2>/dev/null &
load=$!
sleep 1 # let the load reach its steady state first
done_=0
for i in $(seq "$RELOADS"); do
	kill -HUP $pid
	gen=$((i + 1))
	for _ in $(seq 400); do
		grep -q "reload: generation $gen serving" "$OUT/reload.log" && break
		sleep 0.025
	done
	grep -q "reload: generation $gen serving" "$OUT/reload.log" && done_=$((done_ + 1))
done
wait $load
kill $pid
wait $pid
trap - EXIT
cat "$OUT/reload.udpload"
python3 - "$OUT/reload.udpload" "$done_" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"reloads={sys.argv[2]} sent={r['sent']} answered={r['received']} lost={r['lost']} "
      f"rate={r['rate']:.0f}/s p99_us={r['p99_us']}")
PY
grep "stats listener=echo" "$OUT/reload.log" | grep -o "rx=[0-9]* .*handled=[0-9]*\|tx=[0-9]* " | head -3
