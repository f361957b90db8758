#!/usr/bin/env python3
"""The dns plugin checked with real clients, dig (bind9-dnsutils) and kdig
(knot-dnsutils), against the real daemon on loopback: every record type,
NXDOMAIN, NODATA, REFUSED, EDNS buffer sizes, TC=1 with a large TXT set,
name compression seen in the wire size, and hostile queries over a raw
socket (rejected with FORMERR or not answered, the daemon still serving).
Expected values come from tests/fixtures/dns/zones.json. The plugin serves
UDP only: dig +tcp gets "connection refused", checked here too.
Skipped (exit 77) when dig or kdig is missing."""
import os
import re
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsutil  # noqa: E402

CHECKS = dnsutil.Checks()
check = CHECKS.check


def records(zone, owner, rtype):
    """Expected +short lines for owner/type, from the fixture."""
    origin = zone["origin"].rstrip(".") + "."

    def fq(n):
        return origin if n == "@" else n if n.endswith(".") else n + "." + origin
    out = []
    for r in zone["records"]:
        if fq(r["name"]) != owner or r["type"] != rtype:
            continue
        d = r["data"]
        if rtype in ("CNAME", "NS"):
            out.append(fq(d))
        elif rtype == "MX":
            out.append("%d %s" % (d["preference"], fq(d["exchange"])))
        elif rtype == "TXT":
            parts = d if isinstance(d, list) else [d]
            out.append(" ".join('"%s"' % p.replace('"', '\\"') for p in parts))
        else:
            out.append(d)
    return sorted(out)


def short(port, tool, name, rtype, *extra):
    out = dnsutil.dig(port, name, rtype, "+short", *extra, tool=tool)
    return sorted(l for l in out.splitlines() if l and not l.startswith(";"))


def status(out):
    m = re.search(r"status: (\w+)", out)
    return m.group(1) if m else None


def count(out, sec):
    m = re.search(sec + r": (\d+)", out)
    return int(m.group(1)) if m else -1


def size(out):
    m = re.search(r"MSG SIZE\s+rcvd: (\d+)", out) or re.search(r"Received (\d+) B", out)
    return int(m.group(1)) if m else -1


def types_and_negatives(port, zone):
    soa = zone["soa"]
    for tool in ("dig", "kdig"):
        for owner, rtype in (("www.example.com.", "A"), ("www.example.com.", "AAAA"),
                             ("alias.example.com.", "CNAME"), ("example.com.", "MX"),
                             ("txt.example.com.", "TXT"), ("example.com.", "NS")):
            want = records(zone, owner, rtype)
            got = short(port, tool, owner, rtype)
            check("%s %s %s" % (tool, owner, rtype), got == want and want, "got %s want %s" % (got, want))
        got = short(port, tool, "example.com", "SOA")
        want = "ns1.example.com. hostmaster.example.com. %d %d %d %d %d" % (
            soa["serial"], soa["refresh"], soa["retry"], soa["expire"], soa["minimum"])
        check("%s example.com SOA" % tool, got == [want], "got %s" % got)
        out = dnsutil.dig(port, "nx.example.com", "A", tool=tool)
        check("%s NXDOMAIN" % tool, status(out) == "NXDOMAIN" and "SOA" in out and " aa" in out, out)
        out = dnsutil.dig(port, "www.example.com", "MX", tool=tool)
        check("%s NODATA" % tool, status(out) == "NOERROR" and count(out, "ANSWER") == 0 and
              count(out, "AUTHORITY") == 1 and "SOA" in out, out)
        out = dnsutil.dig(port, "www.example.net", "A", tool=tool)
        check("%s REFUSED" % tool, status(out) == "REFUSED" and count(out, "ANSWER") == 0, out)
        # A CNAME chain: followed inside the zone to the data.
        got = short(port, tool, "chain.example.com", "A")
        check("%s CNAME chain" % tool, got == sorted(["alias.example.com.", "www.example.com."] +
                                                      records(zone, "www.example.com.", "A")), got)


