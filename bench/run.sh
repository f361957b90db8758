#!/usr/bin/env bash
# bench/run.sh: dgramd beside the reference servers of ../shared/bench, in
# one run. Every measurement starts a fresh server pinned to SERVER_CPU, runs
# one udpload pinned to CLIENT_CPU for DUR seconds, stops the server by PID.
# Servers alternate within each repetition, so drift on a shared machine hits
# them alike; the table shows medians of REPS runs and the ratios
# dgramd / reference. Ratios, not absolute rates, carry between machines.
#
#   bench/run.sh                 run everything (about 4 minutes), print the table
#   bench/run.sh --write         ... and write it to bench/RESULTS.md
# Scenarios: raw, rawacl (raw echo again with a 100-CIDR ACL and a per-source
# rate limit, bench/configs/raw-echo-acl.json: the cost of the checks), json,
# lpjson, ingest, w256, allocs (heap allocations per datagram, counted by
# bench/allocount.c). With json or lpjson, every repetition also runs
# bench/jansson_limit.c on the server's CPU: jansson's own load + dump of
# payload.json, which with the reference's CPU per datagram makes the
# jansson-bound limit (issue 14). Server CPU is the server process and its
# children (dgramd's master, worker and metrics process).
# Knobs: DUR (5) REPS (3) PORT (9100) SERVER_CPU (0) CLIENT_CPU (1) SCENARIOS
#        OUT (build/bench-out) SHARED (../shared/bench) JL_SECONDS (2)
#        ALLOC_N1 (2000) ALLOC_N2 (6000)
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
SHARED=${SHARED:-$top/../shared/bench}
DUR=${DUR:-5}
REPS=${REPS:-3}
PORT=${PORT:-9100}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
OUT=${OUT:-$top/build/bench-out}
SCENARIOS=${SCENARIOS:-"raw rawacl json lpjson msgpack cbor b64hmac ingest w256 allocs"}
JL_SECONDS=${JL_SECONDS:-2}
ALLOC_N1=${ALLOC_N1:-2000}
ALLOC_N2=${ALLOC_N2:-6000}
WRITE=0
[ "${1:-}" = --write ] && WRITE=1

say() { printf 'bench: %s\n' "$*" >&2; }

[ -d "$SHARED" ] || { say "no $SHARED (the shared bench tools)"; exit 1; }
./dev.sh build || exit 1
tools=$top/build/bench-tools
mkdir -p "$tools" "$OUT"
for p in udpload ref_echo_mmsg ref_echo_libevent; do
	if [ ! -x "$tools/$p" ] || [ "$SHARED/$p.c" -nt "$tools/$p" ]; then
		extra=""
		[ $p = ref_echo_libevent ] && extra=$(pkg-config --libs libevent)
		cc -O2 -g -std=gnu11 -pthread -o "$tools/$p" "$SHARED/$p.c" $extra || exit 1
	fi
done
# Ours: jansson's own cost per datagram, and the allocation counter.
if [ ! -x "$tools/jansson_limit" ] || [ bench/jansson_limit.c -nt "$tools/jansson_limit" ]; then
	# shellcheck disable=SC2046
	cc -O2 -g -std=gnu11 -o "$tools/jansson_limit" bench/jansson_limit.c \
		$(pkg-config --cflags --libs jansson) || exit 1
fi
if [ ! -f "$tools/allocount.so" ] || [ bench/allocount.c -nt "$tools/allocount.so" ]; then
	cc -O2 -shared -fPIC -o "$tools/allocount.so" bench/allocount.c || exit 1
fi

# A length-prefixed datagram of 4 JSON frames (payload.json each).
python3 - "$SHARED/payload.json" "$OUT/lp4.bin" <<'EOF'
import sys
p = open(sys.argv[1], 'rb').read()
open(sys.argv[2], 'wb').write(b''.join(len(p).to_bytes(2, 'big') + p for _ in range(4)))
EOF

