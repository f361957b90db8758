#!/usr/bin/env python3
"""The dns plugin and NSD (Debian nsd) serve the same zones
(tests/fixtures/dns/zones.json; NSD's zone files are generated from it) on
two loopback ports; for a fixed set of queries, dig's view of both answers
must be the same: rcode, header flags, the EDNS line, every section (records
sorted, names lowercased: NSD keeps the case of its zone file, the plugin
lowercases names) and the message size (the same name compression).
dig runs with +ignore: a truncated answer is compared as it is, not
retried over TCP (the plugin serves UDP only).
Skipped (exit 77) when dig or nsd is missing."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsutil  # noqa: E402

QUERIES = [
    ("example.com", "SOA"), ("example.com", "NS"), ("example.com", "MX"),
    ("example.com", "TXT"), ("example.com", "A"), ("www.example.com", "A"),
    ("www.example.com", "AAAA"), ("ns1.example.com", "AAAA"), ("mail.example.com", "A"),
    ("txt.example.com", "TXT"),
    ("alias.example.com", "A"), ("chain.example.com", "AAAA"), ("alias.example.com", "CNAME"),
    ("dangling.example.com", "A"), ("out.example.com", "A"),
    ("nx.example.com", "A"), ("www.example.com", "MX"), ("a.b.example.com", "A"),
    ("b.example.com", "TXT"), ("deep.a.b.example.com", "AAAA"), ("www.example.com", "CAA"),
    ("x.sub.example.com", "A"), ("sub.example.com", "NS"), ("sub.example.com", "DS"),
    ("WWW.EXAMPLE.COM", "A"), ("wWw.ExAmPlE.cOm", "MX"), ("Example.Com", "MX"),
    ("NX.Example.COM", "TXT"),
    ("www.example.com", "A", "+noedns"), ("nx.example.com", "A", "+noedns"),
    ("example.com", "MX", "+noedns"), ("example.com", "MX", "+bufsize=512"),
    ("www.example.com", "A", "+dnssec"), ("big.example.com", "TXT"),
    ("big.example.com", "TXT", "+noedns"), ("big.example.com", "TXT", "+bufsize=4096"),
    ("www.example.org", "AAAA"), ("example.org", "SOA"), ("nx.example.org", "A"),
    ("www.example.net", "A"), ("com", "SOA"),
]

SECTIONS = ("ANSWER", "AUTHORITY", "ADDITIONAL")


def parse(out):
    view = {"status": None, "flags": None, "edns": None, "size": None}
    for s in SECTIONS:
        view[s] = []
    sec = None
    for line in out.splitlines():
        m = re.search(r"status: (\w+)", line)
        if m:
            view["status"] = m.group(1)
        m = re.match(r";; flags: ([a-z ]*);", line)
        if m:
            view["flags"] = " ".join(sorted(m.group(1).split()))
        if line.startswith("; EDNS:"):
            view["edns"] = line.strip()
        if line.startswith("; EDE:"):
            view["ede"] = line.strip()
        m = re.search(r"MSG SIZE\s+rcvd: (\d+)", line)
        if m:
            view["size"] = int(m.group(1))
        m = re.match(r";; (\w+) SECTION:", line)
        if m:
            sec = m.group(1) if m.group(1) in SECTIONS else None
            continue
        if sec and line and not line.startswith(";"):
            f = line.split(None, 4)
            if f[3] != "TXT":
                f = [x.lower() for x in f]
            else:
                f[0] = f[0].lower()
            view[sec].append(" ".join(f))
    for s in SECTIONS:
        view[s].sort()
    return view


SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"


def cookie_of(out):
    m = re.search(r"COOKIE: ([0-9a-fA-F]{48})", out)
    return m.group(1).lower() if m else None


def cookies_interoperate(dport, nport):
    """RFC 9018 cookies are interchangeable between servers sharing the
    secret: NSD's server cookie, sent to dgramd, is valid there (dgramd
    echoes a valid young cookie unchanged), and dgramd's is valid at NSD."""
    ok = True
    for src, dst, sname, dname in ((nport, dport, "nsd", "dgramd"), (dport, nport, "dgramd", "nsd")):
        c = cookie_of(dnsutil.dig(src, "www.example.com", "A", "+cookie"))
        back = cookie_of(dnsutil.dig(dst, "www.example.com", "A", "+cookie=" + (c or "")))
        good = c is not None and back == c
        ok = ok and good
        print("%s %s's server cookie is valid at %s: %s -> %s" % ("ok" if good else "FAIL", sname, dname, c, back))
    return ok


def main():
    dnsutil.need("dig", "nsd")
    data = dnsutil.zones()
    # Both answer DNS Cookies (dig sends one) with the same RFC 9018 secret.
    dg = dnsutil.Dgramd(dict(data, cookie_secret=SECRET))
    try:
        nsd = dnsutil.Nsd(data, cookie_secret=SECRET)
    except Exception:
        dg.stop()
        raise
    bad = 0
    try:
        for q in QUERIES:
            args = [q[0], q[1]] + list(q[2:]) + ["+ignore", "+noall", "+comments", "+answer", "+authority",
                                                 "+additional", "+stats"]
            a = parse(dnsutil.dig(dg.port, *args))
            b = parse(dnsutil.dig(nsd.port, *args))
            name = " ".join(q)
            if a["status"] is None:
                print("FAIL %s: no answer from dgramd" % name)
                bad += 1
            elif a != b:
                print("FAIL %s:\n  dgramd: %s\n  nsd:    %s" % (name, a, b))
                bad += 1
            else:
                print("ok %s: %s [%s] %d+%d+%d records, %d bytes" % (
                    name, a["status"], a["flags"], len(a["ANSWER"]), len(a["AUTHORITY"]),
                    len(a["ADDITIONAL"]), a["size"]))
        ok = cookies_interoperate(dg.port, nsd.port)
        bad += 0 if ok else 1
    finally:
        dg.stop()
        nsd.stop()
    print("DG-RESULT passed=%d failed=%d" % (len(QUERIES) + 1 - bad, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
