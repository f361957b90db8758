#!/usr/bin/env python3
"""Codec transforms against an independent implementation: a Python client
writes EasyNetwork's formats with the standard library (base64, hashlib,
hmac, zlib, bz2) and dgramd's echo answers in the same format, byte for
byte, 40 packets per transform and for the composition base64 -> zlib ->
json. Forged checksums, a wrong key, a truncated stream and a zlib bomb
never reach the plugin: they are dropped under their reason (drop_integrity,
drop_corrupt, drop_decoded_size), logged with it and never answered, and a
plugin with on_error (echo's error_reply) gets no error reply for them
while bad JSON still gets one. max_decoded defaults to 16 x max_datagram. Paced by answers (each packet waits for its own reply; a bad
datagram is followed by a good probe whose reply proves it was handled),
never by sleeping."""
import base64
import bz2
import hashlib
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
from dgutil import BUILD, Checks, Daemon  # noqa: E402

CHECKS = Checks()
check = CHECKS.check


KEY = bytes(range(7, 39))
WRONG = bytes(range(8, 40))


def b64(data, alphabet="urlsafe", checksum=None, key=None):
    if checksum == "sha256":
        data += hashlib.sha256(data).digest()
    elif checksum == "hmac":
        data += hmac.digest(key, data, "sha256")
    return (base64.urlsafe_b64encode if alphabet == "urlsafe" else base64.standard_b64encode)(data)


def unb64(data, alphabet="urlsafe", checksum=None, key=None):
    d = (base64.urlsafe_b64decode if alphabet == "urlsafe" else base64.standard_b64decode)(data)
    if checksum:
        d, tag = d[:-32], d[-32:]
        want = hashlib.sha256(d).digest() if checksum == "sha256" else hmac.digest(key, d, "sha256")
        assert hmac.compare_digest(want, tag), "bad checksum in a reply"
    return d


# name: (codec spec, encode, decode); JSON text in, wire bytes out.
def kinds(keyfile):
    hm = {"name": "base64", "checksum": "hmac-sha256", "key_file": keyfile}
    return {
        "b64": ({"payload": "json", "transforms": ["base64"]}, lambda d: b64(d), lambda w: unb64(w)),
        "b64std_sha": ({"payload": "json", "transforms": [
            {"name": "base64", "alphabet": "standard", "checksum": "sha256"}]},
            lambda d: b64(d, "standard", "sha256"), lambda w: unb64(w, "standard", "sha256")),
        "b64hmac": ({"payload": "json", "transforms": [hm]},
                    lambda d: b64(d, checksum="hmac", key=KEY), lambda w: unb64(w, checksum="hmac", key=KEY)),
        "zlib": ({"payload": "json", "transforms": [{"name": "zlib", "max_decoded": 4096}]},
                 lambda d: zlib.compress(d, 9), zlib.decompress),
        "bz2": ({"payload": "json", "transforms": ["bz2"]}, lambda d: bz2.compress(d, 9), bz2.decompress),
        "b64zlib": ({"payload": "json", "transforms": ["base64", {"name": "zlib", "level": 6}]},
                    lambda d: b64(zlib.compress(d, 6)), lambda w: zlib.decompress(unb64(w))),
        # No max_decoded: 16 x max_datagram = 16000 bytes.
        "zlibsized": ({"payload": "json", "transforms": ["zlib"]},
                      lambda d: zlib.compress(d, 9), zlib.decompress),
        # Signed and compressed, and a plugin that answers decode errors.
        "hmaczlib_err": ({"payload": "json", "transforms": [hm, {"name": "zlib", "max_decoded": 4096}]},
                         lambda d: b64(zlib.compress(d, 9), checksum="hmac", key=KEY),
                         lambda w: zlib.decompress(unb64(w, checksum="hmac", key=KEY))),
    }


# Listener settings beside the codec.
EXTRA = {"zlibsized": {"max_datagram": 1000}}
CONFIG = {"hmaczlib_err": {"error_reply": True}}


