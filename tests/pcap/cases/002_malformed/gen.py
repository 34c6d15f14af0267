#!/usr/bin/python3
"""002 malformed: every frame the fast path must refuse, each with its own
drop counter (case.json), and the few that look odd but are valid (TTL
handling, fragments, Ethernet padding). Everything arrives on port a from
host 10.0.1.2; the valid ones leave on port b towards 10.0.2.2."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP, Dot1AD, Dot1Q, IPOption_RR, IPv6  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
HOST_A, HOST_B = "02:00:00:01:00:02", "02:00:00:02:00:02"

send_a, expect_a, expect_b = [], [], []


def eth(dst=A):
    return Ether(src=HOST_A, dst=dst)


def udp(**ip):
    """A valid UDP datagram from host a to host b; `ip` overrides IP fields."""
    fields = {"src": "10.0.1.2", "dst": "10.0.2.2", **ip}
    return eth() / IP(**fields) / UDP(sport=1000, dport=2000) / Raw(b"payload!")


def dropped(*pkts):
    send_a.extend(pkts)


def forwarded(p):
    send_a.append(build(p))
    expect_b.append(routed(p, B, HOST_B))


# eth_truncated: shorter than an Ethernet header
dropped(bytes.fromhex("02000000000a020000010002"),           # 12 bytes
        bytes.fromhex("02000000000a02000001000208"))          # 13 bytes
# ipv4_truncated: Ethernet header alone, a cut IPv4 header, IHL past the end
# of the frame, total length past the end of the frame
dropped(raw(Ether(src=HOST_A, dst=A, type=0x0800)),
        raw(udp())[:14 + 10],
        raw(udp())[:14] + b"\x4f" + raw(udp())[15:],           # IHL 15: 60 bytes > 36
        udp(len=200))
# ipv4_bad_ihl: IHL 4 (checksum computed over the 20 bytes scapy writes)
dropped(udp(ihl=4))
# ipv4_bad_length: total length below the header length
dropped(udp(len=19))
# ipv4_bad_checksum
dropped(udp(chksum=0x1234))
# ipv4_bad_version: version 6 in an IPv4 ethertype; version 0
dropped(udp(version=6), udp(version=0))
# ipv4_options: Record Route, valid checksum
dropped(eth() / IP(src="10.0.1.2", dst="10.0.2.2", options=[IPOption_RR()]) / UDP() / Raw(b"x"))
# ipv4_bad_fragment: offset + length past 65535; MF with a length not a multiple of 8
dropped(eth() / IP(src="10.0.1.2", dst="10.0.2.2", proto=17, frag=8189) / Raw(b"f" * 40),
        eth() / IP(src="10.0.1.2", dst="10.0.2.2", proto=17, flags="MF") / Raw(b"f" * 13))
# ipv4_martian_source: 0/8, 127/8, multicast, class E, limited broadcast
for src in ["0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255"]:
    dropped(udp(src=src))
# ipv4_bad_destination: the same classes as destination, and the directed
# broadcasts of both connected subnets (RFC 2644)
for dst in ["0.0.0.0", "127.0.0.1", "224.0.0.5", "239.1.2.3", "240.0.0.1", "255.255.255.255",
            "10.0.2.255", "10.0.1.255"]:
    dropped(udp(dst=dst))
# eth_not_for_us: IPv4 to another unicast MAC, to broadcast, to multicast;
# ARP to another unicast MAC
for mac in ["02:00:00:00:00:99", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"]:
    dropped(Ether(src=HOST_A, dst=mac) / udp()[IP])
dropped(eth("02:00:00:00:00:99") / ARP(op=1, hwsrc=HOST_A, psrc="10.0.1.2", pdst="10.0.1.1"))
# ipv6_unsupported (and the event ipv6_received)
dropped(eth() / IPv6(src="2001:db8::2", dst="2001:db8:1::2") / UDP(sport=1, dport=2),
        eth("33:33:00:00:00:01") / IPv6(src="fe80::2", dst="ff02::1") / Raw(b"\x80\x00"))
# vlan_unsupported: 802.1Q and 802.1ad
dropped(eth() / Dot1Q(vlan=10) / IP(src="10.0.1.2", dst="10.0.2.2") / UDP(),
        eth() / Dot1AD(vlan=20) / Dot1Q(vlan=10) / IP(src="10.0.1.2", dst="10.0.2.2") / UDP())
# unknown_ethertype: LLDP, an unassigned type, an 802.3 length field
dropped(Ether(src=HOST_A, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\0" * 40))
dropped(Ether(src=HOST_A, dst=A, type=0x1234) / Raw(b"\0" * 46),
        Ether(src=HOST_A, dst=A, type=46) / Raw(b"\0" * 46))

# ttl_exceeded: TTL 1 and TTL 0 are not forwarded; each gets an ICMP time
# exceeded (RFC 792 type 11 code 0) from port a's address back to the sender,
# quoting the datagram as received.
for ip_id, ttl in [(1, 1), (2, 0)]:
    p = build(udp(ttl=ttl))
    send_a.append(p)
    expect_a.append(icmp_error(p, 11, 0, "10.0.1.1", A, HOST_A, ip_id=ip_id))
# A non-first fragment with TTL 1 is dropped too, without an ICMP error
# (RFC 1812 §4.3.2.7).
dropped(eth() / IP(src="10.0.1.2", dst="10.0.2.2", proto=17, ttl=1, frag=4) / Raw(b"tail"))

# Valid after all: well-formed fragments are forwarded as they are (first with
# MF, a middle one, the last), TTL 2 leaves with TTL 1, and Ethernet padding
# (zero or not) is trimmed to the IPv4 total length.
whole = raw(IP(src="10.0.1.2", dst="10.0.2.2") / UDP(sport=1000, dport=2000) /
            Raw(b"0123456789abcdefghij"))[20:]  # a 28-byte UDP datagram
forwarded(eth() / IP(src="10.0.1.2", dst="10.0.2.2", id=77, proto=17, flags="MF") / Raw(whole[:8]))
forwarded(eth() / IP(src="10.0.1.2", dst="10.0.2.2", id=77, proto=17, flags="MF", frag=1) /
          Raw(whole[8:24]))
forwarded(eth() / IP(src="10.0.1.2", dst="10.0.2.2", id=77, proto=17, frag=3) / Raw(whole[24:]))
forwarded(udp(ttl=2))
for pad in [b"\0" * 10, b"\xee" * 30]:
    p = build(udp())
    send_a.append(raw(p) + pad)
    expect_b.append(routed(p, B, HOST_B))

write(OUT, "send-a.pcap", send_a)
write(OUT, "expect-a.pcap", expect_a)
write(OUT, "expect-b.pcap", expect_b)
