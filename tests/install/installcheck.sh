#!/bin/sh
# Run by "make installcheck" (and so by "make distcheck") after an install:
# the installed programs run as installed, with no LD_LIBRARY_PATH, on the
# installed default config, and the installed pkg-config files build an
# out-of-tree plugin and client. Paths come from the Makefile.
set -eu
root=${DESTDIR:-}
unset LD_LIBRARY_PATH
fail() { echo "installcheck: $*" >&2; exit 1; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || :; rm -rf "$tmp"; }
trap cleanup EXIT

[ -z "$root" ] || fail "run without DESTDIR (the programs look in their configured paths)"
"$sbindir/dgramd" --version | grep -q 'plugin ABI' || fail "dgramd --version"
"$bindir/dgramc" --version >/dev/null || fail "dgramc does not run (runpath to $libdir?)"
conf="$sysconfdir/dgramd/dgramd.json"
[ -f "$conf" ] || fail "no default config at $conf"
"$sbindir/dgramd" -t -c "$conf" >/dev/null || fail "dgramd -t on the installed default config"
# The systemd unit (unless configured out) starts the installed dgramd on
# the installed config.
if [ "${systemdsystemunitdir:-no}" != no ]; then
	unit=$systemdsystemunitdir/dgramd.service
	[ -f "$unit" ] || fail "no systemd unit at $unit"
	grep -qx "ExecStart=$sbindir/dgramd -c $conf" "$unit" ||
		fail "$unit: $(grep ExecStart= "$unit") (expected $sbindir/dgramd -c $conf)"
	grep -qx "ExecStartPre=$sbindir/dgramd -t -c $conf" "$unit" ||
		fail "$unit: $(grep ExecStartPre= "$unit")"
fi
for m in man8/dgramd.8 man5/dgramd.conf.5 man3/dgramd-plugin.3 man1/dgramc.1; do
	[ -f "$mandir/$m" ] || fail "man page $m not installed"
done

# Serve the installed default config, on port 0 so that two runs never
# collide, and ask it with the installed dgramc.
sed 's/127\.0\.0\.1:5300/127.0.0.1:0/' "$conf" > "$tmp/dgramd.json"
"$sbindir/dgramd" -c "$tmp/dgramd.json" -r "$tmp/ready" 2>"$tmp/log" &
pid=$!
# dg-wait (built with the tree, not installed): woken by inotify when the
# ready file appears, or by the daemon's end.
"${dgwait:?}" -t 20000 -p "$pid" "$tmp/ready" ||
	fail "installed dgramd never got ready: $(cat "$tmp/log")"
addr=$(awk '{print $2; exit}' "$tmp/ready")
out=$("$bindir/dgramc" --timeout 3000 "$addr" '{"installed":true}') || fail "dgramc to $addr"
[ "$out" = '{"installed":true}' ] || fail "unexpected reply '$out'"
kill "$pid"; wait "$pid" || fail "dgramd did not exit 0 on SIGTERM"
pid=

# pkg-config: plugins get headers only, clients the library.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --libs dgramd | grep -q -- '-ldgramd' && fail "dgramd.pc links plugins against libdgramd"
[ "$(pkg-config --variable=plugindir dgramd)" = "$pkglibdir" ] || fail "plugindir in dgramd.pc"
cat > "$tmp/p.c" <<'EOT'
#include <jansson.h>
#include <dgramd/rc.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>
static int on_packet(void *state, const struct dg_request *req) { (void)state; (void)req; return dg_util_verdict(DG_EAGAIN); }
DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER, .name = "p", .version = "1", .on_packet = on_packet,
};
EOT
cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags dgramd) -o "$tmp/p.so" "$tmp/p.c" \
	|| fail "building a plugin with pkg-config dgramd"
cat > "$tmp/c.c" <<'EOT'
#include <dgramd/client.h>
int main(void) { struct dg_client *c; struct dg_client_error e;
	return dg_client_open("127.0.0.1:9", "json", NULL, &c, &e) ? 1 : (dg_client_close(c), 0); }
EOT
cc -o "$tmp/c" "$tmp/c.c" $(pkg-config --cflags --libs dgramd-client) -Wl,-rpath,"$libdir" \
	|| fail "building a client with pkg-config dgramd-client"
"$tmp/c" || fail "the client built with pkg-config does not run"
# docs/plugins.md's plugin tutorial, as printed, against this install.
DG_SRCDIR=$(cd "$(dirname "$0")/../.." && pwd) bindir="$bindir" sbindir="$sbindir" libdir="$libdir" \
	sh "$(dirname "$0")/tutorial.sh" installed || fail "the tutorial of docs/plugins.md"

echo "installcheck: ok"
