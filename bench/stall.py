#!/usr/bin/env python3
"""bench/stall.py: the traffic of one bench/stall.sh scenario against a
running dgramd, and the longest probe round trip meanwhile (the longest the
event loop kept a datagram waiting, near enough).

    stall.py READY-FILE SCENARIO

SCENARIO is timeouts, sweep or evict (see stall.sh for the configs). Peers
come from distinct 127.x.y.z sources: one socket bound to 0.0.0.0 sets each
datagram's source with IP_PKTINFO. After every BURST datagrams a probe goes
to the "probe" listener and must come back before the next burst (so the
daemon's socket buffers never overflow); once the traffic is sent, probes go
back to back until every timer of the scenario is due, plus two more.
Prints one line: scenario=... probes=... lost=... max_ms=... p50_ms=...
"""
import socket
import struct
import sys
import time

BURST = 256
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def listeners(path):
    out = {}
    with open(path) as f:
        for line in f:
            name, addr = line.split()
            host, port = addr.rsplit(":", 1)
            out[name] = (host, int(port))
    return out


class Load:
    def __init__(self, ls):
        self.ls = ls
        self.src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.src.bind(("0.0.0.0", 0))
        self.probe_fd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.probe_fd.settimeout(60)
        self.rtts = []
        self.lost = 0
        self.n = 0

    def probe(self):
        t0 = time.monotonic()
        self.probe_fd.sendto(b"ping", self.ls["probe"])
        try:
            self.probe_fd.recv(64)
        except socket.timeout:
            self.lost += 1
        self.rtts.append((time.monotonic() - t0) * 1000)
        self.n = 0

    def send(self, listener, src_host, data):
        pi = struct.pack("I4s4s", 0, struct.pack("!I", src_host), b"\0" * 4)
        self.src.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pi)], 0, self.ls[listener])
        self.n += 1
        if self.n == BURST:
            self.probe()

    def until(self, due):
        while time.monotonic() < due + 0.5:
            self.probe()
        self.probe()
        self.probe()


def timeouts(ld):
    # 64,000 requests held by echo past handler_timeout_ms (1 s).
    for i in range(64000):
        ld.send("t", 0x7F040000 + i % 16, b"t")
    ld.probe()
    ld.until(time.monotonic() + 1.0)


def busy_and_idle(ld, newcomers):
    for i in range(50000):
        ld.send("s", 0x7F010000 + i, b'{"busy":1}')
    for i in range(10000):
        ld.send("s", 0x7F020000 + i, b"not json")
    for i in range(newcomers):
        ld.send("s", 0x7F030000 + i, b"not json")
    ld.probe()


def sweep(ld):
    # 50,000 busy sessions, then 10,000 idle ones expiring after 1 s
    # (sweep every 250 ms).
    busy_and_idle(ld, 0)
    ld.until(time.monotonic() + 1.25)


def evict(ld):
    # The table (60,000) full of 50,000 busy and 10,000 idle sessions;
    # 2,000 newcomers should each evict an idle one.
    busy_and_idle(ld, 2000)
    ld.until(time.monotonic())


def main():
    ls = listeners(sys.argv[1])
    scenario = sys.argv[2]
    ld = Load(ls)
    ld.probe()
    {"timeouts": timeouts, "sweep": sweep, "evict": evict}[scenario](ld)
    r = sorted(ld.rtts)
    print("scenario=%s probes=%d lost=%d max_ms=%.1f p50_ms=%.2f" %
          (scenario, len(r), ld.lost, r[-1], r[len(r) // 2]))


if __name__ == "__main__":
    main()
