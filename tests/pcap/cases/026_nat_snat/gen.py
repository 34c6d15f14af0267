#!/usr/bin/python3
"""026 NAT, source NAT of a VDC domain (nat_snat: domain 7 -> 198.51.100.9).

A packet from domain 7 with no session, to no published address, and with no
route in domain 7 leaves on the uplink (public_domain 0) from 198.51.100.9
with a port from the (0, 198.51.100.9, protocol) pool (1024 up; ICMP echo
identifiers from the ICMP pool). Its destination is kept. Replies from that
exact remote address and port come back translated to the workload
(endpoint-dependent filtering, which RFC 4787 §5 permits); a packet from
another remote address, or from another port of the same remote, to the
public port is only a packet to our own address (no exception path here:
local_unsupported). What has a route in domain 7 (its subnet, 198.18.0.0/15
via the VDC router) is routed there untranslated. An echo request to the
public address is answered by the gateway itself.

An ICMP error from an internet router about a translated packet reaches the
workload translated: outer source = the address the workload talked to
(203.0.113.50), embedded header = the workload's packet.

Ordering: the VDC port is polled first, so the workloads' first packets are
handled before the replies; the uplink's output also holds the service
thread's echo reply, so its order is not checked."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER = "02:00:00:aa:00:fe"
W5, W6, R9 = "02:00:00:07:00:05", "02:00:00:07:00:06", "02:00:00:07:00:09"
PUB = "198.51.100.9"
WEB, STUN = "203.0.113.50", "203.0.113.53"

send_up, send_vdc, expect_up, expect_vdc = [], [], [], []
ip_id = 600


def pkt(src_mac, port_mac, src, dst, l4, ttl=64):
    global ip_id
    ip_id += 1
    return build(Ether(src=src_mac, dst=port_mac) / IP(src=src, dst=dst, id=ip_id, ttl=ttl) / l4)


def out(p, **rw):
    send_vdc.append(p)
    expect_up.append(translated(p, UP, ROUTER, src=PUB, **rw))


def back(p, inner_mac, inner, **rw):
    send_up.append(p)
    expect_vdc.append(translated(p, VDC, inner_mac, dst=inner, **rw))


# --- from the VDC ---
syn = pkt(W5, VDC, "10.0.0.5", WEB, TCP(sport=40000, dport=443, flags="S", seq=1,
                                         options=[("MSS", 1460)]))
out(syn, sport=1024)
out(pkt(W5, VDC, "10.0.0.5", STUN, UDP(sport=5000, dport=3478) / Raw(b"binding request")),
    sport=1024)
out(pkt(W6, VDC, "10.0.0.6", WEB, ICMP(type=8, id=77, seq=1) / Raw(b"ping")), ident=1024)
out(pkt(W6, VDC, "10.0.0.6", WEB, TCP(sport=40000, dport=443, flags="S", seq=2)), sport=1025)
# routed inside domain 7: on-link, and through the VDC router
p = pkt(W5, VDC, "10.0.0.5", "10.0.0.6", UDP(sport=5000, dport=5001) / Raw(b"neighbour"))
send_vdc.append(p)
expect_vdc.append(routed(p, VDC, W6))
p = pkt(W5, VDC, "10.0.0.5", "198.18.1.1", UDP(sport=5000, dport=5001) / Raw(b"via router"))
send_vdc.append(p)
expect_vdc.append(routed(p, VDC, R9))

# --- from the internet ---
back(pkt(ROUTER, UP, WEB, PUB, TCP(sport=443, dport=1024, flags="SA", seq=100, ack=2,
                                   options=[("MSS", 1400)])), W5, "10.0.0.5", dport=40000)
back(pkt(ROUTER, UP, STUN, PUB, UDP(sport=3478, dport=1024) / Raw(b"binding response")),
     W5, "10.0.0.5", dport=5000)
back(pkt(ROUTER, UP, WEB, PUB, ICMP(type=0, id=1024, seq=1) / Raw(b"ping")),
     W6, "10.0.0.6", ident=77)
back(pkt(ROUTER, UP, WEB, PUB, TCP(sport=443, dport=1025, flags="SA", seq=200, ack=3)),
     W6, "10.0.0.6", dport=40000)
# not the session's remote: another address, another port of the same address
send_up.append(pkt(ROUTER, UP, "203.0.113.54", PUB, UDP(sport=3478, dport=1024) / Raw(b"x")))
send_up.append(pkt(ROUTER, UP, STUN, PUB, UDP(sport=3479, dport=1024) / Raw(b"x")))
send_up.append(pkt(ROUTER, UP, "203.0.113.51", PUB, TCP(sport=443, dport=1024, flags="S")))
# an echo request to the public address: the gateway answers
ping = pkt(ROUTER, UP, "203.0.113.77", PUB, ICMP(type=8, id=1024, seq=5) / Raw(b"hello"))
send_up.append(ping)
expect_up.append(echo_reply(ping, UP, ROUTER))
# time exceeded from an internet router about the SYN (quoted with TTL 1)
quoted = IP(raw(translated(syn, UP, ROUTER, src=PUB, sport=1024)[IP]))
quoted.ttl = 1
del quoted.chksum
mine = IP(raw(syn[IP]))
mine.ttl = 1
del mine.chksum
err = pkt(ROUTER, UP, "192.0.2.1", PUB, ICMP(type=11, code=0) / Raw(raw(quoted)), ttl=250)
send_up.append(err)
expect_vdc.append(build(Ether(src=VDC, dst=W5) /
                        IP(src=WEB, dst="10.0.0.5", id=err[IP].id, ttl=249) /
                        ICMP(type=11, code=0) / Raw(raw(mine))))

assert len(send_up) < 32 and len(send_vdc) < 32
write(OUT, "send-up.pcap", send_up)
write(OUT, "send-vdc.pcap", send_vdc)
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
