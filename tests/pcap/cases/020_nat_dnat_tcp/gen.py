#!/usr/bin/python3
"""020 NAT, published TCP resources (DNAT + SNAT to the VDC's gateway).

Mapping "rdp": 198.51.100.7:3389/tcp -> 10.0.0.5:3389 in domain 7; mapping
"range": 198.51.100.7:5000-5009/tcp -> 10.0.0.6:6000-6009. A user's first
SYN makes a session: the packet leaves on the VDC port from the gateway
address 10.0.0.254 with a port from the (7, 10.0.0.254, tcp) pool (1024, 1025,
... with testing.nat_sequential_ports) to the inner address and port. The
workload's replies to that exact five-tuple leave on the uplink as from
198.51.100.7:3389 to the user. TTL - 1, checksums updated, nothing else
changes (sequence numbers, options, flags, IP id, DF, TOS).

A first packet to a mapping that is not a bare SYN (ACK, SYN-ACK, RST) is
dropped (nat_tcp_not_syn): only a SYN opens a connection to a published
resource. An ECN-setup SYN (SYN+ECE+CWR, RFC 3168 §6.1.1) is a SYN. Ports of
the address outside every mapping, and other protocols, are packets to our
own address (no exception port here: local_unsupported). Replies that do not
match a session's five-tuple exactly reach the gateway address itself
(local_unsupported) and are not translated.

Ordering: the uplink is polled before the VDC port, and each side sends
fewer than 32 packets, so every user packet is handled before every reply."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER = "02:00:00:aa:00:fe"  # 198.51.100.254, the default route of domain 0
W5, W6 = "02:00:00:07:00:05", "02:00:00:07:00:06"
PUB, GW = "198.51.100.7", "10.0.0.254"
USER, USER2, USER3 = "203.0.113.10", "203.0.113.11", "203.0.113.12"

send_up, send_vdc, expect_up, expect_vdc = [], [], [], []
ip_id = 100


def from_user(src, sport, dport, flags, seq=0, ack=0, data=b"", **tcp):
    global ip_id
    ip_id += 1
    p = (Ether(src=ROUTER, dst=UP) / IP(src=src, dst=PUB, id=ip_id, flags="DF") /
         TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **tcp))
    if data:
        p = p / Raw(data)
    return build(p)


def from_workload(mac, src, sport, dport, flags, seq=0, ack=0, data=b"", **tcp):
    global ip_id
    ip_id += 1
    p = (Ether(src=mac, dst=VDC) / IP(src=src, dst=GW, id=ip_id, flags="DF", ttl=128) /
         TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **tcp))
    if data:
        p = p / Raw(data)
    return build(p)


def inbound(p, inner_mac, inner, inner_port, gw_port):
    """A user's packet of a session: to the workload, from the gateway."""
    send_up.append(p)
    expect_vdc.append(translated(p, VDC, inner_mac, src=GW, dst=inner, sport=gw_port,
                                 dport=inner_port))


def outbound(p, user, user_port, public_port):
    """A workload's reply: to the user, from the public address and port."""
    send_vdc.append(p)
    expect_up.append(translated(p, UP, ROUTER, src=PUB, dst=user, sport=public_port,
                                dport=user_port))


def dropped_up(p):
    send_up.append(p)


MSS = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]

# Session 1 (port 1024): handshake, a retransmitted SYN (same session, same
# port), data both ways, FIN both ways.
inbound(from_user(USER, 50000, 3389, "S", seq=1000, options=MSS), W5, "10.0.0.5", 3389, 1024)
inbound(from_user(USER, 50000, 3389, "S", seq=1000, options=MSS), W5, "10.0.0.5", 3389, 1024)
inbound(from_user(USER, 50000, 3389, "A", seq=1001, ack=5001), W5, "10.0.0.5", 3389, 1024)
inbound(from_user(USER, 50000, 3389, "PA", seq=1001, ack=5001, data=b"\x03\x00\x00\x13hello rdp"),
        W5, "10.0.0.5", 3389, 1024)
inbound(from_user(USER, 50000, 3389, "FA", seq=1014, ack=5021), W5, "10.0.0.5", 3389, 1024)
inbound(from_user(USER, 50000, 3389, "A", seq=1015, ack=5022), W5, "10.0.0.5", 3389, 1024)
outbound(from_workload(W5, "10.0.0.5", 3389, 1024, "SA", seq=5000, ack=1001,
                       options=[("MSS", 1400), ("SAckOK", b""), ("WScale", 8)]),
         USER, 50000, 3389)
outbound(from_workload(W5, "10.0.0.5", 3389, 1024, "PA", seq=5001, ack=1014,
                       data=b"\x03\x00\x00\x14welcome to rdp"), USER, 50000, 3389)
outbound(from_workload(W5, "10.0.0.5", 3389, 1024, "FA", seq=5021, ack=1015), USER, 50000, 3389)
outbound(from_workload(W5, "10.0.0.5", 3389, 1024, "A", seq=5022, ack=1015), USER, 50000, 3389)

# First packets that are not a bare SYN: no session, dropped.
dropped_up(from_user(USER2, 50001, 3389, "A", seq=1, ack=1))
dropped_up(from_user(USER2, 50002, 3389, "SA", seq=1, ack=1))
dropped_up(from_user(USER2, 50003, 3389, "R", seq=1))

# An ECN-setup SYN is a SYN (port 1025).
inbound(from_user(USER3, 40000, 3389, "SEC", seq=77), W5, "10.0.0.5", 3389, 1025)
outbound(from_workload(W5, "10.0.0.5", 3389, 1025, "SAE", seq=99, ack=78), USER3, 40000, 3389)

# The port range: public 5000 + k goes to inner 6000 + k (ports 1026-1028).
inbound(from_user(USER, 50002, 5003, "S", seq=10), W6, "10.0.0.6", 6003, 1026)
inbound(from_user(USER, 50003, 5000, "S", seq=20), W6, "10.0.0.6", 6000, 1027)
inbound(from_user(USER, 50004, 5009, "S", seq=30), W6, "10.0.0.6", 6009, 1028)
outbound(from_workload(W6, "10.0.0.6", 6003, 1026, "SA", seq=40, ack=11), USER, 50002, 5003)

# Just outside the range, and UDP to the TCP port: our own address, no
# mapping, no exception path.
dropped_up(from_user(USER, 50005, 5010, "S", seq=1))
dropped_up(from_user(USER, 50006, 4999, "S", seq=1))
dropped_up(build(Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=PUB, id=999) /
                 UDP(sport=50007, dport=3389) / Raw(b"udp")))

# Replies that match no session exactly: to an unused gateway port, from
# another inner port, from another inner host.
send_vdc.append(from_workload(W5, "10.0.0.5", 3389, 1999, "SA", seq=1, ack=1))
send_vdc.append(from_workload(W5, "10.0.0.5", 3390, 1024, "A", seq=1, ack=1))
send_vdc.append(from_workload(W6, "10.0.0.6", 6003, 1024, "A", seq=1, ack=1))

assert len(send_up) < 32 and len(send_vdc) < 32
write(OUT, "send-up.pcap", send_up)
write(OUT, "send-vdc.pcap", send_vdc)
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
