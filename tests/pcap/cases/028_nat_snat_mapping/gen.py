#!/usr/bin/python3
"""028 NAT, source NAT mapping behaviour: Endpoint-Independent Mapping
(RFC 4787 REQ-1 for UDP, RFC 5382 REQ-1 for TCP, both MUST): packets from the
same internal address and port get the same public port whatever remote
they go to. Filtering stays endpoint-dependent (RFC 4787 §5 permits
address-and-port-dependent filtering): a remote the workload did not send to
gets nothing through that port.

- UDP 10.0.0.5:5000 -> A 203.0.113.53:3478 and -> B 203.0.113.60:3478: both
  from 198.51.100.9:1024; replies from A and B both reach 10.0.0.5:5000; C
  (203.0.113.61) to :1024 does not (a packet to our own address).
- UDP 10.0.0.6:5000 -> A: another internal endpoint, another port (1025).
- TCP 10.0.0.5:40000 -> A:443 and -> B:443: both from 198.51.100.9:1024."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER, W5, W6 = "02:00:00:aa:00:fe", "02:00:00:07:00:05", "02:00:00:07:00:06"
PUB = "198.51.100.9"
A, B, C = "203.0.113.53", "203.0.113.60", "203.0.113.61"

send_up, send_vdc, expect_up, expect_vdc = [], [], [], []
ip_id = 800


def pkt(src_mac, port_mac, src, dst, l4):
    global ip_id
    ip_id += 1
    return build(Ether(src=src_mac, dst=port_mac) / IP(src=src, dst=dst, id=ip_id) / l4)


def out(mac, src, dst, l4, port):
    p = pkt(mac, VDC, src, dst, l4)
    send_vdc.append(p)
    expect_up.append(translated(p, UP, ROUTER, src=PUB, sport=port))


def back(src, l4, mac, inner, inner_port):
    p = pkt(ROUTER, UP, src, PUB, l4)
    send_up.append(p)
    expect_vdc.append(translated(p, VDC, mac, dst=inner, dport=inner_port))


out(W5, "10.0.0.5", A, UDP(sport=5000, dport=3478) / Raw(b"to A"), 1024)
out(W5, "10.0.0.5", B, UDP(sport=5000, dport=3478) / Raw(b"to B"), 1024)
out(W6, "10.0.0.6", A, UDP(sport=5000, dport=3478) / Raw(b"to A from .6"), 1025)
out(W5, "10.0.0.5", A, TCP(sport=40000, dport=443, flags="S", seq=1), 1024)
out(W5, "10.0.0.5", B, TCP(sport=40000, dport=443, flags="S", seq=2), 1024)

back(A, UDP(sport=3478, dport=1024) / Raw(b"from A"), W5, "10.0.0.5", 5000)
back(B, UDP(sport=3478, dport=1024) / Raw(b"from B"), W5, "10.0.0.5", 5000)
back(A, UDP(sport=3478, dport=1025) / Raw(b"from A to .6"), W6, "10.0.0.6", 5000)
back(A, TCP(sport=443, dport=1024, flags="SA", seq=10, ack=2), W5, "10.0.0.5", 40000)
back(B, TCP(sport=443, dport=1024, flags="SA", seq=20, ack=3), W5, "10.0.0.5", 40000)
send_up.append(pkt(ROUTER, UP, C, PUB, UDP(sport=3478, dport=1024) / Raw(b"from C")))

write(OUT, "send-up.pcap", send_up)
write(OUT, "send-vdc.pcap", send_vdc)
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
