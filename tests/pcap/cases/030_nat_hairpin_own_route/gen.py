#!/usr/bin/python3
"""030 Hairpinning yields to a VDC's own routes: a packet from a VDC domain
to a published address is hairpinned only when that domain has no route of
its own for the address (a default route does not count). Domain 7 routes
198.51.100.0/24 to its own router 10.0.0.30 (its address space overlaps
ours), so 10.0.0.20 -> 198.51.100.7:3389 goes there untranslated. Domain 8
has only a default route, so 10.0.8.20 -> 198.51.100.7:3389 is hairpinned
to 10.0.0.5 from domain 7's gateway address."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP  # noqa: E402

OUT = out_dir(__file__)
VDC, VDC8 = "02:00:00:00:00:07", "02:00:00:00:00:08"
W5, H20, R30 = "02:00:00:07:00:05", "02:00:00:07:00:14", "02:00:00:07:00:1e"
H8_20 = "02:00:00:08:00:14"
PUB, GW7 = "198.51.100.7", "10.0.0.254"


def syn(src_mac, port_mac, src, sport, ip_id):
    return build(Ether(src=src_mac, dst=port_mac) /
                 IP(src=src, dst=PUB, id=ip_id, flags="DF") /
                 TCP(sport=sport, dport=3389, flags="S", seq=100))


own = syn(H20, VDC, "10.0.0.20", 41000, 1)
hair = syn(H8_20, VDC8, "10.0.8.20", 42000, 2)
write(OUT, "send-vdc.pcap", [own])
write(OUT, "send-vdc8.pcap", [hair])
write(OUT, "expect-vdc.pcap", [routed(own, VDC, R30),
                               translated(hair, VDC, W5, src=GW7, dst="10.0.0.5", sport=1024,
                                          dport=3389)])