# payload.json as MessagePack, as CBOR (the trees dgramd decodes are the
# same), and as base64(json + HMAC-SHA256) under a key in $OUT/hmac.key, as
# EasyNetwork's Base64EncoderSerializer writes it. Debian's python3 (a
# pyenv shim may hide its modules): the scenarios are skipped without them.
PYBIN=/usr/bin/python3
[ -x "$PYBIN" ] || PYBIN=python3
if ! "$PYBIN" - "$SHARED/payload.json" "$OUT" <<'EOF'
import base64, hashlib, hmac, json, sys
import cbor2, msgpack
tree = json.load(open(sys.argv[1]))
out = sys.argv[2]
open(out + '/payload.msgpack', 'wb').write(msgpack.packb(tree))
open(out + '/payload.cbor', 'wb').write(cbor2.dumps(tree))
key = bytes(range(32))
open(out + '/hmac.key', 'wb').write(base64.urlsafe_b64encode(key))
data = open(sys.argv[1], 'rb').read().strip()
tok = base64.urlsafe_b64encode(data + hmac.new(key, data, hashlib.sha256).digest())
open(out + '/payload.b64hmac', 'wb').write(tok)
EOF
then
	say "no python3-msgpack / python3-cbor2: the msgpack, cbor and b64hmac scenarios are skipped"
	SCENARIOS=$(echo " $SCENARIOS " | sed -e 's/ msgpack / /' -e 's/ cbor / /' -e 's/ b64hmac / /')
fi

RAW=$OUT/records.tsv
: > "$RAW"
SPID=""
stop_server() {
	[ -n "$SPID" ] || return 0
	kill -TERM "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=""
}
trap 'stop_server; exit 130' INT TERM
trap stop_server EXIT

cpu_ticks() { # utime + stime of a pid and its children (dgramd's workers), in clock ticks
	# After "(comm) ": $2 is the parent pid, $12 + $13 utime + stime.
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '{ pid = $1; sub(/^.*\) /, "");
		if (pid == p || $2 == p) t += $12 + $13 } END { print t + 0 }'
}

# start_server NAME CONFIG-or-ARGS: sets SPID, waits until it listens
start_server() {
	local name=$1 conf=$2
	: > "$OUT/srv.err"
	: > "$OUT/srv.out"
	case $name in
	dgramd*)
		sed -e "s/@PORT@/$PORT/" -e "s|@KEYFILE@|$OUT/hmac.key|" "bench/configs/$conf" > "$OUT/conf.json"
		rm -f "$OUT/ready"
		taskset -c "$SCPU" build/dgramd -c "$OUT/conf.json" -P build/plugins/.libs -l info \
			-r "$OUT/ready" 2>"$OUT/srv.err" &
		SPID=$!
		for _ in $(seq 100); do [ -f "$OUT/ready" ] && return 0; sleep 0.05; done ;;
	*)
		# shellcheck disable=SC2086
		taskset -c "$SCPU" "$tools/$name" $conf --port "$PORT" --seconds $((DUR + 20)) \
			>"$OUT/srv.out" 2>"$OUT/srv.err" &
		SPID=$!
		for _ in $(seq 100); do grep -q listening "$OUT/srv.err" && return 0; sleep 0.05; done ;;
	esac
	say "$name did not start: $(cat "$OUT/srv.err")"
	return 1
}

