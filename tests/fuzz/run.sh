#!/bin/sh
# Run every libFuzzer harness for FUZZ_SECONDS (default 5) seconds on a copy
# of its seed corpus; a crash, leak or sanitizer report fails the test. New
# crashers are left in the build tree as crash-* files: add them to the
# corpus once fixed. Prints "DG-RESULT passed=N failed=M".
set -u
secs=${FUZZ_SECONDS:-5}
src=${DG_SRCDIR:-..}
build=${DG_BUILDDIR:-.}
pass=0 fail=0
for bin in "$build"/tests/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=${bin##*/fuzz_}
	work=$(mktemp -d)
	cp "$src/tests/fuzz/corpus/$name"/* "$work"/ 2>/dev/null
	log="$build/tests/fuzz/fuzz_$name.out"
	if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
	       -artifact_prefix="$build/tests/fuzz/crash-$name-" "$work" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz $name: ${runs:-?} runs in ${secs}s, no crash"
		pass=$((pass + 1))
	else
		echo "fuzz $name: FAILED (see $log)"
		tail -30 "$log"
		fail=$((fail + 1))
	fi
	rm -rf "$work"
done
echo "DG-RESULT passed=$pass failed=$fail"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
