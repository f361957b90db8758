#!/bin/sh
# docs/plugins.md's "Writing, testing and running a plugin", as printed: its files
# (the fenced block after each "<!-- tutorial: NAME -->") are extracted, and
# build.sh is run as is against an installed dgramd, its test program again
# under valgrind (or, without valgrind, built with AddressSanitizer) so that
# a leak fails; then serve.sh is run as is in the background, with upper.json
# on a free port instead of 5400, and ask.sh as is once dgramd has logged
# that it listens, as the page tells the reader to wait.
#
#   tutorial.sh              from make check: stages "make install DESTDIR=" of
#                            the build tree (DG_BUILDDIR) and uses that
#   tutorial.sh installed    from installcheck.sh: the real install (paths
#                            in bindir, sbindir, libdir from the environment)
set -eu
src=${DG_SRCDIR:-${srcdir:-.}}
readme="$src/docs/plugins.md"
tmp=$(mktemp -d)
pid=
# serve.sh runs dgramd under a shell: stop the dgramd it started (its
# master logs its pid first), then the shell.
cleanup() {
	if [ -n "$pid" ]; then
		m=$(master_pid)
		[ -z "$m" ] || kill "$m" 2>/dev/null || :
		kill "$pid" 2>/dev/null || :
	fi
	rm -rf "$tmp"
}
master_pid() { sed -n 's/.*dgramd\[info\]: master (pid \([0-9]*\)).*/\1/p' "$tmp/work/daemon.log" 2>/dev/null | head -1; }
trap cleanup EXIT
fail() { echo "tutorial: $*" >&2; exit 1; }

command -v cc >/dev/null || { echo "SKIP: no cc"; exit 77; }
command -v pkg-config >/dev/null || { echo "SKIP: no pkg-config"; exit 77; }
pkg-config --exists cunit || { echo "SKIP: no CUnit (libcunit1-dev)"; exit 77; }

if [ "${1:-}" = installed ]; then
	: "${bindir:?}" "${sbindir:?}" "${libdir:?}"
	export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
	dgramd="$sbindir/dgramd" dgramc="$bindir/dgramc"
	dgwait=${dgwait:?}
