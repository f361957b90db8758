#!/usr/bin/env bash
# Build the Debian packages from the release tarball (make dist), unpack
# them into a scratch root, and run what they install: dgramd -t on the
# packaged default config, the packaged daemon serving it (on port 0), the
# packaged dgramc asking it, and a plugin and a client built against the
# -dev package's pkg-config files. Usage: deb.sh BUILDDIR
set -euo pipefail
b=$(cd "${1:?usage: deb.sh BUILDDIR}" && pwd)
say() { printf 'deb: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || :; rm -rf "$tmp"; }
trap cleanup EXIT

make -s -C "$b" dist >/dev/null
tarball=$(ls -t "$b"/dgramd-*.tar.gz | head -1)
tar -C "$tmp" -xzf "$tarball"
src=$(ls -d "$tmp"/dgramd-*/)
say "dpkg-buildpackage -b -us -uc in $src"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${JOBS:-2}" dpkg-buildpackage -b -us -uc \
	>"$tmp/build.log" 2>&1) || { tail -40 "$tmp/build.log" >&2; fail "dpkg-buildpackage"; }
debs=("$tmp"/*.deb)
for p in dgramd libdgramd2 libdgramd-dev libdgramd-testing0; do
	ls "$tmp/${p}_"*.deb >/dev/null 2>&1 || fail "package $p was not built"
done
root=$tmp/root
for d in "${debs[@]}"; do
	say "built $(basename "$d")"
	dpkg-deb -x "$d" "$root"
done
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
plugdir=$root/usr/lib/$ma/dgramd
conf=$root/etc/dgramd/dgramd.json
contents=$(dpkg-deb -c "$tmp"/dgramd_*.deb)
grep -q 'usr/lib/.*/dgramd/echo.so' <<<"$contents" || fail "echo.so not in dgramd"
# debian/control build-depends on libhiredis-dev: the redis plugin is built.
grep -q 'usr/lib/.*/dgramd/redis.so' <<<"$contents" || fail "redis.so not in dgramd"
grep -q 'lib/systemd/system/dgramd.service' <<<"$contents" || fail "no systemd unit in dgramd"
[ -f "$conf" ] || fail "no default config in the dgramd package"
export LD_LIBRARY_PATH=$root/usr/lib/$ma   # the scratch root is not in ld.so's cache

"$root/usr/sbin/dgramd" --version
"$root/usr/sbin/dgramd" -t -c "$conf" -P "$plugdir" >/dev/null || fail "dgramd -t on the packaged config"
sed 's/127\.0\.0\.1:5300/127.0.0.1:0/' "$conf" > "$tmp/dgramd.json"
"$root/usr/sbin/dgramd" -c "$tmp/dgramd.json" -P "$plugdir" -r "$tmp/ready" 2>"$tmp/log" &
pid=$!
# dg-wait (tests/waitfor.c): woken by inotify when the ready file appears,
# or by the daemon's end; never a sleep.
"$b/tests/dg-wait" -t 20000 -p "$pid" "$tmp/ready" ||
	fail "packaged dgramd never got ready: $(cat "$tmp/log")"
addr=$(awk '{print $2; exit}' "$tmp/ready")
out=$("$root/usr/bin/dgramc" --timeout 3000 "$addr" '{"packaged":true}') || fail "dgramc to $addr"
[ "$out" = '{"packaged":true}' ] || fail "reply '$out'"
kill "$pid"; wait "$pid" || fail "packaged dgramd did not exit 0 on SIGTERM"
pid=

export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$root/usr/lib/$ma/pkgconfig
printf '%s\n' '#include <dgramd/plugin.h>' \
	'static int op(void *s, const struct dg_request *r) { (void)s; (void)r; return DG_DONE; }' \
	'DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = { DG_PLUGIN_HEADER, .name = "p", .on_packet = op };' \
	> "$tmp/p.c"
cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags dgramd) -o "$tmp/p.so" "$tmp/p.c" \
	|| fail "plugin build with the -dev package"
printf '%s\n' '#include <dgramd/client.h>' \
	'int main(void) { struct dg_client *c; struct dg_client_error e;' \
	'return dg_client_open("127.0.0.1:9", "json", NULL, &c, &e) ? 1 : (dg_client_close(c), 0); }' \
	> "$tmp/c.c"
cc -o "$tmp/c" "$tmp/c.c" $(pkg-config --cflags --libs dgramd-client) || fail "client build with the -dev package"
"$tmp/c" || fail "client built against the -dev package"
# The harness (libdgramd-testing0, dgramd-testing.pc) runs that plugin.
printf '%s\n' '#include <stdio.h>' '#include <CUnit/CUnit.h>' '#include <dgramd/testing.h>' \
	'int main(int argc, char **argv) { char l[4096], e[512]; (void)argc;' \
	'snprintf(l, sizeof(l), "{\"codec\": \"raw\", \"handler\": {\"plugin\": \"%s\"}}", argv[1]);' \
	'struct dg_harness *h = dg_harness_new(l, NULL, e, sizeof(e)); if (!h) { puts(e); return 1; }' \
	'dg_harness_send_text(h, "127.0.0.1:5000", "x");' \
	'int ok = dg_harness_counter(h, "handled") == 1; dg_harness_free(h); return !ok; }' \
	> "$tmp/t.c"
cc -o "$tmp/t" "$tmp/t.c" $(pkg-config --cflags --libs dgramd dgramd-testing) \
	|| fail "harness test build with the -dev package"
"$tmp/t" "$tmp/p.so" || fail "harness test built against the -dev package"
echo "deb: ok: ${#debs[@]} packages built, installed into a scratch root, daemon, client and harness ran"
