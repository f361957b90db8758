#!/usr/bin/env bash
# bench/dns.sh: queries per second of the dns plugin (dgramd, workers 1)
# and NSD (one server process, nsd -N 1) serving the same zones
# (tests/fixtures/dns/zones.json; NSD's zone files generated from it), in
# one run, measured by dnsperf (Debian dnsperf). Each run starts a fresh
# server pinned to SERVER_CPU, runs dnsperf pinned to CLIENT_CPU for DUR
# seconds, stops the server; the servers alternate within each of REPS
# repetitions. Prints the medians and the ratio dgramd / NSD.
#
#   bench/dns.sh                 (about 1 minute)
# Knobs: DUR (10) REPS (3) SERVER_CPU (0) CLIENT_CPU (1) CLIENTS (4: dnsperf
#        -c, source ports) OUTSTANDING (200: dnsperf -q) EDNS (1: dnsperf -e)
#        PERF (1: record a perf profile of each server in the last repetition)
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
DUR=${DUR:-10}
REPS=${REPS:-3}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
EDNS=${EDNS:-1}
PERF=${PERF:-0}
OUT=${OUT:-$top/build/bench-out/dns}

say() { printf 'bench/dns: %s\n' "$*" >&2; }
for t in dnsperf nsd dig; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] ||
		{ say "$t is not installed (apt-get install dnsperf nsd bind9-dnsutils)"; exit 1; }
done
[ -x build/dgramd ] || ./dev.sh build || exit 1
mkdir -p "$OUT"
rm -f "$OUT"/*.txt

# The query mix: positive answers of every type, CNAME chains, referrals,
# NXDOMAIN and NODATA, the case varied (dnsperf: "name type" per line).
cat > "$OUT/queries" <<'EOT'
www.example.com A
www.example.com AAAA
example.com MX
example.com NS
example.com SOA
example.com TXT
mail.example.com A
ns1.example.com AAAA
txt.example.com TXT
alias.example.com A
chain.example.com AAAA
WWW.Example.COM A
nx.example.com A
www.example.com MX
x.sub.example.com A
deep.a.b.example.com A
dangling.example.com A
www.example.org AAAA
nx.example.org A
example.org SOA
EOT

export DG_BUILDDIR=$top/build DG_SRCDIR=$top
# Start one server, print "PID PORT"; the Python helpers of the tests do it
# (port 0 and the ready file for dgramd, a free port with retries for NSD).
start() {
	python3 - "$1" "$SCPU" <<'EOF'
import os, sys
sys.path.insert(0, "tests/integration")
import dnsutil
kind, cpu = sys.argv[1], int(sys.argv[2])
os.sched_setaffinity(0, {cpu})  # the server inherits the pin
if kind == "dgramd":
    s = dnsutil.Dgramd(listener={"amplification": {"factor": 0}, "ordering": "none",
                                 "rcvbuf": 4194304, "sndbuf": 4194304})
else:
    s = dnsutil.Nsd(dnsutil.zones())
print(s.proc.pid, s.port, s.tmp, flush=True)
os._exit(0)  # leave the server running; the shell stops it
EOF
}

run() { # server rep
	local srv=$1 rep=$2 pid port tmp
	read -r pid port tmp < <(start "$srv") || { say "$srv did not start"; return 1; }
	taskset -pc "$SCPU" "$pid" >/dev/null 2>&1
	# every process of the server (dgramd: master and worker) on SERVER_CPU
	for c in $(pgrep -P "$pid"); do taskset -pc "$SCPU" "$c" >/dev/null 2>&1; done
	local eopt=()
	[ "$EDNS" = 1 ] && eopt=(-e)
	local prof=()
	if [ "$PERF" = 1 ] && [ "$rep" = "$REPS" ]; then
		perf record -q -g -o "$OUT/perf-$srv.data" -p "$(pgrep -P "$pid" | head -1 || echo "$pid")" \
			-- sleep "$DUR" >/dev/null 2>&1 &
		prof=($!)
	fi
	taskset -c "$CCPU" dnsperf -s 127.0.0.1 -p "$port" -d "$OUT/queries" -l "$DUR" \
		-c "$CLIENTS" -q "$OUTSTANDING" "${eopt[@]}" > "$OUT/$srv-$rep.txt" 2>&1
	[ ${#prof[@]} -eq 0 ] || wait "${prof[@]}"
	kill "$pid" 2>/dev/null
	for ((i = 0; i < 500; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done # waiting for the exit
	kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
	say "$srv run $rep: $(grep -E 'Queries per second|Queries lost' "$OUT/$srv-$rep.txt" | tr -s ' ' | tr '\n' ' ')"
}

for ((r = 1; r <= REPS; r++)); do
	run dgramd $r
	run nsd $r
done

python3 - "$OUT" "$REPS" "$DUR" "$CLIENTS" "$OUTSTANDING" "$EDNS" <<'EOF'
import re, statistics, sys
out, reps, dur, clients, outst, edns = sys.argv[1:]
def runs(srv):
    v = []
    for r in range(1, int(reps) + 1):
        t = open(f"{out}/{srv}-{r}.txt").read()
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", t).group(1))
        lost = re.search(r"Queries lost:\s+(\d+)", t).group(1)
        lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", t)
        v.append((qps, int(lost), float(lat.group(1)) * 1e6 if lat else None))
    return v
d, n = runs("dgramd"), runs("nsd")
md, mn = statistics.median(x[0] for x in d), statistics.median(x[0] for x in n)
print(f"dnsperf -c {clients} -q {outst}{' -e' if edns == '1' else ''} -l {dur}, {reps} runs each, medians:")
print("| server | queries/s (median) | runs | lost | avg latency µs |")
print("|---|--:|---|--:|--:|")
for name, v, m in (("dgramd (dns plugin, workers 1)", d, md), ("NSD 4 (nsd -N 1)", n, mn)):
    print(f"| {name} | {m:,.0f} | {', '.join(f'{x[0]:,.0f}' for x in v)} | {sum(x[1] for x in v)} | "
          f"{statistics.median(x[2] for x in v):,.0f} |")
print(f"\nratio dgramd / NSD: {md / mn:.2f}")
EOF
