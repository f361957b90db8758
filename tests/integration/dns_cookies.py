#!/usr/bin/env python3
"""DNS Cookies (RFC 7873, RFC 9018) of the dns plugin against the real
daemon on loopback:
 - a spoofer floods the rate limit of a client's address (127.0.0.7, from
   another port: the per-source limit knows addresses, not ports) with 20
   queries, no cookie or a forged one, before each of the client's 30
   queries with its server cookie: the client gets all 30 answers, whole,
   and the spoofer stays limited; with "cookies": false (as before cookies)
   the client gets few (printed, for comparison);
 - what a spoofed query earns its victim in bytes, with and without a
   forged cookie (amplification factor 3, no rate limit);
 - dig and kdig: their client cookie comes back with a server cookie that
   this test recomputes (SipHash-2-4 of its own, the configured secret);
   over the amplification credit they get BADCOOKIE, retry with the cookie
   and get the whole answer;
 - two workers agree on cookies (host->secret): a cookie from one proves
   the source at the other.
Paced by answers (each query waits for its own answer), never by sleeping.
Skipped (exit 77) when dig or kdig is missing."""
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsutil  # noqa: E402

SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"
CHECKS = dnsutil.Checks()
check = CHECKS.check


def query(name, qtype, qid, cookie=None):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
    opts = struct.pack(">HH", 10, len(cookie)) + cookie if cookie is not None else b""
    return (struct.pack(">6H", qid, 0x0100, 1, 0, 0, 1) + wire + struct.pack(">HH", qtype, 1) +
            b"\0" + struct.pack(">HHIH", 41, 1232, 0, len(opts)) + opts)


def reply_cookie(r):
    """The COOKIE option of a reply (it ends with the OPT record)."""
    i = r.find(b"\x00\x0a\x00\x18")
    return r[i + 4:i + 28] if i >= 0 else None


