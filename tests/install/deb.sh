#!/usr/bin/env bash
# Build the Debian packages from the release tarball (make dist), unpack
# them into a scratch root, and run what they install: dgramd -t on the
# packaged default config, the packaged daemon serving it (on port 0), the
# packaged dgramc asking it, and a plugin and a client built against the
# -dev package's pkg-config files; and checks what the packages install for
# systemd (the unit's paths) and the system user (postinst, the config's
# "user"). The packages are kept in BUILDDIR/debs. Usage: deb.sh BUILDDIR
#
# The system user is not created here: the postinst would have to run on
# this machine (it also enables and starts the unit), so its text is checked
# instead, and as root the packaged daemon runs with "user" set to an
# existing user (dgramd if a real install made it, else nobody) so that its
# workers' privilege drop runs. Nothing outside a scratch directory and
# BUILDDIR/debs is changed.
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
for p in dgramd libdgramd2 libdgramd-dev libdgramd-testing0; do
	ls "$tmp/${p}_"*.deb >/dev/null 2>&1 || fail "package $p was not built"
done
out=$b/debs
mkdir -p "$out"
rm -f "$out"/*.deb
cp "$tmp"/*.deb "$out"/
debs=("$out"/*.deb)
root=$tmp/root
for d in "${debs[@]}"; do
	say "built $(basename "$d")"
	dpkg-deb -x "$d" "$root"
done
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
plugdir=$root/usr/lib/$ma/dgramd
conf=$root/etc/dgramd/dgramd.json
contents=$(dpkg-deb -c "$out"/dgramd_*.deb)
grep -q 'usr/lib/.*/dgramd/echo.so' <<<"$contents" || fail "echo.so not in dgramd"
# debian/control build-depends on libhiredis-dev: the redis plugin is built.
grep -q 'usr/lib/.*/dgramd/redis.so' <<<"$contents" || fail "redis.so not in dgramd"
grep -q 'lib/systemd/system/dgramd.service' <<<"$contents" || fail "no systemd unit in dgramd"
[ -f "$conf" ] || fail "no default config in the dgramd package"

# systemd: the unit make install made (dh_installsystemd enables it), with
# the package's paths, each of which the package holds.
unit=$root/lib/systemd/system/dgramd.service
[ -f "$unit" ] || fail "no lib/systemd/system/dgramd.service in the dgramd package"
! grep -n '@' "$unit" || fail "a placeholder left in the unit"
grep -qx 'ExecStart=/usr/sbin/dgramd -c /etc/dgramd/dgramd.json' "$unit" ||
	fail "ExecStart: $(grep ExecStart= "$unit")"
grep -qx 'ExecStartPre=/usr/sbin/dgramd -t -c /etc/dgramd/dgramd.json' "$unit" ||
	fail "ExecStartPre: $(grep ExecStartPre= "$unit")"
for f in $(sed -n 's/^Exec[A-Za-z]*=//p' "$unit" | tr ' ' '\n' | grep '^/'); do
	[ -e "$root$f" ] || [ -e "$f" ] || fail "the unit names $f, which the package does not hold"
done
# The system user: postinst makes it (once, before the unit starts), the
# package depends on adduser, the config runs the workers as it.
ctl=$tmp/control
dpkg-deb -e "$out"/dgramd_*.deb "$ctl"
[ -f "$ctl/postinst" ] || fail "no postinst in the dgramd package"
sh -n "$ctl/postinst" || fail "postinst: syntax"
grep -q 'getent passwd dgramd' "$ctl/postinst" || fail "postinst: not guarded (getent passwd dgramd)"
tr -d '\\\n' <"$ctl/postinst" | grep -q 'adduser --quiet --system --group .*dgramd' ||
	fail "postinst: no adduser --system --group dgramd"
awk '/adduser --quiet --system/ {a = NR} /deb-systemd-invoke/ {s = NR} END {exit !(a && s && a < s)}' \
	"$ctl/postinst" || fail "postinst: the user is not made before dh_installsystemd starts the unit"
dpkg-deb -f "$out"/dgramd_*.deb Depends | grep -q adduser || fail "dgramd does not depend on adduser"
grep -q '^  "user": "dgramd",' "$conf" || fail "the packaged config does not set \"user\": \"dgramd\""
export LD_LIBRARY_PATH=$root/usr/lib/$ma   # the scratch root is not in ld.so's cache

"$root/usr/sbin/dgramd" --version
# The run: as root with a user that exists (see the top); unprivileged,
# without one (a privilege drop needs root).
if [ "$(id -u)" -ne 0 ]; then
	user_edit='/^  "user": "dgramd",/d'; runas=$(id -un)
elif getent passwd dgramd >/dev/null; then
	user_edit=; runas=dgramd
else
	user_edit='s/^  "user": "dgramd",/  "user": "nobody",/'; runas=nobody
fi
sed -e 's/127\.0\.0\.1:5300/127.0.0.1:0/' -e "$user_edit" "$conf" > "$tmp/dgramd.json"
"$root/usr/sbin/dgramd" -t -c "$tmp/dgramd.json" -P "$plugdir" >/dev/null ||
	fail "dgramd -t on the packaged config (user $runas)"
"$root/usr/sbin/dgramd" -c "$tmp/dgramd.json" -P "$plugdir" -r "$tmp/ready" 2>"$tmp/log" &
pid=$!
# dg-wait (tests/waitfor.c): woken by inotify when the ready file appears,
# or by the daemon's end; never a sleep.
"$b/tests/dg-wait" -t 20000 -p "$pid" "$tmp/ready" ||
	fail "packaged dgramd never got ready: $(cat "$tmp/log")"
addr=$(awk '{print $2; exit}' "$tmp/ready")
reply=$("$root/usr/bin/dgramc" --timeout 3000 "$addr" '{"packaged":true}') || fail "dgramc to $addr"
[ "$reply" = '{"packaged":true}' ] || fail "reply '$reply'"
w=$(pgrep -P "$pid" -x dgramd-worker | head -1) || fail "no worker under the packaged dgramd"
[ "$(ps -o user= -p "$w" | tr -d ' ')" = "$runas" ] || fail "the worker runs as $(ps -o user= -p "$w"), not $runas"
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
echo "deb: ok: ${#debs[@]} packages built, installed into a scratch root, daemon (workers as $runas), client and harness ran"
echo "deb: the packages are in $out"
