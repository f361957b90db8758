#!/bin/sh
# The README's "Writing, testing and running a plugin", as printed: its files
# (the fenced block after each "<!-- tutorial: NAME -->") are extracted, and
# build.sh is run as is against an installed dgramd, then the plugin is served
# by the installed dgramd with upper.json and asked with the installed dgramc
# as run.sh does (on a free port instead of 5400).
#
#   tutorial.sh              from make check: stages "make install DESTDIR=" of
#                            the build tree (DG_BUILDDIR) and uses that
#   tutorial.sh installed    from installcheck.sh: the real install (paths
#                            in bindir, sbindir, libdir from the environment)
set -eu
src=${DG_SRCDIR:-${srcdir:-.}}
readme="$src/README.md"
tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || :; rm -rf "$tmp"; }
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
for f in upper.c test_upper.c build.sh upper.json run.sh; do
	awk -v m="<!-- tutorial: $f -->" '
		$0 == m { want = 1; next }
		want && /^```/ { if (in_block) exit; in_block = 1; next }
		in_block { print }' "$readme" > "$tmp/work/$f"
	[ -s "$tmp/work/$f" ] || fail "README.md has no '<!-- tutorial: $f -->' block"
done
cd "$tmp/work"

# Step 3 as printed: build the plugin and its tests, run the tests.
sh -e ./build.sh > build.log 2>&1 || { cat build.log >&2; fail "build.sh failed"; }
grep -q 'asserts' build.log || { cat build.log >&2; fail "the CUnit run printed no report"; }
echo "tutorial: build.sh built upper.so and test_upper; its tests passed"

# Step 4: the config checks, and the daemon serves the plugin. The commands
# are run.sh's, with the port of a ready file instead of 5400.
grep -q 'dgramd -t -c upper.json' run.sh && grep -q 'dgramc -c raw 127.0.0.1:5400 hello' run.sh ||
	fail "run.sh does not say what this test runs"
"$dgramd" -t -c upper.json > t.log 2>&1 || { cat t.log >&2; fail "dgramd -t -c upper.json"; }
sed 's/127\.0\.0\.1:5400/127.0.0.1:0/' upper.json > upper-test.json
"$dgramd" -c upper-test.json -r ready 2> daemon.log &
pid=$!
"$dgwait" -t 20000 -p "$pid" ready || fail "dgramd never got ready: $(cat daemon.log)"
addr=$(awk '{print $2; exit}' ready)
out=$("$dgramc" -c raw "$addr" hello) || fail "dgramc -c raw $addr hello"
[ "$out" = HELLO ] || fail "dgramc printed '$out', not HELLO"
kill "$pid"
wait "$pid" || fail "dgramd did not exit 0 on SIGTERM"
pid=
grep -q 'stats listener=upper rx=1 ' daemon.log || fail "no stats line: $(cat daemon.log)"
echo "tutorial: ok (dgramc got HELLO from the plugin in dgramd)"
