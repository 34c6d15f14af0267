#!/usr/bin/python3
"""029 NAT, ICMP errors the gateway itself raises about a translated packet.

A user's packet to a published resource is translated, then routed in the
VDC's domain, where forwarding may fail: TTL exceeded (RFC 1812 §5.3.1) or
too big for the VDC port with DF set (RFC 1191: fragmentation needed with the
next-hop MTU, which path MTU discovery depends on; a VDC behind a tunnel has
a smaller MTU than the internet path). The error must reach the user who
sent the packet, about the packet as the user sent it: here it comes from
the public address the user talked to (198.51.100.7, also an address of the
port it leaves by, RFC 1812 §4.3.2.4), like an error from inside the VDC
(case 022), TTL 64, TOS 0xc0, quoting the user's datagram as received
(untranslated), as every error the dataplane raises (pcapgen.icmp_error).

An error addressed to the translated packet's source would go to the
gateway address 10.0.0.254, i.e. to ourselves, and be lost."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER, W5 = "02:00:00:aa:00:fe", "02:00:00:07:00:05"
PUB, GW, USER = "198.51.100.7", "10.0.0.254", "203.0.113.10"


def from_user(sport, flags, ttl=64, data=b"", ip_id=1):
    p = (Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=PUB, ttl=ttl, id=ip_id, flags="DF") /
         TCP(sport=sport, dport=3389, flags=flags, seq=1000, ack=1 if "A" in flags else 0))
    return build(p / Raw(data) if data else p)


expired = from_user(50000, "S", ttl=1, ip_id=11)
syn = from_user(50001, "S", ip_id=12)
big = from_user(50001, "PA", data=b"\x17" * 1460, ip_id=13)  # 1500 bytes, DF

write(OUT, "send-up.pcap", [expired, syn, big])
write(OUT, "expect-vdc.pcap", [translated(syn, VDC, W5, src=GW, dst="10.0.0.5", sport=1025,
                                          dport=3389)])
write(OUT, "expect-up.pcap", [icmp_error(expired, 11, 0, PUB, UP, ROUTER, ip_id=1),
                              icmp_error(big, 3, 4, PUB, UP, ROUTER, ip_id=2, mtu=1400)])
