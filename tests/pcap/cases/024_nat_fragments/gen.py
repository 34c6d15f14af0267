#!/usr/bin/python3
"""024 NAT and IPv4 fragments (RFC 4787 REQ-14: a NAT must handle fragments,
in order and out of order).

The first fragment carries the UDP header: it finds or makes the session and
is translated (its UDP checksum, which covers the whole datagram, updated
incrementally). Later fragments carry no ports: they get the addresses of
their first fragment (same source, destination, protocol and IP id) and a new
IP header checksum, nothing else. A later fragment that arrives before its
first waits (at most 100 ms) and leaves right after it; one whose first never
comes is dropped after 100 ms (nat_fragment_timeout). Fragments of traffic
NAT does not touch (user -> a LAN host in domain 0) pass as they are, in and
out of order, TTL - 1.

Datagrams (user = 203.0.113.10, .7 = 198.51.100.7, LAN host 192.0.2.50):
- A: user:40000 -> .7:27015 (gw port 1024), 3 fragments; X: a whole
  datagram of the same flow after A's last fragment.
- B: user:40001 -> .7:27015 (gw port 1025), 2 fragments, the last first in
  the same burst: it follows its first at once, in the order sent.
- G: user:40003 -> .7:27015 (gw port 1026), 2 fragments, the last a burst
  before the first: it waits and leaves right after its first.
- C: user:40002 -> .7:27015, a lone later fragment (its first never comes).
- D: user -> LAN host (no NAT), 3 fragments; E: the same, 2 fragments, the
  last first (same burst).
- F: the workload's reply to A's session, 3 fragments, translated back to
  .7:27015 -> user:40000.
Each datagram sent in order has its first fragment in the first round (each
port's first burst of 32, padded with frames for another MAC, dropped as
eth_not_for_us) and its later fragments in the second round, so that they
find the first fragment's record. Later fragments in the same burst as
their first: case 025.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC, LAN = "02:00:00:00:00:01", "02:00:00:00:00:07", "02:00:00:00:00:0b"
ROUTER, W5, L50 = "02:00:00:aa:00:fe", "02:00:00:07:00:05", "02:00:00:0b:00:32"
PUB, GW, USER = "198.51.100.7", "10.0.0.254", "203.0.113.10"

send = {"up": [], "vdc": []}
expect = {"up": [], "vdc": [], "lan": []}


def datagram(src_mac, port_mac, src, dst, sport, dport, ip_id, size, ttl=64):
    data = bytes((i * 7 + ip_id) % 256 for i in range(size))
    return build(Ether(src=src_mac, dst=port_mac) / IP(src=src, dst=dst, id=ip_id, ttl=ttl) /
                 UDP(sport=sport, dport=dport) / Raw(data))


def fragment(p, sizes):
    """`p` (a whole datagram) cut into fragments carrying `sizes` bytes of
    its IP payload each (all but the last a multiple of 8)."""
    ip = p[IP]
    data = raw(ip.payload)
    assert sum(sizes) == len(data) and all(s % 8 == 0 for s in sizes[:-1])
    out, off = [], 0
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        f = (Ether(src=p[Ether].src, dst=p[Ether].dst) /
             IP(src=ip.src, dst=ip.dst, id=ip.id, ttl=ip.ttl, tos=ip.tos, proto=ip.proto,
                flags=0 if last else "MF", frag=off // 8) / Raw(data[off:off + n]))
        out.append(build(f))
        off += n
    return out


SIZES3 = [400, 400, 208]  # UDP header + 1000 bytes
SIZES2 = [504, 104]       # UDP header + 600 bytes

FILLER = "02:00:00:99:99:99"  # another MAC: dropped as eth_not_for_us


def fill_burst(port, src_mac):
    """Pads `port`'s input to a whole burst of 32 so that what follows is
    handled in the next round (after held fragments were released)."""
    while len(send[port]) % 32:
        send[port].append(build(Ether(src=src_mac, dst=FILLER) /
                                IP(src="192.0.2.99", dst="192.0.2.98") / Raw(b"filler")))


a = datagram(ROUTER, UP, USER, PUB, 40000, 27015, 0x0a00, 1000)
a_out = fragment(translated(a, VDC, W5, src=GW, dst="10.0.0.5", sport=1024, dport=28015), SIZES3)
x = datagram(ROUTER, UP, USER, PUB, 40000, 27015, 0x0a01, 64)
x_out = translated(x, VDC, W5, src=GW, dst="10.0.0.5", sport=1024, dport=28015)
d = datagram(ROUTER, UP, USER, "192.0.2.50", 33000, 9000, 0x0d00, 1000)
d_out = fragment(routed(d, LAN, L50), SIZES3)
e = datagram(ROUTER, UP, USER, "192.0.2.50", 33001, 9000, 0x0e00, 600)
e1, e2 = fragment(e, SIZES2)
c = datagram(ROUTER, UP, USER, PUB, 40002, 27015, 0x0c00, 600)
b = datagram(ROUTER, UP, USER, PUB, 40001, 27015, 0x0b00, 600)
b1, b2 = fragment(b, SIZES2)
b_out = fragment(translated(b, VDC, W5, src=GW, dst="10.0.0.5", sport=1025, dport=28015), SIZES2)
g = datagram(ROUTER, UP, USER, PUB, 40003, 27015, 0x0a0b, 600)
g1, g2 = fragment(g, SIZES2)
g_out = fragment(translated(g, VDC, W5, src=GW, dst="10.0.0.5", sport=1026, dport=28015), SIZES2)
f = datagram(W5, VDC, "10.0.0.5", GW, 28015, 1024, 0x0f00, 1000, ttl=128)
f_out = fragment(translated(f, UP, ROUTER, src=PUB, dst=USER, sport=27015, dport=40000), SIZES3)

# Round 1. Uplink: A's and D's first fragments; E and B with their later
# fragment first in the same burst (they follow at once, in the order
# sent); C's and G's later fragments wait (C's is dropped 100 ms later).
send["up"] += [fragment(a, SIZES3)[0], fragment(d, SIZES3)[0], e2, e1,
               fragment(c, SIZES2)[1], b2, b1, g2]
fill_burst("up", ROUTER)
expect["vdc"] += [a_out[0], b_out[1], b_out[0]]
expect["lan"] += [d_out[0]] + fragment(routed(e, LAN, L50), SIZES2)[::-1]
# VDC port: the first fragment of the workload's reply F.
send["vdc"].append(fragment(f, SIZES3)[0])
fill_burst("vdc", W5)
expect["up"].append(f_out[0])

# Round 2: the later fragments of A, D and F follow their first fragments;
# X, a whole datagram of A's flow, comes after A's last fragment.
# G's first fragment releases its held later fragment right behind it.
send["up"] += fragment(a, SIZES3)[1:] + [x] + fragment(d, SIZES3)[1:] + [g1]
expect["vdc"] += a_out[1:] + [x_out] + g_out
expect["lan"] += d_out[1:]
send["vdc"] += fragment(f, SIZES3)[1:]
expect["up"] += f_out[1:]

assert len(send["up"]) < 64 and len(send["vdc"]) < 64
for port in ("up", "vdc"):
    write(OUT, f"send-{port}.pcap", send[port])
for port in ("up", "vdc", "lan"):
    write(OUT, f"expect-{port}.pcap", expect[port])