def packets():
    out = []
    for i in range(40):
        p = {"i": i, "s": "packet %d " % i + "é" * (i % 5), "l": list(range(i % 7)),
             "n": {"deep": [i, {"x": "y" * i}]}, "t": i % 2 == 0, "z": None}
        out.append(json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode())
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="dgtransforms")
    keyfile = os.path.join(tmp, "key")
    with open(keyfile, "wb") as f:
        f.write(base64.urlsafe_b64encode(KEY))  # as generate_key() writes it
    ks = kinds(keyfile)
    try:
        d = Daemon({"listeners": [dict({"name": n, "bind": "127.0.0.1:0", "codec": spec,
                                        "handler": {"plugin": "echo", "config": CONFIG.get(n, {})}},
                                       **EXTRA.get(n, {}))
                                  for n, (spec, _, _) in ks.items()]}, prefix="dgtransforms")
    except RuntimeError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        print("FAIL %s" % e)
        return 1
    ports = d.ports
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    bad = {}  # listener -> {counter: datagrams expected under it}
    try:
        def ask(name, wire):
            s.sendto(wire, ("127.0.0.1", ports[name]))
            return s.recv(70000)

        for name, (spec, enc, dec) in ks.items():
            same = decoded = 0
            for p in packets():
                r = ask(name, enc(p))
                same += r == enc(p)
                decoded += json.loads(dec(r)) == json.loads(p)
            check("%s: 40 packets echoed, decoded by Python (%d)" % (name, decoded), decoded == 40)
            check("%s: replies are Python's bytes exactly (%d of 40)" % (name, same), same == 40)

        probe = b'{"probe":1}'

        def count(name, counter):
            bad.setdefault(name, {})
            bad[name][counter] = bad[name].get(counter, 0) + 1

        def refused(name, wire, what, counter):
            """wire gets no reply: the probe after it gets the first one."""
            spec, enc, dec = ks[name]
            s.sendto(wire, ("127.0.0.1", ports[name]))
            r = ask(name, enc(probe))
            check("%s: %s never answered" % (name, what), r == enc(probe), repr(r[:60]))
            count(name, counter)

        p = packets()[3]
        tok = base64.urlsafe_b64decode(b64(p, checksum="hmac", key=KEY))
        forged = tok[:5] + bytes([tok[5] ^ 1]) + tok[6:]
        I, C, S = "drop_integrity", "drop_corrupt", "drop_decoded_size"
        refused("b64hmac", base64.urlsafe_b64encode(forged), "a forged packet (signature kept)", I)
        refused("b64hmac", b64(p, checksum="hmac", key=WRONG), "a packet signed with a wrong key", I)
        refused("b64hmac", b64(p, checksum="sha256"), "a sha256 checksum instead of a signature", I)
        refused("b64hmac", b64(p), "an unsigned packet", I)
        refused("b64hmac", b"not*base64", "bad base64", C)
        sha = base64.standard_b64decode(b64(p, "standard", "sha256"))
        refused("b64std_sha", base64.standard_b64encode(sha[:-1] + bytes([sha[-1] ^ 0x80])),
                "a bad checksum", I)
        refused("zlib", zlib.compress(p)[:-4], "a truncated stream", C)
        bomb = zlib.compress(b"\0" * (8 << 20), 9)
        refused("zlib", bomb, "a bomb (%d bytes inflating to 8 MiB, max_decoded 4096)" % len(bomb), S)
        refused("bz2", bz2.compress(b"\0" * (8 << 20), 9), "a bz2 bomb", S)
        refused("b64zlib", b64(zlib.compress(b"\0" * (1 << 20))), "a base64'd bomb", S)

        # max_decoded's default follows max_datagram (1000 -> 16000).
        _, enc, dec = ks["zlibsized"]
        fits = json.dumps({"a": "x" * 15900}).encode()
        r = ask("zlibsized", enc(fits))
        check("zlibsized: %d bytes inflated under the default max_decoded 16000" % len(fits),
              json.loads(dec(r)) == json.loads(fits))
        refused("zlibsized", enc(json.dumps({"a": "x" * 16100}).encode()),
                "16110 bytes inflated, over the default max_decoded 16000", S)

        # on_error sees bad JSON, never a forged or corrupt frame or a bomb.
        E = "hmaczlib_err"
        _, enc, dec = ks[E]
        z = zlib.compress(p, 9)
        refused(E, b64(z, checksum="hmac", key=WRONG), "a packet signed with a wrong key (on_error)", I)
        zt = base64.urlsafe_b64decode(b64(z, checksum="hmac", key=KEY))
        refused(E, base64.urlsafe_b64encode(zt[:3] + bytes([zt[3] ^ 4]) + zt[4:]),
                "a forged packet (on_error)", I)
        refused(E, b64(zlib.compress(b"\0" * (1 << 20), 9), checksum="hmac", key=KEY),
                "a signed bomb (on_error)", S)
        refused(E, b64(z[:-4], checksum="hmac", key=KEY), "a signed truncated stream (on_error)", C)
        r = ask(E, enc(b'{"bad json'))
        try:
            err = json.loads(dec(r))
        except Exception:  # noqa: BLE001 - any undecodable reply is a failure
            err = None
        check("%s: bad JSON still gets on_error's reply (%r)" % (E, err),
              isinstance(err, dict) and "error" in err)
        count(E, "decode_errors")
    finally:
        s.close()
        text = d.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def stat(listener, name):
        return d.stats(listener).get(name, -1)

    for name in ks:
        for counter in ("decode_errors", "drop_integrity", "drop_corrupt", "drop_decoded_size"):
            want = bad.get(name, {}).get(counter, 0)
            check("%s: %s %d == bad datagrams sent for it %d" % (name, counter, stat(name, counter), want),
                  stat(name, counter) == want)
    for reason in ("hmac-sha256 signature mismatch", "sha256 checksum mismatch",
                   "zlib: truncated stream", "zlib: decoded size over max_decoded",
                   "bz2: decoded size over max_decoded"):
        check("the log names the reason '%s'" % reason, reason in text)
    check("the key is never logged", base64.urlsafe_b64encode(KEY).decode()[:20] not in text)
    return CHECKS.result()


if __name__ == "__main__":
    sys.exit(main())