def edns_and_truncation(port):
    for tool, noedns in (("dig", "+noedns"), ("kdig", "+noedns")):
        out = dnsutil.dig(port, "big.example.com", "TXT", "+ignore", "+bufsize=1232", tool=tool)
        check(tool + " big TXT set: TC=1", re.search(r"flags:[a-z ]* tc", out, re.I) and
              count(out, "ANSWER") == 0 and 0 < size(out) <= 1232, out)
        out = dnsutil.dig(port, "big.example.com", "TXT", "+ignore", noedns, tool=tool)
        check(tool + " big TXT without EDNS: TC=1 in 512 bytes",
              re.search(r"flags:[a-z ]* tc", out, re.I) and 0 < size(out) <= 512, out)
        # The requestor's size is honoured: this answer fits 512 only with EDNS.
        out = dnsutil.dig(port, "example.com", "MX", "+bufsize=600", tool=tool)
        check(tool + " EDNS: the OPT record echoed with our size",
              re.search(r"udp: 1232|UDP size: 1232", out) is not None and "tc" not in re.search(r"flags:[a-z ]*", out, re.I).group(0), out)
    out = dnsutil.dig(port, "big.example.com", "TXT", "+tcp")
    check("dig +tcp: not supported (UDP only), the connection is refused",
          "connection refused" in out or "communications error" in out, out)


def larger_payload(zone):
    """max_payload 4096: the big TXT set fits a 4096-byte EDNS buffer and is
    truncated for a 1232-byte one."""
    conf = dict(zone_config(), max_payload=4096)
    d = dnsutil.Dgramd(conf, {"amplification": {"factor": 0}, "max_datagram": 4096})
    try:
        for tool in ("dig", "kdig"):
            out = dnsutil.dig(d.port, "big.example.com", "TXT", "+ignore", "+bufsize=4096", tool=tool)
            n = len(records(zone, "big.example.com.", "TXT"))
            check(tool + " big TXT in a 4096-byte buffer: all %d records" % n,
                  count(out, "ANSWER") == n and 1232 < size(out) <= 4096, out)
            out = dnsutil.dig(d.port, "big.example.com", "TXT", "+ignore", "+bufsize=1400", tool=tool)
            check(tool + " big TXT in a 1400-byte buffer: TC=1",
                  re.search(r"flags:[a-z ]* tc", out, re.I) and size(out) <= 1400, out)
    finally:
        d.stop()


def shipped():
    """conf/examples/dns.json as shipped (its port aside): every answer of
    its zone passes its own amplification factor whole, with dig's default
    query (EDNS and a cookie) and kdig's (EDNS, no cookie)."""
    with open(os.path.join(dnsutil.SRC, "conf/examples/dns.json")) as f:
        text = f.read()
    check("shipped dns.json binds 127.0.0.1:5353", '"127.0.0.1:5353"' in text)
    d = dnsutil.Dgramd(text=text.replace('"127.0.0.1:5353"', '"127.0.0.1:0"'))
    try:
        for tool in ("dig", "kdig"):
            for name, rtype in (("example.com", "MX"), ("example.com", "NS"), ("example.com", "SOA"),
                                ("ftp.example.com", "AAAA"), ("nx.example.com", "TXT")):
                out = dnsutil.dig(d.port, name, rtype, "+ignore", tool=tool)
                flags = re.search(r"flags:[a-z ]*", out, re.I)
                check("shipped dns.json, %s %s %s: whole (no TC), %d bytes" % (tool, name, rtype, size(out)),
                      status(out) in ("NOERROR", "NXDOMAIN") and flags and "tc" not in flags.group(0) and
                      count(out, "ANSWER") + count(out, "AUTHORITY") > 0, out)
    finally:
        d.stop()


