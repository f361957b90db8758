#!/usr/bin/env bash
# bench/tftp.sh: TFTP throughput of the tftp plugin for one 5 MiB file, by a
# real client (curl) with blksize 1428 and 512, and tftp-hpa (no options:
# 512). Each figure is the median of REPS (3) transfers, each into a fresh
# file, checked against the original with cmp. Nothing is pinned unless
# PIN=1 (server on SCPU, client on CCPU, as bench/run.sh does): TFTP is one
# round trip per block, and on a loaded machine a pinned process waits for
# its CPU at every hop (5 MiB by a scripted client took 4.9 s with both
# pinned, 0.4 to 2.0 s with neither, at a load of 22 on 2 CPUs).
#
# Two configs: conf/examples/tftp.json as shipped (port and root aside),
# whose per-source rate limit (10,000 datagrams/s) caps one client at 10,000
# blocks a second, and the same without the rate limit (what the plugin and
# the loop can do). TFTP waits for each ACK before the next block, so the
# figures are round trips per second times the block size.
#
#   bench/tftp.sh            prints a Markdown table
# Knobs: REPS (3), OUT (build/bench-out), PIN (0), SCPU (0), CCPU (1)
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
OUT=${OUT:-$top/build/bench-out}
REPS=${REPS:-3}
PIN=${PIN:-0}
SCPU=${SCPU:-0}
CCPU=${CCPU:-1}
pin() { # CPU: the taskset prefix, or nothing
	if [ "$PIN" = 1 ]; then echo "taskset -c $1"; fi
}
SIZE=$((5 * 1024 * 1024))
mkdir -p "$OUT/tftp-root"
./dev.sh build >/dev/null || exit 1
for tool in curl tftp cmp awk; do
	command -v "$tool" >/dev/null || { echo "tftp bench: needs $tool" >&2; exit 1; }
done

say() { printf 'tftp bench: %s\n' "$*" >&2; }

head -c "$SIZE" /dev/urandom > "$OUT/tftp-root/big"

# config NAME SEDEXPR: the shipped example on a free port, root ours
config() {
	sed -e 's/"127.0.0.1:6969"/"127.0.0.1:0"/' \
	    -e "s|\"/srv/tftp\"|\"$OUT/tftp-root\"|" -e "$2" conf/examples/tftp.json > "$OUT/tftp-$1.json"
}

start() { # NAME: sets pid and port
	rm -f "$OUT/tftp.ready"
	$(pin "$SCPU") build/dgramd -c "$OUT/tftp-$1.json" -P build/plugins/.libs \
		-r "$OUT/tftp.ready" 2>"$OUT/tftp-$1.log" &
	pid=$!
	for _ in $(seq 200); do [ -s "$OUT/tftp.ready" ] && break; sleep 0.05; done
	port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/tftp.ready" | head -1)
	[ -n "$port" ] || { say "dgramd did not start: $(tail -3 "$OUT/tftp-$1.log")"; exit 1; }
}

# one CLIENT BLKSIZE: seconds for one transfer (verified), or "fail"
one() {
	local out="$OUT/tftp-got" t0 t1
	rm -f "$out"
	t0=$(date +%s.%N)
	case $1 in
	curl) $(pin "$CCPU") curl -sS --max-time 300 --tftp-blksize "$2" -o "$out" \
		"tftp://127.0.0.1:$port/big" ;;
	tftp-hpa) $(pin "$CCPU") tftp -m binary 127.0.0.1 "$port" -c get big "$out" >/dev/null ;;
	esac
	t1=$(date +%s.%N)
	cmp -s "$out" "$OUT/tftp-root/big" || { echo fail; return; }
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; PIN=$PIN"
echo
echo "| config | client | blksize | s per 5 MiB (median of $REPS) | MB/s | runs |"
echo "|---|---|--:|--:|--:|---|"
config shipped 's/x/x/'
config norate 's/"rate_limit": {[^}]*} },//'
for cfg in shipped norate; do
	start "$cfg"
	for run in "curl 1428" "curl 512" "tftp-hpa 512"; do
		set -- $run
		times=""
		for _ in $(seq "$REPS"); do times="$times $(one "$1" "$2")"; done
		case $times in
		*fail*) med=fail mbs=fail ;;
		*) med=$(echo "$times" | tr ' ' '\n' | grep -v '^$' | median)
		   mbs=$(awk -v s="$SIZE" -v t="$med" 'BEGIN { printf "%.1f", s / t / 1e6 }')
		   med=$(awk -v t="$med" 'BEGIN { printf "%.3f", t }') ;;
		esac
		printf '| %s | %s | %s | %s | %s | %s |\n' "$cfg" "$1" "$2" "$med" "$mbs" \
			"$(for t in $times; do printf '%.2f ' "$t" 2>/dev/null || printf '%s ' "$t"; done | sed 's/ $//')"
	done
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null
done
