#!/usr/bin/python3
"""021 NAT, UDP and whole-address mappings, ICMP echo, what NAT refuses.

"game": 198.51.100.7:27015/udp -> 10.0.0.5:28015. Any UDP datagram makes a
session (RFC 4787): from the gateway 10.0.0.254 with a port of the (7,
10.0.0.254, udp) pool, 1024 up. A UDP checksum of 0 (none, RFC 768) stays 0.

"host8": 198.51.100.8, protocol any -> 10.0.0.7: every TCP and UDP port is
kept (only the source is translated), and ICMP echo requests make sessions
whose identifier is translated from the ICMP pool (1024 up; the identifier
plays the part of a port, RFC 5508 §3). Each protocol has its own pool,
so the first UDP, TCP and ICMP sessions all get 1024 (UDP got 1024-1026 from
"game" first, so host8's UDP gets 1027).

Refused: a first TCP packet that is not a SYN (nat_tcp_not_syn); protocols NAT cannot translate (GRE, ICMP timestamp) to the whole
address (nat_unsupported); an unsolicited echo reply (not a session start:
it reaches the address itself); replies that match no session. GRE to
198.51.100.7, which only maps UDP 27015, is a packet to our own address. An echo
request to 198.51.100.7 is answered by the gateway itself (its own address;
only a whole-address mapping takes ICMP echo). L4 headers cut short while NAT
is on are dropped as nat_malformed, NAT traffic or not.

Port "up" mixes the service thread's echo reply with forwarded packets, so
its order is not checked."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER = "02:00:00:aa:00:fe"
W5, W6, W7 = "02:00:00:07:00:05", "02:00:00:07:00:06", "02:00:00:07:00:07"
PUB7, PUB8, GW = "198.51.100.7", "198.51.100.8", "10.0.0.254"
USER, USER2 = "203.0.113.10", "203.0.113.11"

send_up, send_vdc, expect_up, expect_vdc = [], [], [], []
ip_id = 200


def nid():
    global ip_id
    ip_id += 1
    return ip_id


def from_user(src, dst, l4):
    return build(Ether(src=ROUTER, dst=UP) / IP(src=src, dst=dst, id=nid()) / l4)


def from_workload(mac, src, l4, dst=GW):
    return build(Ether(src=mac, dst=VDC) / IP(src=src, dst=dst, id=nid(), ttl=128) / l4)


def inbound(p, inner_mac, inner, **ports):
    send_up.append(p)
    expect_vdc.append(translated(p, VDC, inner_mac, src=GW, dst=inner, **ports))


def outbound(p, public, user, **ports):
    send_vdc.append(p)
    expect_up.append(translated(p, UP, ROUTER, src=public, dst=user, **ports))


# --- "game": UDP port mapping with another inner port ---
inbound(from_user(USER, PUB7, UDP(sport=40000, dport=27015) / Raw(b"query one")),
        W5, "10.0.0.5", sport=1024, dport=28015)
inbound(from_user(USER, PUB7, UDP(sport=40000, dport=27015) / Raw(b"query two")),
        W5, "10.0.0.5", sport=1024, dport=28015)  # same session
inbound(from_user(USER2, PUB7, UDP(sport=40000, dport=27015) / Raw(b"other user")),
        W5, "10.0.0.5", sport=1025, dport=28015)
inbound(from_user(USER, PUB7, UDP(sport=40001, dport=27015, chksum=0) / Raw(b"no checksum")),
        W5, "10.0.0.5", sport=1026, dport=28015)
outbound(from_workload(W5, "10.0.0.5", UDP(sport=28015, dport=1024) / Raw(b"answer one")),
         PUB7, USER, sport=27015, dport=40000)
outbound(from_workload(W5, "10.0.0.5", UDP(sport=28015, dport=1025) / Raw(b"answer other")),
         PUB7, USER2, sport=27015, dport=40000)
outbound(from_workload(W5, "10.0.0.5", UDP(sport=28015, dport=1026, chksum=0) / Raw(b"none")),
         PUB7, USER, sport=27015, dport=40001)

# --- "host8": whole address, ports kept ---
inbound(from_user(USER, PUB8, UDP(sport=40002, dport=5000) / Raw(b"udp to any port")),
        W7, "10.0.0.7", sport=1027, dport=5000)
inbound(from_user(USER, PUB8, TCP(sport=50000, dport=22, flags="S", seq=7)),
        W7, "10.0.0.7", sport=1024, dport=22)
outbound(from_workload(W7, "10.0.0.7", UDP(sport=5000, dport=1027) / Raw(b"udp back")),
         PUB8, USER, sport=5000, dport=40002)
outbound(from_workload(W7, "10.0.0.7", TCP(sport=22, dport=1024, flags="SA", seq=70, ack=8)),
         PUB8, USER, sport=22, dport=50000)
# ICMP echo: the identifier is translated (ICMP pool), the sequence kept.
inbound(from_user(USER, PUB8, ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping 1")),
        W7, "10.0.0.7", ident=1024)
inbound(from_user(USER, PUB8, ICMP(type=8, id=0x1234, seq=2) / Raw(b"ping 2")),
        W7, "10.0.0.7", ident=1024)
inbound(from_user(USER2, PUB8, ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping 1")),
        W7, "10.0.0.7", ident=1025)
outbound(from_workload(W7, "10.0.0.7", ICMP(type=0, id=1024, seq=1) / Raw(b"ping 1")),
         PUB8, USER, ident=0x1234)
outbound(from_workload(W7, "10.0.0.7", ICMP(type=0, id=1024, seq=2) / Raw(b"ping 2")),
         PUB8, USER, ident=0x1234)
outbound(from_workload(W7, "10.0.0.7", ICMP(type=0, id=1025, seq=1) / Raw(b"ping 1")),
         PUB8, USER2, ident=0x1234)

# UDP checksums that are all ones: 0 computed is sent as 0xffff (RFC 768),
# after translation (port 1028) and before it (port 1029).
def udp_ones(sport, gw_port, translated_side):
    """A datagram whose UDP checksum (translated_side: once translated) sums
    to 0: its first payload word is the checksum computed with it zero."""
    global ip_id
    p = from_user(USER, PUB7, UDP(sport=sport, dport=27015) / Raw(b"\0\0edge"))
    q = translated(p, VDC, W5, src=GW, dst="10.0.0.5", sport=gw_port, dport=28015)
    c = (q if translated_side else p)[UDP].chksum
    ip_id -= 1
    return from_user(USER, PUB7, UDP(sport=sport, dport=27015) /
                     Raw((0 if c == 0xffff else c).to_bytes(2, "big") + b"edge"))


inbound(udp_ones(40003, 1028, True), W5, "10.0.0.5", sport=1028, dport=28015)
assert expect_vdc[-1][UDP].chksum == 0xffff
inbound(udp_ones(40004, 1029, False), W5, "10.0.0.5", sport=1029, dport=28015)
assert send_up[-1][UDP].chksum == 0xffff

# --- refused or not NAT ---
gre8 = Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=PUB8, id=nid(), proto=47) / Raw(b"\x00" * 4)
send_up.append(build(gre8))
send_up.append(from_user(USER, PUB8, ICMP(type=13, id=5, seq=1, ts_ori=1000, ts_rx=0, ts_tx=0)))
send_up.append(from_user(USER, PUB8, ICMP(type=0, id=0x4321, seq=1)))  # unsolicited reply
send_up.append(from_user(USER, PUB8, TCP(sport=50001, dport=22, flags="A", seq=8, ack=71)))  # not SYN
gre7 = Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=PUB7, id=nid(), proto=47) / Raw(b"\x00" * 4)
send_up.append(build(gre7))
ping7 = from_user(USER, PUB7, ICMP(type=8, id=0x55, seq=9) / Raw(b"are you there"))
send_up.append(ping7)
expect_up.append(echo_reply(ping7, UP, ROUTER))
send_vdc.append(from_workload(W7, "10.0.0.7", ICMP(type=0, id=1026, seq=1)))  # no session
send_vdc.append(from_workload(W5, "10.0.0.5", UDP(sport=28015, dport=1027) / Raw(b"not mine")))


# --- L4 headers cut short: nat_malformed ---
def short(src_mac, port_mac, src, dst, proto, l4bytes):
    return build(Ether(src=src_mac, dst=port_mac) /
                 IP(src=src, dst=dst, id=nid(), proto=proto) / Raw(l4bytes))


send_up.append(short(ROUTER, UP, USER, PUB7, 17, b"\x9c\x40\x69\x87"))      # UDP, 4 bytes
send_up.append(short(ROUTER, UP, USER, PUB8, 6, bytes(TCP(sport=1, dport=22))[:10]))
send_up.append(short(ROUTER, UP, USER, PUB8, 1, b"\x08\x00\xf7\xff"))      # ICMP, 4 bytes
bad_doff = bytearray(raw(TCP(sport=1, dport=22, flags="S")))
bad_doff[12] = 0x40  # data offset 4 words (< 5)
send_up.append(short(ROUTER, UP, USER, PUB8, 6, bytes(bad_doff)))
# not NAT traffic at all (10.0.0.5 -> 10.0.0.6 in domain 7), still checked
send_vdc.append(short(W5, VDC, "10.0.0.5", "10.0.0.6", 17, b"\x69\x87\x00"))

assert len(send_up) < 32 and len(send_vdc) < 32
write(OUT, "send-up.pcap", send_up)
write(OUT, "send-vdc.pcap", send_vdc)
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