def guarded():
    """At the default amplification factor (3) an answer over a new peer's
    credit goes out truncated (TC=1, no larger than the query plus the OPT
    record), never dropped: the client knows to retry elsewhere."""
    d = dnsutil.Dgramd(listener={"amplification": {"factor": 3}})
    try:
        out = dnsutil.dig(d.port, "example.com", "MX", "+ignore", "+nocookie")
        flags = re.search(r"flags:[a-z ]*", out)
        check("factor 3: a 234-byte answer to a 40-byte query is sent truncated (%d bytes)" % size(out),
              flags and " tc" in flags.group(0) and count(out, "ANSWER") == 0 and 0 < size(out) <= 40 + 11, out)
        out = dnsutil.dig(d.port, "nx.example.com", "A", "+ignore", "+nocookie")
        check("factor 3: a 94-byte NXDOMAIN fits the credit whole", status(out) == "NXDOMAIN" and
              count(out, "AUTHORITY") == 1, out)
    finally:
        d.stop()


def small_datagram():
    """A listener max_datagram below max_payload bounds the reply too: an
    answer over it (the host refuses it, DG_E2BIG) goes out truncated."""
    d = dnsutil.Dgramd(listener={"amplification": {"factor": 0}, "max_datagram": 200})
    try:
        out = dnsutil.dig(d.port, "txt.example.com", "TXT", "+ignore", "+bufsize=1232", "+nocookie")
        flags = re.search(r"flags:[a-z ]*", out)
        check("max_datagram 200: a %d-byte reply fits whole (no cookie: 28 bytes more)" % size(out),
              flags and " tc" not in flags.group(0) and count(out, "ANSWER") == 1 and size(out) <= 200, out)
        out = dnsutil.dig(d.port, "example.com", "MX", "+ignore", "+bufsize=1232")
        flags = re.search(r"flags:[a-z ]*", out)
        check("max_datagram 200: the 234-byte MX answer is sent truncated (%d bytes)" % size(out),
              flags and " tc" in flags.group(0) and count(out, "ANSWER") == 0 and 0 < size(out) <= 200, out)
    finally:
        d.stop()


def config_errors():
    """dgramd -t names the key path of a bad dns config: the host checks
    the declared options, the plugin its zones."""
    import json
    import subprocess
    import tempfile
    cases = [
        ({"max_payload": 100, "zones": []}, "listeners[0].handler.config.max_payload"),
        ({"max_payload": 1232}, "handler.config.zones"),
        ({"zones": [{"origin": "example.com", "soa": dnsutil.zones()["zones"][0]["soa"],
                     "records": [{"name": "www", "type": "A", "data": "not an address"}]}]},
         "config.zones[0].records[0].data: expected an IPv4 address"),
    ]
    for cfg, want in cases:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"listeners": [{"name": "dns", "bind": "127.0.0.1:0", "codec": "raw",
                                      "handler": {"plugin": "dns", "config": cfg}}]}, f)
        r = subprocess.run([os.path.join(dnsutil.BUILD, "dgramd"), "-t", "-c", f.name, "-P",
                            os.path.join(dnsutil.BUILD, "plugins/.libs")],
                           capture_output=True, text=True, timeout=30)
        os.unlink(f.name)
        check("dgramd -t: %s" % want, r.returncode == 1 and want in r.stdout + r.stderr,
              r.stdout + r.stderr)


def zone_config():
    return dnsutil.zones()