# measure SCENARIO SERVER CONF REP UDPLOAD-ARGS...
measure() {
	local scen=$1 name=$2 conf=$3 rep=$4
	shift 4
	start_server "$name" "$conf" || return 1
	local t0 t1 cli
	t0=$(cpu_ticks "$SPID")
	cli=$(taskset -c "$CCPU" "$tools/udpload" --target "127.0.0.1:$PORT" --duration "$DUR" \
		--json "$@" 2>/dev/null)
	t1=$(cpu_ticks "$SPID")
	stop_server
	local rx
	case $name in
	dgramd*) rx=$(sed -n 's/.*stats listener=bench rx=\([0-9]*\).*/\1/p' "$OUT/srv.err" | tail -1)
		# the ACL / rate-limit run must drop nothing, or it measures less work
		local d
		for d in acl rate_limited; do
			d=$(sed -n "s/.*stats listener=bench .* drop_$d=\([0-9]*\).*/\1/p" "$OUT/srv.err" | tail -1)
			[ "${d:-0}" = 0 ] || say "$scen $name rep $rep: $d datagrams dropped by the ACL or rate limit"
		done ;;
	*) rx=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' "$OUT/srv.out" | tail -1) ;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$name" "$rep" "${cli:-null}" "$((t1 - t0))" "${rx:-0}" >> "$RAW"
	say "$(printf '%-7s %-18s rep %s: %s' "$scen" "$name" "$rep" \
		"$(echo "$cli" | sed -E 's/.*"rate":([0-9.]+).*"lost":([0-9]+|null).*/rate \1 lost \2/')")"
}

want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "DUR=$DUR REPS=$REPS server cpu $SCPU, client cpu $CCPU, load $LOAD_START"
SEQ64=(--expect-reply --seq --window 64 --size 64)
JSON16=(--expect-reply --window 16 --payload "$SHARED/payload.json")
LP16=(--expect-reply --window 16 --payload "$OUT/lp4.bin")
for rep in $(seq "$REPS"); do
	if want raw || want rawacl; then
		# rawacl: the same raw echo with a 100-CIDR ACL and a per-source
		# rate limit that drops nothing (row dgramd-acl); the two dgramd
		# runs swap places every other repetition.
		measure raw ref_echo_mmsg "" "$rep" "${SEQ64[@]}"
		if want rawacl && [ $((rep % 2)) = 0 ]; then
			measure raw dgramd-acl raw-echo-acl.json "$rep" "${SEQ64[@]}"
		fi
		measure raw dgramd raw-echo.json "$rep" "${SEQ64[@]}"
		if want rawacl && [ $((rep % 2)) = 1 ]; then
			measure raw dgramd-acl raw-echo-acl.json "$rep" "${SEQ64[@]}"
		fi
		want raw && measure raw ref_echo_libevent "" "$rep" "${SEQ64[@]}"
	fi
	if want json || want lpjson; then
		# jansson alone on the server's CPU: load + dump of payload.json
		jl=$(taskset -c "$SCPU" "$tools/jansson_limit" "$SHARED/payload.json" "$JL_SECONDS" |
			sed -n 's/.*us_per_dgram=\([0-9.]*\).*/\1/p')
		printf 'jansson\tjansson_limit\t%s\t{"us":%s}\t0\t0\n' "$rep" "${jl:-null}" >> "$RAW"
		say "jansson jansson_limit     rep $rep: ${jl:-?} us per load+dump"
	fi
	if want json; then
		measure json ref_echo_mmsg "" "$rep" "${JSON16[@]}"
		measure json dgramd json-echo.json "$rep" "${JSON16[@]}"
	fi
	if want lpjson; then
		measure lpjson ref_echo_mmsg "" "$rep" "${LP16[@]}"
		measure lpjson dgramd lp-json-echo.json "$rep" "${LP16[@]}"
	fi
	# The same tree as JSON's, in the binary payloads and signed: each row
	# against ref_echo_mmsg echoing the same bytes, and dgramd's JSON row.
	for b in msgpack cbor b64hmac; do
		want $b || continue
		measure $b ref_echo_mmsg "" "$rep" --expect-reply --window 16 --payload "$OUT/payload.$b"
		measure $b dgramd $b-echo.json "$rep" --expect-reply --window 16 --payload "$OUT/payload.$b"
	done
	if want ingest; then
		measure ingest ref_echo_mmsg --count-only "$rep" --size 64
		measure ingest dgramd count.json "$rep" --size 64
	fi
	if want w256; then
		# The client gets a large buffer too: this row checks the server.
		measure w256 dgramd raw-echo.json "$rep" --expect-reply --seq --window 256 --size 64 --rcvbuf 4194304
	fi
done

