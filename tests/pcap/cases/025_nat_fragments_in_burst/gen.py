#!/usr/bin/python3
"""025 NAT, fragments in order within one burst (see 024 for the rest).

A datagram's fragments usually arrive back to back, so in one burst. A later
fragment that arrives after its first fragment follows it (it does not wait:
nat_fragments_followed, not nat_fragments_held) and keeps its place: the
packets leave in the order they came, here A1 A2 A3 X, where X is the next
(unfragmented) datagram of A's flow, and likewise for traffic NAT does not
touch (D1 D2 D3 Y to a LAN host).

- A: user:40000 -> 198.51.100.7:27015 (gw 10.0.0.254 port 1024), 3 fragments,
  then X, a whole datagram of the same flow.
- D: user -> 192.0.2.50 (LAN, no NAT), 3 fragments, then Y of the same flow."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC, LAN = "02:00:00:00:00:01", "02:00:00:00:00:07", "02:00:00:00:00:0b"
ROUTER, W5, L50 = "02:00:00:aa:00:fe", "02:00:00:07:00:05", "02:00:00:0b:00:32"
PUB, GW, USER = "198.51.100.7", "10.0.0.254", "203.0.113.10"


def datagram(dst, sport, dport, ip_id, size):
    data = bytes((i * 7 + ip_id) % 256 for i in range(size))
    return build(Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=dst, id=ip_id) /
                 UDP(sport=sport, dport=dport) / Raw(data))


def fragment(p, sizes):
    ip = p[IP]
    data = raw(ip.payload)
    assert sum(sizes) == len(data) and all(s % 8 == 0 for s in sizes[:-1])
    out, off = [], 0
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        out.append(build(Ether(src=p[Ether].src, dst=p[Ether].dst) /
                         IP(src=ip.src, dst=ip.dst, id=ip.id, ttl=ip.ttl, tos=ip.tos,
                            proto=ip.proto, flags=0 if last else "MF", frag=off // 8) /
                         Raw(data[off:off + n])))
        off += n
    return out


SIZES = [400, 400, 208]
a = datagram(PUB, 40000, 27015, 0x0a00, 1000)
x = datagram(PUB, 40000, 27015, 0x0a01, 64)
d = datagram("192.0.2.50", 33000, 9000, 0x0d00, 1000)
y = datagram("192.0.2.50", 33000, 9000, 0x0d01, 64)


def to_inner(p):
    return translated(p, VDC, W5, src=GW, dst="10.0.0.5", sport=1024, dport=28015)


send_up = fragment(a, SIZES) + [x] + fragment(d, SIZES) + [y]
expect_vdc = fragment(to_inner(a), SIZES) + [to_inner(x)]
expect_lan = fragment(routed(d, LAN, L50), SIZES) + [routed(y, LAN, L50)]

write(OUT, "send-up.pcap", send_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
write(OUT, "expect-lan.pcap", expect_lan)
