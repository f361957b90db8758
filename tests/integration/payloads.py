#!/usr/bin/env python3
"""The msgpack and cbor payloads against independent implementations:
Debian's python3-msgpack and python3-cbor2 encode 40 assorted packets
(maps, arrays, nesting, strings of every length head, UTF-8, integers at
each width and at the int64 limits, floats kept bit-exact, true, false,
null), dgramd's echo decodes each into its JSON tree and encodes the reply,
and the reply is byte for byte what the library encoded (both use the
shortest heads and float 64). Then what dgramd refuses (uint64 above int64,
bin, byte strings, tags, NaN, trailing bytes) is counted as decode errors
and never echoed, and a wrapped reply ({"got": packet}) decodes in the
library to the packet it sent; dgramc speaks both to a Python server.
EasyNetwork's composition base64(zlib(msgpack)) (its Base64EncoderSerializer
wrapping its ZlibCompressorSerializer wrapping MessagePackSerializer, i.e.
transforms ["base64", "zlib"], outermost first), written by the standard
library + python3-msgpack, is echoed byte for byte, and dgramc speaks it
(and its HMAC-SHA256-signed form, naming a signature mismatch) to a
Python server.
Paced by replies, never by sleeping.
Skipped (exit 77) when a module is missing."""
import base64
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsutil  # noqa: E402

try:
    import cbor2
    import msgpack
except ImportError as e:
    # Debian's modules are in Debian's python3; another python3 first in
    # PATH (pyenv, a venv) does not see them.
    if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3":
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("SKIP: %s (apt-get install python3-msgpack python3-cbor2)" % e)
    sys.exit(77)

BUILD = dnsutil.BUILD
CHECKS = dnsutil.Checks()
check = CHECKS.check


def packets():
    """40 assorted packets, each within what both payloads carry."""
    p = [
        {}, [], {"a": 1}, [1, 2, 3], "", "x" * 31, "y" * 32, "z" * 255, "w" * 256, "v" * 60000,
        0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
        -1, -24, -25, -32, -33, -128, -129, -32768, -32769, -2**63,
        0.1, -0.0, 1e300, 5e-324, True, False, None,
        {"k\u00e9y": "\u00fcn\u00efc\u00f6d\u00e9 \U0001f600", "list": list(range(24)), "n": {"m": [None, True]}},
        [{"i": i, "f": i / 7.0} for i in range(20)],
        {"d%d" % i: [i] * (i % 5) for i in range(40)},
    ]
    assert len(p) == 40
    return p


class Server(dnsutil.Daemon):
    """dgramd with one echo listener on 127.0.0.1:0 speaking codec, and a
    client socket to ask it."""

    def __init__(self, codec, echo=None):
        lst = {"name": "pl", "bind": "127.0.0.1:0", "codec": codec, "max_datagram": 65507,
               "amplification": {"factor": 0}, "handler": {"plugin": "echo", "config": echo or {}}}
        super().__init__({"workers": 1, "listeners": [lst]}, prefix="dgpl")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)

    def ask(self, data):
        """Send data, return the reply (None if none within the timeout)."""
        self.sock.sendto(data, ("127.0.0.1", self.port))
        try:
            return self.sock.recv(70000)
        except socket.timeout:
            return None

    def stop(self):
        """Stop dgramd; return the counters of its last stats line."""
        self.sock.close()
        super().stop()
        return self.stats("pl")


def round_trip(name, dumps, loads):
    srv = Server(name)
    same = 0
    try:
        for i, p in enumerate(packets()):
            data = dumps(p)
            r = srv.ask(data)
            if r == data:
                same += 1
            else:
                print("  packet %d %r: sent %s, got %s" % (i, p, data[:40].hex(), r and r[:40].hex()))
    finally:
        stats = srv.stop()
    check("%s: 40 packets echoed byte for byte (%d of 40)" % (name, same), same == 40)
    return stats


def refused(name, bad, ok):
    """Each of bad gets no reply and counts as a decode error; ok (sent
    after each) still gets its echo, which paces the test."""
    srv = Server(name)
    echoed = 0
    try:
        for b in bad:
            srv.sock.sendto(b, ("127.0.0.1", srv.port))
            # a reply to the refused datagram would come first and differ
            echoed += srv.ask(ok) == ok
    finally:
        stats = srv.stop()
    errs = int(stats.get("rx_decode_errors", stats.get("decode_errors", "-1")))
    check("%s: %d hostile datagrams refused, counted (%d decode errors), never echoed" %
          (name, len(bad), errs), echoed == len(bad) and errs == len(bad),
          "stats %r" % stats)


def wrapped(name, dumps, loads):
    srv = Server(name, {"wrap": "got"})
    good = 0
    try:
        for p in packets():
            r = srv.ask(dumps(p))
            try:
                good += r is not None and loads(r) == {"got": p}
            except Exception as e:  # a reply the library cannot read is a failure
                print("  %r: %s" % (p, e))
    finally:
        srv.stop()
    check("%s: 40 wrapped replies read back by the library (%d of 40)" % (name, good), good == 40)