# Heap allocations per datagram (bench/allocount.c in every dgramd
# process): two runs of ALLOC_N1 and ALLOC_N2 requests, so startup cancels.
ALLOCS=$OUT/allocs.tsv
: > "$ALLOCS"
alloc_run() { # alloc_run CONFIG COUNT UDPLOAD-ARGS...: prints "rx mallocs"
	local conf=$1 count=$2 d
	shift 2
	d=$(mktemp -d)
	sed "s/@PORT@/$PORT/" "bench/configs/$conf" > "$d/conf.json"
	ALLOCOUNT_DIR=$d LD_PRELOAD=$tools/allocount.so taskset -c "$SCPU" build/dgramd \
		-c "$d/conf.json" -P build/plugins/.libs -l info -r "$d/ready" 2>"$d/err" &
	SPID=$!
	for _ in $(seq 100); do [ -f "$d/ready" ] && break; sleep 0.05; done
	taskset -c "$CCPU" "$tools/udpload" --target "127.0.0.1:$PORT" --count "$count" \
		--duration 60 "$@" >/dev/null 2>&1
	stop_server
	echo "$(sed -n 's/.*stats listener=bench rx=\([0-9]*\).*/\1/p' "$d/err" | tail -1)" \
		"$(cat "$d"/[0-9]* 2>/dev/null | awk '{ a += $1 } END { print a + 0 }')"
	rm -rf "$d"
}
if want allocs; then
	for a in "raw raw-echo.json SEQ64" "json json-echo.json JSON16" "lpjson lp-json-echo.json LP16"; do
		read -r scen conf args <<< "$a"
		declare -n argv=$args
		r1=$(alloc_run "$conf" "$ALLOC_N1" "${argv[@]}")
		r2=$(alloc_run "$conf" "$ALLOC_N2" "${argv[@]}")
		unset -n argv
		printf '%s\t%s\t%s\n' "$scen" "$r1" "$r2" >> "$ALLOCS"
		say "allocs  $scen: $r1 / $r2 (rx mallocs)"
	done
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RAW" "$WRITE" "$top/bench/RESULTS.md" "$DUR" "$REPS" "$ALLOCS" "$LOAD_START" "$LOAD_END" <<'EOF'
import json, os, platform, statistics, subprocess, sys, time
raw, write, dest, dur, reps = sys.argv[1], sys.argv[2] == '1', sys.argv[3], sys.argv[4], sys.argv[5]
allocs, load_start, load_end = sys.argv[6], sys.argv[7], sys.argv[8]
tck = os.sysconf('SC_CLK_TCK')
rows = {}
for line in open(raw):
    scen, server, rep, cli, ticks, rx = line.rstrip('\n').split('\t')
    c = json.loads(cli) if cli != 'null' else {}
    rx = int(rx)
    cpu_us = int(ticks) / tck * 1e6 / rx if rx else None
    rows.setdefault((scen, server), []).append(dict(c, cpu_us=cpu_us, rx=rx))
def med(key, runs):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None
def fmt(v, d=0):
    return '-' if v is None else f'{v:,.{d}f}'
