#!/usr/bin/env bash
# dev.sh: the two quick-start commands, idempotent.
#   ./dev.sh run    install missing Debian packages (as root), build if needed,
#                   run dgramd on conf/dgramd.json (JSON echo on 127.0.0.1:5300)
#   ./dev.sh test   same setup, then every test: the plain build and an
#                   AddressSanitizer + UndefinedBehaviorSanitizer build; ends
#                   with the line "N passed, N failed, N skipped"
#   ./dev.sh build  setup and build only
#   ./dev.sh deb    build the Debian packages (dpkg-buildpackage -b) from the
#                   release tarball into build/debs/, unpack them into a
#                   scratch root and run the packaged daemon and client there
#                   (CI runs this)
# Environment: JOBS (parallel make jobs, default: CPUs), DG_SKIP_ASAN=1 (test
# the plain build only), FUZZ_SECONDS (per fuzz harness, default 5).
set -euo pipefail
cd "$(dirname "$0")"
top=$(pwd)

# Debian packages needed to build and test (one per dependency, see README).
DEPS=(gcc clang libclang-rt-dev make autoconf automake libtool pkg-config
      libevent-dev libjansson-dev zlib1g-dev libbz2-dev libcunit1-dev valgrind python3 groff-base prometheus
      bind9-dnsutils knot-dnsutils nsd dnsperf
      bsdutils curl tftp-hpa
      libhiredis-dev redis-server nginx libnginx-mod-stream
      python3-msgpack python3-cbor2)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

say() { printf 'dev.sh: %s\n' "$*" >&2; }

ensure_deps() {
	local missing=() p
	for p in "${DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		# nsd's package starts a system nsd on port 53; the tests run their
		# own on a loopback port and never need it: stop it if it was ours.
		if [[ " ${missing[*]} " == *" nsd "* ]] && command -v systemctl >/dev/null &&
		   systemctl is-enabled nsd.service >/dev/null 2>&1; then
			say "stopping and disabling the system nsd.service the nsd package started"
			systemctl disable --now nsd.service >/dev/null 2>&1 || true
		fi
	else
		say "missing Debian packages: ${missing[*]}"
		say "install them with: sudo apt-get install ${missing[*]}"
		exit 1
	fi
}

# build DIR [configure options...]: configure once, then make (make reruns
# autotools itself when configure.ac or a Makefile.am changes).
build() {
	local dir=$1; shift
	[ -x configure ] || { say "running autogen.sh"; ./autogen.sh >/dev/null 2>&1 || ./autogen.sh; }
	mkdir -p "$dir"
	# Reconfigure only when the options changed (recorded in a stamp).
	if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.dev-configure" 2>/dev/null)" != "$*" ]; then
		say "configuring $dir $*"
		(cd "$dir" && "$top/configure" -q "$@")
		echo "$*" > "$dir/.dev-configure"
	fi
	make -s -C "$dir" -j"$JOBS" >/dev/null
}

# Sum the results of every test program in DIR: CUnit programs print
# "DG-RESULT passed=N failed=M"; any other test counts as one by its .trs.
count_results() {
	local dir=$1 p=0 f=0 s=0 log trs
	while IFS= read -r trs; do
		log=${trs%.trs}.log
		if grep -q '^DG-RESULT ' "$log" 2>/dev/null; then
			read -r a b < <(sed -n 's/^DG-RESULT passed=\([0-9]*\) failed=\([0-9]*\).*/\1 \2/p' "$log" | tail -1)
			p=$((p + a)); f=$((f + b))
			grep -q ':test-result: PASS' "$trs" || [ "$b" -gt 0 ] || f=$((f + 1))
		elif grep -q ':test-result: PASS\|:test-result: XFAIL' "$trs"; then
			p=$((p + 1))
		elif grep -q ':test-result: SKIP' "$trs"; then
			s=$((s + 1))
			say "SKIPPED: ${trs%.trs} ($(grep -m1 -i 'skip' "$log" 2>/dev/null | cut -c1-120))"
		else
			f=$((f + 1))
		fi
	done < <(find "$dir/tests" -name '*.trs' 2>/dev/null | sort)
	echo "$p $f $s"
}

run_checks() {
	local dir=$1 rc=0; shift
	build "$dir" "$@"
	say "make check in $dir"
	# Only this run's results count: a test renamed or removed since the
	# last run leaves its .trs behind, which count_results would add up.
	find "$dir/tests" \( -name '*.trs' -o -name '*.log' \) -delete 2>/dev/null || :
	make -s -C "$dir" -j"$JOBS" check >/dev/null 2>&1 || rc=$?
	for log in $(grep -l ':test-result: \(FAIL\|ERROR\)' $(find "$dir/tests" -name '*.trs') 2>/dev/null); do
		say "FAILED: ${log%.trs}.log"
		sed 's/^/    /' "${log%.trs}.log" | grep -v '^    .*\.\.\.passed$' | tail -40 >&2
	done
	read -r p f s < <(count_results "$dir")
	say "$dir: $p passed, $f failed, $s skipped"
	TOTAL_P=$((TOTAL_P + p)); TOTAL_F=$((TOTAL_F + f)); TOTAL_S=$((TOTAL_S + s))
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || TOTAL_F=$((TOTAL_F + 1))
}

cmd=${1:-}
case "$cmd" in
run)
	ensure_deps
	build build
	say "dgramd: JSON echo on 127.0.0.1:5300 (Ctrl-C stops it); try:"
	say "  build/dgramc 127.0.0.1:5300 '{\"a\":1}'"
	exec build/dgramd -c conf/dgramd.json -P build/plugins/.libs
	;;
test)
	ensure_deps
	TOTAL_P=0 TOTAL_F=0 TOTAL_S=0
	run_checks build
	export FUZZ_SECONDS=${FUZZ_SECONDS:-5}
	[ "${DG_SKIP_ASAN:-0}" = 1 ] || run_checks build-asan --enable-sanitizers --enable-fuzzing CC=clang
	echo "$TOTAL_P passed, $TOTAL_F failed, $TOTAL_S skipped"
	[ "$TOTAL_F" -eq 0 ]
	;;
build)
	ensure_deps
	build build
	;;
deb)
	DEPS+=(dpkg-dev debhelper)
	ensure_deps
	build build
	exec bash tests/install/deb.sh "$top/build"
	;;
*)
	sed -n '2,18s/^# \{0,1\}//p' "$0"
	[ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
	;;
esac
