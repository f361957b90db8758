#!/usr/bin/env bash
# /metrics passes "promtool check metrics" (Debian package prometheus;
# skipped, never passed, when promtool is not installed).
set -u
b=${DG_BUILDDIR:?}
command -v promtool >/dev/null 2>&1 || { echo "SKIP: promtool is not installed (apt-get install prometheus)"; exit 77; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null; [ -z "$pid" ] || wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cat > "$tmp/c.json" <<'EOT'
{ "metrics": { "bind": "127.0.0.1:0" },
  "listeners": [ { "name": "e", "bind": "127.0.0.1:0", "handler": "echo" },
                 { "name": "kv", "bind": "127.0.0.1:0", "handler": "kv" } ] }
EOT
"$b/dgramd" -c "$tmp/c.json" -P "$b/plugins/.libs" -r "$tmp/ready" 2>"$tmp/log" &
pid=$!
"$b/tests/dg-wait" -t 20000 -p "$pid" "$tmp/ready" ||
	{ echo "FAIL: dgramd never got ready: $(cat "$tmp/log")"; exit 1; }
read -r host port < <(awk '$1 == "@metrics" { split($2, a, ":"); print a[1], a[2] }' "$tmp/ready")
[ -n "${port:-}" ] || { echo "FAIL: no @metrics line in the ready file"; exit 1; }
exec 3<>"/dev/tcp/$host/$port"
printf 'GET /metrics HTTP/1.0\r\nHost: dgramd\r\n\r\n' >&3
sed '1,/^\r$/d' <&3 > "$tmp/metrics"
exec 3<&-
[ -s "$tmp/metrics" ] || { echo "FAIL: empty /metrics"; exit 1; }
if ! out=$(promtool check metrics < "$tmp/metrics" 2>&1); then
	echo "FAIL: promtool check metrics: $out"; exit 1
fi
echo "ok: promtool check metrics passed ($(grep -c '^dgramd_' "$tmp/metrics") samples)${out:+; $out}"