desc = {
    'raw': 'raw echo, 64 B, `--seq --window 64`',
    'json': 'JSON echo of payload.json (217 B), window 16',
    'lpjson': 'length-prefixed JSON, 4 frames of payload.json per datagram, window 16',
    'msgpack': "MessagePack echo of payload.json's tree, window 16",
    'cbor': "CBOR echo of payload.json's tree, window 16",
    'b64hmac': 'base64(JSON + HMAC-SHA256) echo of payload.json, window 16',
    'ingest': 'open-loop one-way ingest, 64 B (dgramd: plugin that never replies)',
    'w256': 'raw echo, `--seq --window 256`, rcvbuf 4 MiB on both sides (loss check)',
}
out = []
out.append('| scenario | server | replies/s (median) | lost | p50 µs | p99 µs | server CPU µs/dgram | dgramd / this |')
out.append('|---|---|--:|--:|--:|--:|--:|--:|')
for scen in ['raw', 'json', 'lpjson', 'msgpack', 'cbor', 'b64hmac', 'ingest', 'w256']:
    servers = [s for (sc, s) in rows if sc == scen]
    d = rows.get((scen, 'dgramd'))
    for s in sorted(servers, key=lambda x: (x != 'dgramd', x)):
        runs = rows[(scen, s)]
        rate = med('rate', runs) if scen != 'ingest' else None
        ratio = ''
        if d and not s.startswith('dgramd'):
            if scen == 'ingest':
                a, b = med('cpu_us', d), med('cpu_us', runs)
                ratio = f'CPU {a / b:.2f}x' if a and b else ''
            else:
                a, b = med('rate', d), med('rate', runs)
                ratio = f'{a / b:.2f}x' if a and b else ''
        lost = sum(r.get('lost') or 0 for r in runs)
        out.append(f'| {desc[scen]} | {s} | {fmt(rate)} | {lost if scen != "ingest" else "-"} | '
                   f'{fmt(med("p50_us", runs), 1)} | {fmt(med("p99_us", runs), 1)} | '
                   f'{fmt(med("cpu_us", runs), 2)} | {ratio} |')
# The hot-path checks: raw echo against ref_echo_mmsg with and without them.
acl_note = ''
ref, plain, acl = (rows.get(('raw', s)) for s in ('ref_echo_mmsg', 'dgramd', 'dgramd-acl'))
if ref and plain and acl and med('rate', ref):
    a, b = med('rate', plain) / med('rate', ref), med('rate', acl) / med('rate', ref)
    acl_note = (f'**Access control and rate limit on the hot path** (row dgramd-acl: '
                f'`bench/configs/raw-echo-acl.json`, a 100-CIDR ACL and a per-source rate limit '
                f'that drops nothing): raw echo / ref_echo_mmsg = **{a:.3f}** without them, '
                f'**{b:.3f}** with them, a change of {b - a:+.3f} (the limit is -0.03); server CPU '
                f'{fmt(med("cpu_us", plain), 2)} vs {fmt(med("cpu_us", acl), 2)} µs per datagram.')
# Issue 14's goals, each a ratio from this run.
def ratio(a, b):
    return a / b if a is not None and b else None
goals = ['| goal (issue 14) | this run | ratio | goal | met |', '|---|---|--:|--:|---|']
def goal(name, how, r, lim, le):
    met = '-' if r is None else ('yes' if (r <= lim if le else r >= lim) else '**no**')
    goals.append(f'| {name} | {how} | {fmt(r, 3)} | {"≤" if le else "≥"} {lim} | {met} |')
def cpu(scen, server):
    return med('cpu_us', rows.get((scen, server), []))
def rate(scen, server):
    return med('rate', rows.get((scen, server), []))
jl = med('us', rows.get(('jansson', 'jansson_limit'), []))
if rate('raw', 'dgramd'):
    goal('raw echo replies/s vs ref_echo_mmsg', f'{fmt(rate("raw", "dgramd"))} vs '
         f'{fmt(rate("raw", "ref_echo_mmsg"))} /s', ratio(rate('raw', 'dgramd'),
         rate('raw', 'ref_echo_mmsg')), 0.92, False)
if cpu('json', 'dgramd') and jl:
    lim = cpu('json', 'ref_echo_mmsg') + jl
    goal('JSON echo server CPU per datagram vs the jansson-bound limit',
         f'{fmt(cpu("json", "dgramd"), 2)} µs vs {fmt(cpu("json", "ref_echo_mmsg"), 2)} (ref) + '
         f'{fmt(jl, 2)} (jansson) = {fmt(lim, 2)} µs', ratio(cpu('json', 'dgramd'), lim), 1.15, True)
if cpu('lpjson', 'dgramd') and jl:
    lim = cpu('lpjson', 'ref_echo_mmsg') / 4 + jl
    goal('length-prefixed JSON server CPU per frame vs the limit',
         f'{fmt(cpu("lpjson", "dgramd") / 4, 2)} µs vs {fmt(cpu("lpjson", "ref_echo_mmsg") / 4, 2)} '
         f'(ref / 4) + {fmt(jl, 2)} (jansson) = {fmt(lim, 2)} µs',
         ratio(cpu('lpjson', 'dgramd') / 4, lim), 1.15, True)
