#!/usr/bin/python3
"""035 Firewall reject of jumbo segments: the answer is as small as ever.

A reset answering a rejected TCP segment is a 40-byte IP packet (RFC 9293
§3.10.7.1; case 033), whatever the size of the segment it answers: the
frame ends after the TCP header, nothing of the rejected segment's data is
sent back. The same for segments that arrived as chained mbufs (frames over
2048 bytes on a 9000-byte port). An ICMP 3/13 quotes at most 576 - 28
bytes (RFC 1812 §4.3.2.3) of a jumbo datagram.

The uplink's burst (user 203.0.113.10, uplink MTU 9000):
1 SYN + 3000 bytes :40000 -> .7:23 (the published port, rule "telnet")
                                    -> RST+ACK seq 0 ack ISN+3001, 54 bytes
2 SYN + 4000 bytes :40001 -> .1:23 (the gateway, rule "mgmt-telnet")
                                    -> RST+ACK seq 0 ack ISN+4001, 54 bytes
3 SYN :40002 -> .1:23 (a small frame, one mbuf)
                                    -> RST+ACK, 54 bytes
4 UDP + 5000 bytes :40003 -> .1:161 -> ICMP 3/13 from .1 quoting 548 bytes
IP ids of the answers: 1, 2, 3, 4 (the gateway's own counter)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, ROUTER = "02:00:00:00:00:01", "02:00:00:aa:00:fe"
OWN, PUB, USER = "198.51.100.1", "198.51.100.7", "203.0.113.10"

send_up, expect_up = [], []


def from_user(dst, l4, ip_id):
    p = build(Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=dst, id=ip_id, flags="DF") / l4)
    send_up.append(p)
    return p


def reset(p, answer_id):
    ip, t = p[IP], p[TCP]
    if t.flags.A:
        seq, ack, flags = t.ack, 0, "R"
    else:
        seq, ack, flags = 0, t.seq + len(t.payload) + 1, "RA"
    expect_up.append(build(Ether(src=UP, dst=ROUTER) /
                           IP(src=ip.dst, dst=ip.src, id=answer_id, ttl=64, tos=0, flags=0) /
                           TCP(sport=t.dport, dport=t.sport, seq=seq, ack=ack, flags=flags,
                               window=0)))


reset(from_user(PUB, TCP(sport=40000, dport=23, flags="S", seq=1000) / Raw(b"s" * 3000), 101), 1)
reset(from_user(OWN, TCP(sport=40001, dport=23, flags="S", seq=2000) / Raw(b"a" * 4000), 102), 2)
reset(from_user(OWN, TCP(sport=40002, dport=23, flags="S", seq=3000), 103), 3)
big_udp = from_user(OWN, UDP(sport=40003, dport=161) / Raw(b"u" * 5000), 104)
expect_up.append(icmp_error(big_udp, 3, 13, OWN, UP, ROUTER, 4))
assert all(len(raw(p)) == 54 for p in expect_up[:3]) and len(raw(expect_up[3])) == 14 + 576

write(OUT, "send-up.pcap", send_up)
write(OUT, "expect-up.pcap", expect_up)