def sock(ip, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.settimeout(timeout)
    return s


def answer(s, port, msg, qid):
    """Send msg, wait for the answer with id qid (bounded); None if none."""
    s.sendto(msg, ("127.0.0.1", port))
    try:
        while True:
            r = s.recv(4096)
            if r[:2] == struct.pack(">H", qid):
                return r
    except socket.timeout:
        return None


def config(cookies=True):
    c = dict(dnsutil.zones(), cookie_secret=SECRET)
    if not cookies:
        c["cookies"] = False
    return c


def flood(cookies, timeout):
    """The client's whole answers out of 30, under the spoofer's flood."""
    d = dnsutil.Dgramd(config(cookies), {"rate_limit": {"per_source": {"rate": 10, "burst": 10}},
                                         "amplification": {"factor": 3}})
    client, spoofer = sock("127.0.0.7", timeout), sock("127.0.0.7", timeout)
    whole = 0
    try:
        r = answer(client, d.port, query("example.com", 15, 1, b"clientck"), 1)
        cookie = reply_cookie(r) if r else None
        if cookies:
            check("the first query's answer carries a server cookie", cookie is not None, repr(r))
        cookie = cookie or b"clientck"
        forged = cookie[:-1] + bytes([cookie[-1] ^ 0x55])
        for i in range(30):
            for j in range(20):
                spoofer.sendto(query("example.com", 15, 0x8000 + j, forged if j % 2 else None),
                               ("127.0.0.1", d.port))
            r = answer(client, d.port, query("example.com", 15, 100 + i, cookie), 100 + i)
            if r and r[3] & 0xF == 0 and not r[2] & 0x02 and struct.unpack(">H", r[6:8])[0] == 2:
                whole += 1
    finally:
        client.close()
        spoofer.close()
        d.stop()
    return whole, d


def spoofing():
    whole, d = flood(True, 2.0)
    check("cookies: the client gets %d of 30 answers whole under the flood" % whole, whole == 30)
    check("cookies: 30 client queries proven (rx_proven %d)" % d.stat("rx_proven"), d.stat("rx_proven") == 30)
    check("cookies: the spoofer's 600 queries held by the limit (drop_rate_limited %d)" %
          d.stat("drop_rate_limited"), d.stat("drop_rate_limited") >= 600 - 10 - 30)
    before, d = flood(False, 0.3)
    print("info: without cookies the client got %d of 30 answers (drop_rate_limited %d)" %
          (before, d.stat("drop_rate_limited")))
    check("cookies off: the flood silences the client (%d of 30)" % before, before < 30)


def amplification():
    """Bytes the victim receives per spoofed byte, factor 3, no rate limit.
    The guard counts bytes on the wire: each datagram's payload plus 28 bytes
    of IPv4 and UDP headers, both ways."""
    d = dnsutil.Dgramd(config(), {"amplification": {"factor": 3}})
    held = []
    try:
        for what, cookie in (("no cookie", None), ("a client cookie", b"victimck"),
                             ("a forged server cookie", b"victimck" + b"\1\0\0\0" + b"x" * 12)):
            for ports in ("one port", "a port per query"):
                s = sock("127.0.0.9", 2.0)
                sent = got = replies = 0
                worst = -10**9
                for i in range(50):
                    if ports != "one port":
                        # A new session, no credit saved up: a port no earlier query of
                        # this test used (the old sockets stay open, so the kernel
                        # cannot hand one of their ports out again).
                        held.append(s)
                        s = sock("127.0.0.9", 2.0)
                    q = query("example.com", 15, 200 + i, cookie)
                    r = answer(s, d.port, q, 200 + i)
                    sent += len(q)
                    got += len(r) if r else 0
                    replies += 1 if r else 0
                    if r:
                        worst = max(worst, len(r) + 28 - 3 * (len(q) + 28))
                held.append(s)
                wire_in, wire_out = sent + 28 * 50, got + 28 * replies
                print("info: spoofed MX queries with %s, %s: %d bytes in, %d out: %.2f bytes out per byte in "
                      "(on the wire: %d in, %d out, %.2f)" %
                      (what, ports, sent, got, got / sent, wire_in, wire_out, wire_out / wire_in))
                check("amplification with %s, %s: %.2f <= 3 on the wire" % (what, ports, wire_out / wire_in),
                      0 < wire_out <= 3 * wire_in)
                if ports != "one port":
                    # A new session per query: each reply within its own query's credit.
                    check("... a port per query: no reply over 3 x its query on the wire (largest %d)" %
                          worst, worst <= 0)
    finally:
        for h in held:
            h.close()
        d.stop()


def dig_tools():
    d = dnsutil.Dgramd(config(), {"amplification": {"factor": 3}})
    secret = bytes.fromhex(SECRET)
    try:
        for tool in ("dig", "kdig"):
            out = dnsutil.dig(d.port, "www.example.com", "A", "+cookie", tool=tool)
            m = re.search(r"COOKIE: ([0-9a-fA-F]{48})", out)
            ok = False
            if m:
                c = bytes.fromhex(m.group(1))
                ts = struct.unpack(">I", c[12:16])[0]
                ok = (c[8:] == dnsutil.server_cookie(secret, c[:8], ts, "127.0.0.1") and
                      abs(ts - time.time()) < 300)
            check("%s +cookie: the answer's server cookie is RFC 9018's (version 1, now, "
                  "SipHash of the secret)" % tool, ok, out)
            out = dnsutil.dig(d.port, "example.com", "MX", "+cookie", "+ignore", tool=tool)
            check("%s +cookie, over the credit: BADCOOKIE, retried with the cookie, the whole answer" % tool,
                  re.search(r"BADCOOKIE|bad cookie", out) and re.search(r"ANSWER: 2", out) and
                  re.search(r"status: NOERROR", out) is not None, out)
    finally:
        d.stop()
    check("dig and kdig retries proven (rx_proven %d), badcookie at /metrics" % d.stat("rx_proven"),
          d.stat("rx_proven") >= 2)


def workers():
    """Two workers: cookies made by one are valid at the other (SO_REUSEPORT
    spreads source ports over both)."""
    d = dnsutil.Dgramd(dnsutil.zones(), {"amplification": {"factor": 3}}, workers=2)
    try:
        s = sock("127.0.0.1", 2.0)
        r = answer(s, d.port, query("example.com", 15, 1, b"workerck"), 1)
        s.close()
        cookie = reply_cookie(r) if r else None
        whole = 0
        for i in range(20):
            s = sock("127.0.0.1", 2.0)  # a new port each: either worker
            r = answer(s, d.port, query("example.com", 15, 10 + i, cookie or b"workerck"), 10 + i)
            s.close()
            whole += bool(r and r[3] & 0xF == 0 and struct.unpack(">H", r[6:8])[0] == 2)
    finally:
        d.stop()
    check("2 workers: the cookie proves the source at both (%d of 20 whole, rx_proven %d)" %
          (whole, d.stat("rx_proven")), whole == 20 and d.stat("rx_proven") == 20)


def main():
    dnsutil.need("dig", "kdig")
    spoofing()
    amplification()
    dig_tools()
    workers()
    return CHECKS.result()


if __name__ == "__main__":
    sys.exit(main())
