"""Shared by the dns plugin's integration tests: start dgramd with the dns
plugin on a loopback port (port 0, read back from the ready file), start NSD
on the same zones, ask with dig, and skip (exit 77) when a tool is missing."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dgutil import BUILD, Checks, Daemon  # noqa: E402,F401 (Checks: for the dns tests)
SRC = os.environ.get("DG_SRCDIR", ".")
ZONES = os.path.join(SRC, "tests/fixtures/dns/zones.json")


def need(*tools):
    for t in tools:
        if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t):
            print("SKIP: %s is not installed (apt-get install bind9-dnsutils knot-dnsutils nsd dnsperf)" % t)
            sys.exit(77)


def zones():
    with open(ZONES) as f:
        return json.load(f)


def wait_answer(port, deadline_s=10.0):
    """Poll with a query until the server answers (bounded)."""
    q = struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x06\x00\x01"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            if s.recv(4096)[:2] == q[:2]:
                return True
        except OSError:
            pass
        finally:
            s.close()
    return False


class Dgramd(Daemon):
    """dgramd serving the zones (plus extra listener settings) on 127.0.0.1:0."""

    def __init__(self, config=None, listener=None, workers=1, text=None):
        lst = {"name": "dns", "bind": "127.0.0.1:0", "codec": "raw", "max_datagram": 1232,
               "handler": {"plugin": "dns", "config": config or zones()}}
        lst.update(listener or {"amplification": {"factor": 0}})
        super().__init__({"workers": workers, "listeners": [lst]}, text=text, prefix="dgdns")

    def stat(self, name):
        """A counter of the last stats line the daemon logged (at exit:
        call stop() first); -1 if absent."""
        return self.stats("dns").get(name, -1)


def zonefile(zone):
    """An RFC 1035 master file of one zone of the plugin's config."""
    soa = zone["soa"]
    out = ["$ORIGIN %s" % (zone["origin"].rstrip(".") + "."), "$TTL %d" % zone.get("ttl", 3600)]
    out.append("@ %d IN SOA %s %s %d %d %d %d %d" % (
        soa.get("ttl", zone.get("ttl", 3600)), soa["mname"], soa["rname"], soa["serial"],
        soa["refresh"], soa["retry"], soa["expire"], soa["minimum"]))
    for r in zone["records"]:
        d = r["data"]
        if r["type"] == "MX":
            d = "%d %s" % (d["preference"], d["exchange"])
        elif r["type"] == "TXT":
            parts = d if isinstance(d, list) else [d]
            d = " ".join('"%s"' % p.replace("\\", "\\\\").replace('"', '\\"') for p in parts)
        out.append("%s %s IN %s %s" % (r["name"], r.get("ttl", ""), r["type"], d))
    return "\n".join(out) + "\n"


class Nsd:
    """NSD in the foreground on a free loopback port, with its own config in
    a temporary directory (retrying on a port clash: nsd cannot bind 0).
    One server process (server-count 1, as nsd -N 1); response rate
    limiting off (Debian's NSD limits a source to 200 answers a second)."""

    def __init__(self, data, cookie_secret=None):
        self.cookie_secret = cookie_secret
        self.tmp = tempfile.mkdtemp(prefix="dgnsd")
        os.chmod(self.tmp, 0o755)
        for attempt in range(5):
            self.port = free_udp_port()
            if self._start(data):
                return
        raise RuntimeError("nsd did not start: " + self.logtext())

    def _start(self, data):
        t = self.tmp
        zones = ""
        for i, z in enumerate(data["zones"]):
            with open(os.path.join(t, "z%d.zone" % i), "w") as f:
                f.write(zonefile(z))
            zones += "zone:\n  name: %s\n  zonefile: %s/z%d.zone\n" % (z["origin"], t, i)
        with open(os.path.join(t, "nsd.conf"), "w") as f:
            f.write("""server:
  ip-address: 127.0.0.1@%d
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonesdir: "%s"
  zonelistfile: "%s/zone.list"
  xfrdfile: "%s/xfrd.state"
  xfrdir: "%s"
  pidfile: "%s/nsd.pid"
  logfile: "%s/nsd.log"
  server-count: 1
  verbosity: 1
  rrl-ratelimit: 0
%sremote-control:
  control-enable: no
%s""" % (self.port, t, t, t, t, t, t, self._cookies(), zones))
        self.log = open(os.path.join(t, "out.log"), "w+")
        self.proc = subprocess.Popen(["nsd", "-d", "-c", os.path.join(t, "nsd.conf")],
                                     stdout=self.log, stderr=self.log)
        if wait_answer(self.port):
            return True
        self.proc.kill()
        self.proc.wait()
        return False

    def _cookies(self):
        if not self.cookie_secret:
            return ""
        # The secret file does not exist: cookie-secret is used.
        return '  answer-cookie: yes\n  cookie-secret: "%s"\n  cookie-secret-file: "%s/none"\n' % (
            self.cookie_secret, self.tmp)

    def logtext(self):
        text = ""
        for n in ("out.log", "nsd.log"):
            try:
                with open(os.path.join(self.tmp, n)) as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        shutil.rmtree(self.tmp, ignore_errors=True)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def dig(port, *args, tool="dig"):
    limits = ["+time=2", "+tries=1"] if tool == "dig" else ["+timeout=2", "+retry=0"]
    cmd = [tool, "@127.0.0.1", "-p", str(port), "+norec"] + limits + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & 0xFFFFFFFFFFFFFFFF


def siphash24(key, data):
    """SipHash-2-4 of data under the 16-byte key: the 8 bytes as the
    reference implementation writes them (little-endian). An implementation
    of its own, to check the server's cookies from outside."""
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]
    M = 0xFFFFFFFFFFFFFFFF

    def rnd():
        v[0] = (v[0] + v[1]) & M; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & M; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
        v[0] = (v[0] + v[3]) & M; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
        v[2] = (v[2] + v[1]) & M; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)
    tail = len(data) % 8
    for i in range(0, len(data) - tail, 8):
        m = struct.unpack("<Q", data[i:i + 8])[0]
        v[3] ^= m; rnd(); rnd(); v[0] ^= m
    b = (len(data) & 0xFF) << 56
    for j, c in enumerate(data[len(data) - tail:]):
        b |= c << (8 * j)
    v[3] ^= b; rnd(); rnd(); v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(4):
        rnd()
    return struct.pack("<Q", v[0] ^ v[1] ^ v[2] ^ v[3])


def server_cookie(secret, client, ts, ip):
    """RFC 9018's server cookie (16 bytes) for client cookie (8 bytes) at
    Unix time ts from the address ip (text)."""
    head = bytes([1, 0, 0, 0]) + struct.pack(">I", ts & 0xFFFFFFFF)
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return head + siphash24(secret, client + head + socket.inet_pton(fam, ip))
