#!/usr/bin/python3
"""001 forwarding: packets between two subnets, on-link and through gateways.
Each forwarded packet leaves with the egress port's MAC as source, the next
hop's MAC as destination, TTL - 1 and a recomputed header checksum; nothing
else changes."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"  # the ports


def host_a(n):
    return "02:00:00:01:00:%02x" % n


def host_b(n):
    return "02:00:00:02:00:%02x" % n


GW_A = host_a(0xFE)      # 10.0.1.254: 198.51.100.0/24 and the default route
GW_B = host_b(0xFE)      # 10.0.2.254: 192.0.2.0/24
GW_B_25 = host_b(0xFD)   # 10.0.2.253: 192.0.2.128/25 (longest prefix wins)
ONLINK = {"203.0.113.5": "02:00:00:03:00:05", "203.0.113.6": "02:00:00:03:00:06"}

send_a, expect_b = [], []
send_b, expect_a = [], []


def a_to_b(p, next_hop_mac):
    send_a.append(build(p))
    expect_b.append(routed(p, B, next_hop_mac))


def b_to_a(p, next_hop_mac):
    send_b.append(build(p))
    expect_a.append(routed(p, A, next_hop_mac))


# a → b: every on-link host of b, several protocols and sizes.
for h in range(2, 10):
    a_to_b(Ether(src=host_a(2), dst=A) / IP(src="10.0.1.2", dst=f"10.0.2.{h}", id=100 + h) /
           UDP(sport=40000 + h, dport=9000) / Raw(bytes(range(h * 10 % 256)) * 2), host_b(h))
a_to_b(Ether(src=host_a(3), dst=A) / IP(src="10.0.1.3", dst="10.0.2.2", tos=0x10, flags="DF") /
       TCP(sport=33000, dport=22, flags="S", seq=12345, options=[("MSS", 1460)]), host_b(2))
a_to_b(Ether(src=host_a(4), dst=A) / IP(src="10.0.1.4", dst="10.0.2.3", ttl=255) /
       ICMP(type=8, id=7, seq=1) / Raw(b"ping" * 8), host_b(3))
a_to_b(Ether(src=host_a(4), dst=A) / IP(src="10.0.1.4", dst="10.0.2.3", ttl=2) /
       UDP(sport=1, dport=2), host_b(3))  # leaves with TTL 1
# through gateways: /24 via .254, the /25 inside it via .253
a_to_b(Ether(src=host_a(5), dst=A) / IP(src="10.0.1.5", dst="192.0.2.10") /
       ICMP(type=8, id=8, seq=2) / Raw(b"x" * 56), GW_B)
a_to_b(Ether(src=host_a(5), dst=A) / IP(src="10.0.1.5", dst="192.0.2.127") /
       UDP(sport=5, dport=6), GW_B)
a_to_b(Ether(src=host_a(5), dst=A) / IP(src="10.0.1.5", dst="192.0.2.128") /
       UDP(sport=5, dport=6), GW_B_25)
a_to_b(Ether(src=host_a(5), dst=A) / IP(src="10.0.1.5", dst="192.0.2.200") /
       TCP(sport=80, dport=8080, flags="PA") / Raw(b"GET / HTTP/1.1\r\n\r\n"), GW_B_25)
# an on-link route without a gateway: the destination itself is the next hop
for dst, mac in ONLINK.items():
    a_to_b(Ether(src=host_a(2), dst=A) / IP(src="10.0.1.2", dst=dst) /
           UDP(sport=7, dport=7) / Raw(b"echo"), mac)
# a full 1500-byte packet fits the default MTU; a bare 20-byte header too
a_to_b(Ether(src=host_a(2), dst=A) / IP(src="10.0.1.2", dst="10.0.2.9", flags="DF") /
       UDP(sport=9, dport=9) / Raw(b"\xab" * (1500 - 28)), host_b(9))
a_to_b(Ether(src=host_a(2), dst=A) / IP(src="10.0.1.2", dst="10.0.2.9", proto=253), host_b(9))

# b → a: every on-link host of a, a gateway route and the default route.
for h in range(2, 6):
    b_to_a(Ether(src=host_b(2), dst=B) / IP(src="10.0.2.2", dst=f"10.0.1.{h}") /
           UDP(sport=9000, dport=40000 + h) / Raw(b"answer %d" % h), host_a(h))
b_to_a(Ether(src=host_b(3), dst=B) / IP(src="10.0.2.3", dst="198.51.100.7") /
       TCP(sport=1234, dport=443, flags="S"), GW_A)
b_to_a(Ether(src=GW_B, dst=B) / IP(src="192.0.2.50", dst="10.0.1.2") /
       UDP(sport=123, dport=123) / Raw(b"\x00" * 48), host_a(2))
b_to_a(Ether(src=host_b(4), dst=B) / IP(src="10.0.2.4", dst="100.64.1.1", ttl=128) /
       ICMP(type=8, id=9, seq=3), GW_A)

write(OUT, "send-a.pcap", send_a)
write(OUT, "send-b.pcap", send_b)
write(OUT, "expect-a.pcap", expect_a)
write(OUT, "expect-b.pcap", expect_b)
