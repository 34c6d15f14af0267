#!/usr/bin/python3
"""036 Firewall and IPv4 fragments: a datagram's fate is its first
fragment's (the only one with ports). When the firewall refuses the first
fragment, every later fragment of that datagram (same source, destination,
protocol and IP id) is dropped too, counted as fragment_first_dropped,
whether it arrives after the first, before it in the same burst, or a burst before it
(held, then released as a drop). An accepted datagram's later fragments
follow it translated (case 024).

Policy uplink -> vdc-7, default drop: "game" (udp dport 28015, i.e. .7:27015
after DNAT) accepts, "tftp" (udp dport 69) rejects. User 203.0.113.10:
- A :40000 -> .7:27015, 3 fragments in order (round 0): accepted (gateway
  port 1024), all three translated.
- B :40001 -> .7:27016, 3 fragments in order (round 0): the first hits the
  default drop (fw_denied); the two later ones follow it
  (fragment_first_dropped x 2).
- C :40002 -> .7:27016, 3 fragments: the two later ones in round 0 (held,
  nat_fragments_held), the first in round 1 (fw_denied): the held ones are
  released as drops (fragment_first_dropped x 2).
- D :40003 -> .7:27016, 2 fragments, the later one first in the same burst
  (round 0): fw_denied, fragment_first_dropped.
- E :40004 -> .7:69, 2 fragments (round 0): the first is rejected
  (fw_rejected; ICMP 3/13 from 198.51.100.1 quoting that first fragment),
  the later one is dropped (fragment_first_dropped) and not answered (no ICMP error about
  a non-first fragment, RFC 1812 §4.3.2.7).
- F :40005 -> .7:27015, 2 fragments, the later one in round 0 (held), the
  first in round 1: accepted (gateway port 1025); the held fragment leaves
  translated right after it."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER, W5 = "02:00:00:aa:00:fe", "02:00:00:07:00:05"
OWN, PUB, GW, USER = "198.51.100.1", "198.51.100.7", "10.0.0.254", "203.0.113.10"


def datagram(sport, dport, ip_id, size):
    data = bytes((i * 7 + ip_id) % 256 for i in range(size))
    return build(Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=PUB, id=ip_id) /
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


def inward(p, gw_port):
    return translated(p, VDC, W5, src=GW, dst="10.0.0.5", sport=gw_port, dport=28015)


a = datagram(40000, 27015, 0x3600, 1000)
b = datagram(40001, 27016, 0x3601, 1000)
c = datagram(40002, 27016, 0x3602, 1000)
d = datagram(40003, 27016, 0x3603, 600)
e = datagram(40004, 69, 0x3604, 600)
f = datagram(40005, 27015, 0x3605, 600)
A, B, C = fragment(a, SIZES3), fragment(b, SIZES3), fragment(c, SIZES3)
D, E, F = fragment(d, SIZES2), fragment(e, SIZES2), fragment(f, SIZES2)

R = [dict(up=[]), dict(up=[])]
R[0]["up"] = A + B + C[1:] + [D[1], D[0]] + E + [F[1]]
R[1]["up"] = [C[0], F[0]]
expect_vdc = fragment(inward(a, 1024), SIZES3) + fragment(inward(f, 1025), SIZES2)
expect_up = [icmp_error(E[0], 3, 13, OWN, UP, ROUTER, 1)]

send = rounds(R)
write(OUT, "send-up.pcap", send["up"])
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
if len(sys.argv) == 1:
    print("eth_not_for_us:", count_fillers(send))