for b, name in (('msgpack', 'MessagePack'), ('cbor', 'CBOR')):
    if cpu(b, 'dgramd') and cpu('json', 'dgramd'):
        goal(f'{name} echo server CPU per datagram vs JSON echo (issue 21)',
             f'{fmt(cpu(b, "dgramd"), 2)} vs {fmt(cpu("json", "dgramd"), 2)} µs',
             ratio(cpu(b, 'dgramd'), cpu('json', 'dgramd')), 1.0, True)
if cpu('b64hmac', 'dgramd') and cpu('json', 'dgramd'):
    goals.append(f'| base64 + HMAC-SHA256 over JSON: its cost per datagram (reported) | '
                 f'{fmt(cpu("b64hmac", "dgramd"), 2)} vs {fmt(cpu("json", "dgramd"), 2)} µs (JSON) | '
                 f'{fmt(ratio(cpu("b64hmac", "dgramd"), cpu("json", "dgramd")), 3)} | - | - |')
if cpu('ingest', 'dgramd'):
    goal('ingest server CPU per datagram vs ref_echo_mmsg --count-only',
         f'{fmt(cpu("ingest", "dgramd"), 2)} vs {fmt(cpu("ingest", "ref_echo_mmsg"), 2)} µs',
         ratio(cpu('ingest', 'dgramd'), cpu('ingest', 'ref_echo_mmsg')), 1.2, True)
if jl:
    js = rows[('jansson', 'jansson_limit')]
    goals.append('')
    goals.append(f'jansson alone (`bench/jansson_limit`, load + dump of payload.json): '
                 f'{fmt(jl, 2)} µs median of {", ".join(fmt(r.get("us"), 2) for r in js)}.')
alloc_lines = []
if os.path.exists(allocs):
    for line in open(allocs):
        f = line.split()
        if len(f) != 5 or int(f[3]) == int(f[1]):
            continue
        per = (int(f[4]) - int(f[2])) / (int(f[3]) - int(f[1]))
        alloc_lines.append(f'{f[0]} {per:.1f}')
if alloc_lines:
    goals.append('')
    goals.append('Heap allocations (malloc, calloc, realloc) per datagram, every dgramd process, '
                 '`bench/allocount.c`: ' + ', '.join(alloc_lines) + '.')
goals.append('')
goals.append(f'Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}.')
table = '\n'.join(out)
goal_table = '\n'.join(goals)
print(table)
print('\n' + goal_table)
if acl_note:
    print('\n' + acl_note)
if write:
    cpu = subprocess.run(['sh', '-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    with open(dest, 'w') as f:
        f.write(f'''# dgramd benchmark results

Measured {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} with `bench/run.sh --write` (DUR={dur} s per run, REPS={reps},
medians shown) on {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, a shared VM:
server pinned to CPU 0, udpload pinned to CPU 1. Every run starts a fresh server; servers
alternate within each repetition.

**Ratios, not absolute numbers, are what carries between machines**: the rates move by
tens of percent from run to run on a shared VM, but dgramd and the references move together.
`ref_echo_mmsg` is a bare blocking recvmmsg/sendmmsg loop (the practical limit);
`ref_echo_libevent` is the one-recvfrom-per-callback libevent loop most code is. In the
ingest row the ratio is server CPU per datagram (lower is better), dgramd / ref.

{table}

{goal_table}

{acl_note}

Reproduce: `bench/run.sh` (about {int(dur) * int(reps) * 12 // 60 + 1} minutes; `--write` updates this file).
''')
        analysis = os.path.join(os.path.dirname(dest), 'analysis.md')
        if os.path.exists(analysis):
            f.write('\n' + open(analysis).read())
    print(f'written to {dest}', file=sys.stderr)
EOF
