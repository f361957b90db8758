#!/bin/sh
# Start dgramd under valgrind with echo, kv and a relay carrying traffic
# (through dgramc), stop it with SIGTERM, and fail on any leak or memory
# error. Run in plain builds only (tests/include.am). Prints
# "DG-RESULT passed=N failed=M".
set -u
build=${DG_BUILDDIR:-.}
if ! command -v valgrind >/dev/null; then
	echo "valgrind is not installed (Debian package valgrind)"
	echo "DG-RESULT passed=0 failed=1"
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + $$ % 20000)); }
up=$(port)
cat > "$work/conf.json" <<EOC
{"listeners": [
  {"name": "echo", "bind": "127.0.0.1:$up", "codec": "json",
   "handler": {"plugin": "echo", "config": {"delay_ms": 5}}},
  {"name": "kv", "bind": "127.0.0.1:0", "codec": "json", "handler": "kv"},
  {"name": "relay", "bind": "127.0.0.1:0", "codec": "json",
   "handler": {"plugin": "relay", "config": {"upstream": "127.0.0.1:$up"}}},
  {"name": "frames", "bind": "[::1]:0", "codec": {"framing": "length-prefixed", "payload": "json"},
   "handler": "echo"}
]}
EOC
valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 \
	"$build/dgramd" -c "$work/conf.json" -P "$build/plugins/.libs" -r "$work/ready" \
	2>"$work/vg.log" &
pid=$!
# woken by inotify when the ready file appears (or by valgrind's end)
"$build/tests/dg-wait" -t 60000 -p "$pid" "$work/ready" || :
addr() { awk -v n="$1" '$1 == n { print $2; exit }' "$work/ready"; }
fail=0
if [ -f "$work/ready" ]; then
	"$build/dgramc" -t 5000 "$(addr echo)" '{"a":1}' >/dev/null || fail=1
	"$build/dgramc" -t 5000 "$(addr kv)" '{"op":"set","key":"k","value":[1]}' '{"op":"get","key":"k"}' >/dev/null || fail=1
	"$build/dgramc" -t 5000 "$(addr relay)" '{"via":"relay"}' >/dev/null || fail=1
	"$build/dgramc" -t 5000 -c '{"framing":"length-prefixed","payload":"json"}' --batch "$(addr frames)" 1 2 >/dev/null || fail=1
	printf '{bad' | "$build/dgramc" -t 300 -n 0 "$(addr echo)" 2>/dev/null
else
	fail=1
fi
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
if [ $rc -ne 0 ] || [ $fail -ne 0 ] || ! grep -q "All heap blocks were freed" "$work/vg.log"; then
	echo "dgramd under valgrind: exit $rc, traffic failed: $fail"
	tail -40 "$work/vg.log"
	echo "DG-RESULT passed=0 failed=1"
	exit 1
fi
grep -E "total heap usage|ERROR SUMMARY" "$work/vg.log"
echo "DG-RESULT passed=1 failed=0"
