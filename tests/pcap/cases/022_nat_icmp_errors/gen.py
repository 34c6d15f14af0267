#!/usr/bin/python3
"""022 NAT, ICMP errors about packets of a session (RFC 5508 §4: the
embedded header is translated too).

An ICMP error (types 3, 11, 12) that quotes a packet of a session is
translated like a packet of the side it travels toward: the outer source
becomes the address that side talked to (the public address for the user;
the gateway address for the workload) and the outer destination that side's
address; the quoted header becomes the packet as that side sent it
(addresses, ports or echo identifier), with the quoted IP checksum, the
quoted L4 checksum when it is quoted, and the ICMP checksum updated. The
rest (type, code, next-hop MTU, quoted TTL, sequence numbers, outer TTL - 1,
TOS, id) is kept. Quotes of only 8 bytes of TCP (RFC 792) are translated
too (no checksum in them).

Sessions (burst 1 of the uplink): TCP user:50000 -> .7:3389 (gw port 1024),
TCP user:50001 -> .7:3389 (1025), UDP user:40000 -> .7:27015 (UDP 1024),
echo user id 0x1234 -> .8 (ICMP 1024).
From inside (VDC port, polled after the uplink): the workload's replies,
then errors from the VDC router 10.0.0.9 and from the workload itself.
From outside (burst 2 of the uplink, after 32 - n filler frames for another
MAC that are dropped as eth_not_for_us): errors from an internet router
192.0.2.1 and from the user about the translated replies.
Errors about no session pass untranslated: to the gateway address or the
public address they are packets to our own address (local_unsupported);
inside the VDC between workloads they are forwarded as they are."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER = "02:00:00:aa:00:fe"
W5, W6, W7, R9 = ("02:00:00:07:00:05", "02:00:00:07:00:06", "02:00:00:07:00:07",
                  "02:00:00:07:00:09")
PUB7, PUB8, GW = "198.51.100.7", "198.51.100.8", "10.0.0.254"
USER = "203.0.113.10"
NET_ROUTER = "192.0.2.1"

send_up, send_vdc, expect_up, expect_vdc = [], [], [], []
ip_id = 300


def nid():
    global ip_id
    ip_id += 1
    return ip_id


def from_user(dst, l4, src=USER):
    return build(Ether(src=ROUTER, dst=UP) / IP(src=src, dst=dst, id=nid(), flags="DF") / l4)


def from_vdc(mac, src, dst, l4, ttl=64):
    return build(Ether(src=mac, dst=VDC) / IP(src=src, dst=dst, id=nid(), ttl=ttl) / l4)


def inbound(p, inner_mac, inner, **ports):
    send_up.append(p)
    out = translated(p, VDC, inner_mac, src=GW, dst=inner, **ports)
    expect_vdc.append(out)
    return out


def outbound(p, public, **ports):
    send_vdc.append(p)
    out = translated(p, UP, ROUTER, src=public, dst=USER, **ports)
    expect_up.append(out)
    return out


def as_seen(p, ttl=None, **fields):
    """The IP packet `p` (bytes) with `fields` changed (src, dst, sport,
    dport, id of an ICMP echo) and its checksums valid: what a router quotes,
    or what the other side of the session sent."""
    q = IP(raw(p[IP]) if not isinstance(p, (bytes, bytearray)) else p)
    if ttl is not None:
        q.ttl = ttl
    for k in ("src", "dst"):
        if k in fields:
            setattr(q, k, fields[k])
    del q.chksum
    l4 = q.payload
    if isinstance(l4, (TCP, UDP)):
        if "sport" in fields:
            l4.sport = fields["sport"]
        if "dport" in fields:
            l4.dport = fields["dport"]
        del l4.chksum
    elif isinstance(l4, ICMP):
        if "ident" in fields:
            l4.id = fields["ident"]
        del l4.chksum
    return raw(q)


def error(src_mac, port_mac, src, dst, icmp_type, code, quote, mtu=0, ttl=64):
    icmp = ICMP(type=icmp_type, code=code, nexthopmtu=mtu) if icmp_type == 3 else \
        ICMP(type=icmp_type, code=code)
    return build(Ether(src=src_mac, dst=port_mac) /
                 IP(src=src, dst=dst, id=nid(), ttl=ttl, tos=0xC0) / icmp / Raw(quote))


def error_translated(e, src_mac, dst_mac, src, dst, quote):
    """`e` as the NAT forwards it: outer addresses and the quote replaced."""
    ip, icmp = e[IP], e[ICMP]
    icmp2 = ICMP(type=icmp.type, code=icmp.code, nexthopmtu=icmp.nexthopmtu) if icmp.type == 3 \
        else ICMP(type=icmp.type, code=icmp.code)
    return build(Ether(src=src_mac, dst=dst_mac) /
                 IP(src=src, dst=dst, id=ip.id, ttl=ip.ttl - 1, tos=ip.tos, flags=ip.flags) /
                 icmp2 / Raw(quote))


# --- burst 1 of the uplink: the sessions ---
syn1 = inbound(from_user(PUB7, TCP(sport=50000, dport=3389, flags="S", seq=1000,
                                   options=[("MSS", 1460)])), W5, "10.0.0.5", sport=1024, dport=3389)
syn2 = inbound(from_user(PUB7, TCP(sport=50001, dport=3389, flags="S", seq=2000)),
               W5, "10.0.0.5", sport=1025, dport=3389)
udp1 = inbound(from_user(PUB7, UDP(sport=40000, dport=27015) / Raw(b"join game")),
               W5, "10.0.0.5", sport=1024, dport=28015)
ping1 = inbound(from_user(PUB8, ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping payload")),
                W7, "10.0.0.7", ident=1024)
n_sessions_pkts = len(send_up)

# --- the VDC port: replies, then errors from inside ---
synack = outbound(from_vdc(W5, "10.0.0.5", GW, TCP(sport=3389, dport=1024, flags="SA", seq=5000,
                                                    ack=1001), ttl=128), PUB7, sport=3389, dport=50000)
udp_reply = outbound(from_vdc(W5, "10.0.0.5", GW, UDP(sport=28015, dport=1024) / Raw(b"welcome"),
                              ttl=128), PUB7, sport=27015, dport=40000)
pong = outbound(from_vdc(W7, "10.0.0.7", GW, ICMP(type=0, id=1024, seq=1) / Raw(b"ping payload"),
                         ttl=128), PUB8, ident=0x1234)


def inside_error(src_mac, src, icmp_type, code, quoted_pkt, user_side, quote_len=None, mtu=0):
    """An error from inside the VDC to the gateway about `quoted_pkt` (what we
    sent into the VDC, as the erring node quotes it); to the user it quotes
    `user_side` (the packet the user sent) with the quoted TTL."""
    n = quote_len
    q = quoted_pkt[:n] if n else quoted_pkt
    user_side = as_seen(user_side, ttl=IP(quoted_pkt).ttl)  # the quoted TTL stays
    e = error(src_mac, VDC, src, GW, icmp_type, code, q, mtu=mtu)
    send_vdc.append(e)
    u = user_side[:n] if n else user_side
    src_pub = IP(user_side).dst
    expect_up.append(error_translated(e, UP, ROUTER, src_pub, USER, u))


# TTL exceeded from the VDC router about the first SYN, full quote (the
# quoted TTL is 1, as the router received it).
inside_error(R9, "10.0.0.9", 11, 0, as_seen(syn1, ttl=1), send_up[0])
# Host unreachable about the second SYN quoting only 8 bytes of TCP.
inside_error(R9, "10.0.0.9", 3, 1, as_seen(syn2, ttl=5), send_up[1],
             quote_len=28)
# Fragmentation needed (next-hop MTU kept) about the SYN, IP header + 12 bytes.
inside_error(R9, "10.0.0.9", 3, 4, as_seen(syn1), send_up[0], quote_len=32, mtu=1400)
# Port unreachable from the workload itself about the UDP datagram.
inside_error(W5, "10.0.0.5", 3, 3, as_seen(udp1), send_up[2])
# TTL exceeded from the router about the echo request.
inside_error(R9, "10.0.0.9", 11, 0, as_seen(ping1, ttl=1), send_up[3])

# About no session: a gateway port nobody has (to our own address) ...
nosess = as_seen(syn1, sport=1999)
send_vdc.append(error(R9, VDC, "10.0.0.9", GW, 11, 0, nosess))
# ... and between two workloads: forwarded as it is.
between = as_seen(IP(src="10.0.0.6", dst="10.0.0.50", ttl=1) / TCP(sport=1234, dport=80, flags="S"))
e = error(R9, VDC, "10.0.0.9", "10.0.0.6", 11, 0, between)
send_vdc.append(e)
expect_vdc.append(routed(e, VDC, W6))

# --- burst 2 of the uplink: errors from outside ---
FILLER = "02:00:00:99:99:99"
while len(send_up) < 32:
    send_up.append(build(Ether(src=ROUTER, dst=FILLER) / IP(src=USER, dst=PUB7, id=nid()) /
                         UDP(sport=9, dport=9) / Raw(b"not for us")))


def outside_error(src, icmp_type, code, quoted_pkt, inner_side, inner_mac, quote_len=None, mtu=0):
    """An error from outside to a public address about `quoted_pkt` (what we
    sent out, as the erring node quotes it); to the workload it quotes
    `inner_side` (the packet it sent) with the quoted TTL."""
    n = quote_len
    q = quoted_pkt[:n] if n else quoted_pkt
    inner_side = as_seen(inner_side, ttl=IP(quoted_pkt).ttl)  # the quoted TTL stays
    e = error(ROUTER, UP, src, IP(quoted_pkt).src, icmp_type, code, q, mtu=mtu, ttl=50)
    send_up.append(e)
    w = inner_side[:n] if n else inner_side
    expect_vdc.append(error_translated(e, VDC, inner_mac, GW, IP(inner_side).src, w))


# Host unreachable from an internet router about the SYN-ACK (it quotes the
# TTL it saw, 120).
outside_error(NET_ROUTER, 3, 1, as_seen(synack, ttl=120), send_vdc[0], W5)
# TTL exceeded about the UDP reply, quoting 8 bytes of UDP.
outside_error(NET_ROUTER, 11, 0, as_seen(udp_reply, ttl=1), send_vdc[1], W5,
              quote_len=28)
# Port unreachable from the user itself about the UDP reply, full quote.
outside_error(USER, 3, 3, as_seen(udp_reply), send_vdc[1], W5)
# Fragmentation needed about the echo reply.
outside_error(NET_ROUTER, 3, 4, as_seen(pong), send_vdc[2], W7, mtu=1280)
# About no session (another user port): to our own public address.
send_up.append(error(ROUTER, UP, NET_ROUTER, PUB7, 3, 1, as_seen(synack, dport=59999), ttl=50))

assert len(send_up) <= 64 and len(send_vdc) < 32
write(OUT, "send-up.pcap", send_up)
write(OUT, "send-vdc.pcap", send_vdc)
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-vdc.pcap", expect_vdc)