def dgramc(name, spec, loads, dumps):
    """dgramc against a Python server: what it sends decodes in the library
    to the packet given on its command line, and the library's reply is
    printed as JSON."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(10.0)
    sent = {"op": "get", "keys": ["a", "\u00e9"], "n": -70000, "f": 0.25, "ok": True, "none": None}
    proc = subprocess.Popen([os.path.join(BUILD, "dgramc"), "-t", "10000", "-c", spec,
                             "127.0.0.1:%d" % srv.getsockname()[1], json.dumps(sent)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = None
    try:
        data, peer = srv.recvfrom(65536)
        got = loads(data)
        srv.sendto(dumps({"reply": [1, 2**40, "x" * 40]}), peer)
    except Exception as e:  # noqa: BLE001 (a datagram the library cannot read)
        print("  %s: %s" % (name, e))
    out, err = proc.communicate(timeout=20)
    srv.close()
    check("%s: dgramc -c '%s' speaks to a Python server" % (name, spec),
          got == sent and proc.returncode == 0 and
          json.loads(out) == {"reply": [1, 2**40, "x" * 40]},
          "sent %r, printed %r %r" % (got, out, err))


# EasyNetwork's base64 -> zlib -> msgpack: url-safe base64, optionally
# followed by an HMAC-SHA256 tag inside it, of zlib level 9 of MessagePack.
B64ZLIB = {"framing": "raw", "transforms": ["base64", "zlib"], "payload": "msgpack"}
KEY = bytes(range(3, 35))


def b64zlib_dumps(obj, key=None):
    z = zlib.compress(msgpack.packb(obj), 9)
    if key:
        z += hmac.digest(key, z, "sha256")
    return base64.urlsafe_b64encode(z)


def b64zlib_loads(wire, key=None):
    z = base64.urlsafe_b64decode(wire)
    if key:
        z, tag = z[:-32], z[-32:]
        if not hmac.compare_digest(tag, hmac.digest(key, z, "sha256")):
            raise ValueError("signature mismatch")
    return msgpack.unpackb(zlib.decompress(z), strict_map_key=False)


def composition():
    """40 packets through dgramd's echo in base64(zlib(msgpack)), then
    dgramc in that format, plain and signed, against a Python server."""
    same = decoded = 0
    srv = Server(B64ZLIB)
    try:
        for i, p in enumerate(packets()):
            data = b64zlib_dumps(p)
            r = srv.ask(data)
            same += r == data
            try:
                decoded += r is not None and b64zlib_loads(r) == p
            except Exception as e:  # noqa: BLE001 (a reply Python cannot read)
                print("  packet %d: %s" % (i, e))
    finally:
        stats = srv.stop()
    check("base64+zlib+msgpack: 40 packets read back by Python (%d of 40)" % decoded, decoded == 40)
    check("base64+zlib+msgpack: 40 replies are Python's bytes exactly (%d of 40)" % same, same == 40)
    bad = {k: stats.get(k) for k in ("decode_errors", "drop_integrity", "drop_corrupt", "drop_decoded_size")}
    check("base64+zlib+msgpack: no drops or decode errors (%r)" % bad,
          all(v == 0 for v in bad.values()))
    dgramc("base64+zlib+msgpack", json.dumps(B64ZLIB), b64zlib_loads, b64zlib_dumps)
    tmp = tempfile.mkdtemp(prefix="dgplkey")
    try:
        keyfile = os.path.join(tmp, "key")
        with open(keyfile, "wb") as f:
            f.write(base64.urlsafe_b64encode(KEY))
        signed = dict(B64ZLIB, transforms=[{"name": "base64", "checksum": "hmac-sha256",
                                            "key_file": keyfile}, "zlib"])
        dgramc("hmac-sha256 base64+zlib+msgpack", json.dumps(signed),
               lambda w: b64zlib_loads(w, KEY), lambda o: b64zlib_dumps(o, KEY))
        # A reply signed with another key: dgramc names the mismatch.
        wrong = bytes(range(4, 36))
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.settimeout(10.0)
        proc = subprocess.Popen([os.path.join(BUILD, "dgramc"), "-t", "10000", "-c", json.dumps(signed),
                                 "127.0.0.1:%d" % srv.getsockname()[1], "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            data, peer = srv.recvfrom(65536)
            srv.sendto(b64zlib_dumps({"forged": 1}, wrong), peer)
        finally:
            out, err = proc.communicate(timeout=20)
            srv.close()
        check("dgramc says a reply signed with another key is a signature mismatch (exit 4)",
              proc.returncode == 4 and b"refused (frame 0): base64: hmac-sha256 signature mismatch" in err,
              "exit %d, %r" % (proc.returncode, err))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    mp_dumps = msgpack.packb
    mp_loads = lambda b: msgpack.unpackb(b, strict_map_key=False)  # noqa: E731
    round_trip("msgpack", mp_dumps, mp_loads)
    round_trip("cbor", cbor2.dumps, cbor2.loads)
    wrapped("msgpack", mp_dumps, mp_loads)
    wrapped("cbor", cbor2.dumps, cbor2.loads)
    dgramc("msgpack", '{"framing": "raw", "payload": "msgpack"}', mp_loads, mp_dumps)
    dgramc("cbor", "cbor", cbor2.loads, cbor2.dumps)
    composition()
    refused("msgpack", [msgpack.packb(2**64 - 1), msgpack.packb(b"bin"), msgpack.packb({1: 2}),
                        msgpack.packb(float("nan")), msgpack.packb(None) + b"\xc0",
                        msgpack.packb(msgpack.ExtType(1, b"x"))], msgpack.packb({"ok": 1}))
    refused("cbor", [cbor2.dumps(2**64 - 1), cbor2.dumps(-2**64), cbor2.dumps(b"bytes"),
                     cbor2.dumps(cbor2.CBORTag(1, 0)), cbor2.dumps(2**70), cbor2.dumps(float("inf")),
                     cbor2.dumps({1: 2}), b"\xf6\xf6"], cbor2.dumps({"ok": 1}))
    return CHECKS.result()


if __name__ == "__main__":
    sys.exit(main())