def ask(port, msg, timeout=0.5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(msg, ("127.0.0.1", port))
        return s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()


def names_in(reply):
    """Walk a reply (header, question, records); return the literal name
    suffixes written (a compressed reply writes none twice)."""
    pos, seen = 12, []
    qd, an, ns, ar = struct.unpack(">4H", reply[4:12])

    def name(pos):
        labels = []
        while True:
            l = reply[pos]
            if l & 0xC0 == 0xC0:
                pos += 2
                break
            pos += 1
            if l == 0:
                break
            labels.append(reply[pos - 1:pos + l])
            pos += l
        for i in range(len(labels)):
            seen.append(b"".join(labels[i:]).lower())
        return pos
    for _ in range(qd):
        pos = name(pos) + 4
    for _ in range(an + ns + ar):
        pos = name(pos)
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype in (2, 5):
            name(pos)
        elif rtype == 15:
            name(pos + 2)
        elif rtype == 6:
            name(name(pos))
        pos += rdlen
    return seen, pos


def query(name, qtype=1, qid=0x4242, flags=0x0100, opt=b""):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
    return struct.pack(">6H", qid, flags, 1, 0, 0, 1 if opt else 0) + wire + struct.pack(">HH", qtype, 1) + opt


def compression(port):
    for q in ("www.example.com", "example.com"):
        for qtype in (1, 15):
            reply = ask(port, query(q, qtype))
            seen, end = names_in(reply)
            dup = [s for s in set(seen) if seen.count(s) > 1]
            out = dnsutil.dig(port, q, "MX" if qtype == 15 else "A", "+noedns")
            check("compression: %s type %d: no name written twice, dig's size %d = ours" % (q, qtype, size(out)),
                  not dup and end == len(reply) and size(out) == len(reply), "dups %s" % dup)
    # The same answer uncompressed would be larger: every name in full.
    reply = ask(port, query("www.example.com"))
    seen, _ = names_in(reply)
    check("compression saves bytes: %d-byte reply, %d owner names" % (len(reply), reply.count(b"\xc0")),
          reply.count(b"\xc0") >= 6)


def hostile(port):
    h = lambda qd=1, an=0, ns=0, ar=0, flags=0x0100: struct.pack(">6H", 0x5151, flags, qd, an, ns, ar)
    q = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
    cases = [
        ("compression pointer loop", h() + b"\xc0\x0c\x00\x01\x00\x01", 1),
        ("pointer to itself in a label chain", h() + b"\x03www\xc0\x0c\x00\x01\x00\x01", 1),
        ("forward pointer", h() + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 30, 1),
        ("label past the end", h() + b"\x3fwww", 1),
        ("no terminating root label", h() + b"\x03www\x07example", 1),
        ("extended label type 0x40", h() + b"\x41" + b"a" * 10 + b"\x00\x00\x01\x00\x01", 1),
        ("QDCOUNT 0", h(qd=0) + q, 1),
        ("QDCOUNT 2", h(qd=2) + q + q, 1),
        ("QDCOUNT 2, one question", h(qd=2) + q, 1),
        ("ANCOUNT 1 that lies", h(an=1) + q, 1),
        ("ARCOUNT 1 without a record", h(ar=1) + q, 1),
        ("trailing garbage", h() + q + b"junk", 1),
        ("name over 255 bytes", h() + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01", 1),
        ("OPT option past its rdata", h(ar=1) + q + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x08", 1),
        ("opcode NOTIFY", h(flags=0x2000) + q, 4),
        ("a response (QR=1): not answered", h(flags=0x8100) + q, None),
        ("shorter than a header: not answered", b"\x51\x51\x01", None),
        ("empty datagram: not answered", b"", None),
    ]
    for name, msg, rcode in cases:
        reply = ask(port, msg, timeout=0.3 if rcode is None else 2)
        if rcode is None:
            check("hostile: " + name, reply is None, repr(reply))
        else:
            check("hostile: %s -> rcode %d" % (name, rcode), reply is not None and reply[:2] == b"\x51\x51" and
                  reply[3] & 0xF == rcode and reply[2] & 0x80 and len(reply) <= max(12, len(msg)), repr(reply))
    opt_v1 = b"\x00\x00\x29\x04\xd0\x00\x01\x00\x00\x00\x00"
    reply = ask(port, query("www.example.com", opt=opt_v1))
    check("EDNS version 1 -> BADVERS (extended rcode 16)", reply is not None and reply[3] & 0xF == 0 and
          reply[-11:][5] == 1 and struct.unpack(">H", reply[6:8])[0] == 0, repr(reply))
    reply = ask(port, query("www.example.com"))
    check("still answering after the hostile queries", reply is not None and reply[3] & 0xF == 0 and
          struct.unpack(">H", reply[6:8])[0] == 2)


def main():
    dnsutil.need("dig", "kdig")
    zone = dnsutil.zones()["zones"][0]
    d = dnsutil.Dgramd()
    try:
        types_and_negatives(d.port, zone)
        edns_and_truncation(d.port)
        compression(d.port)
        hostile(d.port)
    finally:
        d.stop()
    larger_payload(zone)
    shipped()
    guarded()
    small_datagram()
    config_errors()
    return CHECKS.result()


if __name__ == "__main__":
    sys.exit(main())