else
	b=${DG_BUILDDIR:?}
	dgwait="$b/tests/dg-wait"
	root="$tmp/root"
	make -s -C "$b" install DESTDIR="$root" >"$tmp/install.log" 2>&1 ||
		fail "make install DESTDIR=: $(tail -5 "$tmp/install.log")"
	pcdir=$(dirname "$(find "$root" -name dgramd-testing.pc | head -1)")
	[ -d "$pcdir" ] || fail "no dgramd-testing.pc staged"
	# The staged .pc files name the configured prefix: point them into the
	# staging root (what a real install would not need).
	prefix=$(sed -n 's/^prefix=//p' "$pcdir/dgramd-testing.pc")
	mkdir "$tmp/pc"
	for pc in "$pcdir"/*.pc; do
		sed "s|$prefix|$root$prefix|g" "$pc" > "$tmp/pc/$(basename "$pc")"
	done
	export PKG_CONFIG_PATH="$tmp/pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
	dgramd=$(find "$root" -path '*sbin/dgramd' -type f | head -1)
	dgramc=$(find "$root" -path '*bin/dgramc' -type f | head -1)
	# dgramc's runpath is the configured libdir, empty in a staged install.
	LD_LIBRARY_PATH="$(pkg-config --variable=libdir dgramd-testing)"
	export LD_LIBRARY_PATH
fi
[ -x "$dgramd" ] && [ -x "$dgramc" ] || fail "no installed dgramd or dgramc"

# Extract: the fenced block that follows each marker.
mkdir "$tmp/work"
for f in upper.c test_upper.c build.sh upper.json serve.sh ask.sh; do
	awk -v m="<!-- tutorial: $f -->" '
		$0 == m { want = 1; next }
		want && /^```/ { if (in_block) exit; in_block = 1; next }
		in_block { print }' "$readme" > "$tmp/work/$f"
	[ -s "$tmp/work/$f" ] || fail "docs/plugins.md has no '<!-- tutorial: $f -->' block"
done
cd "$tmp/work"

# Step 3 as printed: build the plugin and its tests, run the tests.
sh -e ./build.sh > build.log 2>&1 || { cat build.log >&2; fail "build.sh failed"; }
grep -q 'asserts' build.log || { cat build.log >&2; fail "the CUnit run printed no report"; }
# The bad-config test's refusal is logged once, by the host, as the page says.
[ "$(grep -c 'dgramd\[error\]: harness config: listeners\[0\]\.handler\.config\.delay_ms: must be 0 \.\. 5000 (got -1)$' build.log)" = 1 ] &&
	[ "$(grep -c 'must be\|refused' build.log)" = 1 ] || { cat build.log >&2; fail "the refusal is not logged once as docs/plugins.md says"; }
echo "tutorial: build.sh built upper.so and test_upper; its tests passed"

# The same tests must not leak (one stops the harness with a reply waiting).
leakcheck=
if command -v valgrind >/dev/null; then
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
		./test_upper > valgrind.log 2>&1 || { cat valgrind.log >&2; fail "test_upper under valgrind"; }
	leakcheck=valgrind
elif mkdir asan && cp upper.c test_upper.c asan/ && (cd asan && sed 's/^cc /cc -fsanitize=address -g /; /^\.\/test_upper/d' ../build.sh |
		sh -e) > asan.log 2>&1; then
	(cd asan && ASAN_OPTIONS=detect_leaks=1 ./test_upper) > asan-run.log 2>&1 ||
		{ cat asan-run.log >&2; fail "test_upper built with -fsanitize=address"; }
	leakcheck=AddressSanitizer
fi
[ -z "$leakcheck" ] || echo "tutorial: test_upper under $leakcheck: no leak, no memory error"

# Step 4. dgramd -t names a bad option by its key path, -T prints defaults.
grep -q '"bind": "127.0.0.1:5400"' upper.json && grep -q '"delay_ms": 100' upper.json ||
	fail "upper.json is not what this test expects"
sed 's/"delay_ms": 100/"delay_ms": -1/' upper.json > bad.json
if "$dgramd" -t -c bad.json > bad.log 2>&1; then fail "dgramd -t accepted delay_ms -1"; fi
grep -q 'bad.json: listeners\[0\]\.handler\.config\.delay_ms: must be 0 \.\. 5000 (got -1)' bad.log ||
	fail "dgramd -t on delay_ms -1 said: $(cat bad.log)"
sed 's/"config": {"delay_ms": 100}/"config": {}/' upper.json > defaults.json
"$dgramd" -T -c defaults.json > dump.log 2>&1 || fail "dgramd -T: $(cat dump.log)"
grep -q '"delay_ms": 0' dump.log || fail "dgramd -T shows no default delay_ms: $(cat dump.log)"

# serve.sh and ask.sh as printed, with dgramd and dgramc found on PATH as
# the reader's are, on a free port (5400 may be taken: tests run at once).
grep -q '^dgramd -t -c upper.json' serve.sh && grep -q '^dgramd -c upper.json' serve.sh &&
	grep -q '^dgramc -c raw 127.0.0.1:5400 hello' ask.sh || fail "serve.sh or ask.sh changed: update this test"
sed -i 's/127\.0\.0\.1:5400/127.0.0.1:0/' upper.json
PATH="$(dirname "$dgramd"):$(dirname "$dgramc"):$PATH"
export PATH
sh -e ./serve.sh > serve.log 2> daemon.log &
pid=$!
# The reader waits for this line in the first terminal; so does the test
# (woken by inotify, bounded).
"$dgwait" -t 20000 -p "$pid" daemon.log "listener 'upper': listening on" ||
	fail "dgramd never listened: $(cat serve.log daemon.log)"
addr=$(sed -n "s/.*listener 'upper': listening on \([^ ]*\) .*/\1/p" daemon.log | head -1)
master=$(master_pid)
[ -n "$addr" ] && [ -n "$master" ] || fail "no address or master pid in: $(cat daemon.log)"
sed "s/127\.0\.0\.1:5400/$addr/" ask.sh > ask-free.sh
out=$(sh -e ./ask-free.sh) || fail "ask.sh (dgramc -c raw $addr hello)"
[ "$out" = HELLO ] || fail "dgramc printed '$out', not HELLO"
kill -INT "$master"                     # the reader's Ctrl-C
wait "$pid" || fail "serve.sh did not end with 0 after SIGINT: $(cat daemon.log)"
pid=
grep -q 'stats listener=upper rx=1 ' daemon.log || fail "no stats line: $(cat daemon.log)"
echo "tutorial: ok (dgramc got HELLO from the plugin in dgramd)"
[ -n "$leakcheck" ] || { echo "SKIP: no leak check: neither valgrind nor cc -fsanitize=address"; exit 77; }
