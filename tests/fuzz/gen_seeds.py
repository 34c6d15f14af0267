#!/usr/bin/python3
"""Writes the seed corpus of pipeline_fuzz: one file per interesting frame,
byte 0 = ingress port (0 uplink, 1 lan), then the Ethernet frame. Addresses
match the harness's configuration in pipeline_fuzz.cc."""
import os
from scapy.all import ARP, ICMP, IP, IPv6, TCP, UDP, Dot1Q, Ether, Raw, IPOption_RR

UP, LAN = "02:00:00:00:01:01", "02:00:00:00:02:01"
H1 = "02:00:00:00:01:02"
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pipeline")
os.makedirs(out, exist_ok=True)


def up(p):
    return Ether(src=H1, dst=UP) / p


seeds = {
    "udp_default_route": (0, up(IP(src="10.0.1.2", dst="8.8.8.8") / UDP(dport=53) / (b"x" * 18))),
    "udp_onlink_known": (0, up(IP(src="10.0.1.2", dst="10.0.2.2") / UDP() / (b"y" * 10))),
    "udp_onlink_unknown": (0, up(IP(src="10.0.1.2", dst="10.0.2.77") / UDP() / b"z")),
    "tcp_via_unresolved_gw": (0, up(IP(src="10.0.1.2", dst="10.9.1.1") / TCP(flags="S"))),
    "ttl1": (0, up(IP(src="10.0.1.2", dst="10.0.2.2", ttl=1) / UDP())),
    "echo_own": (0, up(IP(src="10.0.1.2", dst="10.0.1.1") / ICMP() / b"ping")),
    "tcp_own": (0, up(IP(src="10.0.1.2", dst="10.0.1.1") / TCP(dport=22))),
    "no_route_from_lan": (1, Ether(dst=LAN) / IP(src="10.0.2.2", dst="10.0.1.1") / ICMP(type=3)),
    "arp_request_own": (0, Ether(src=H1, dst="ff:ff:ff:ff:ff:ff") /
                        ARP(op=1, hwsrc=H1, psrc="10.0.1.2", pdst="10.0.1.1")),
    "arp_reply": (1, Ether(dst=LAN) / ARP(op=2, hwsrc="02:00:00:00:02:4d", psrc="10.0.2.77",
                                           hwdst=LAN, pdst="10.0.2.1")),
    "big_df": (0, up(IP(src="10.0.1.2", dst="10.0.2.2", flags="DF") / UDP() / (b"d" * 1400))),
    "big_fragmentable": (0, up(IP(src="10.0.1.2", dst="10.0.2.2") / UDP() / (b"f" * 1400))),
    "fragment": (0, up(IP(src="10.0.1.2", dst="10.0.2.2", flags="MF", frag=0) / (b"g" * 16))),
    "options": (0, up(IP(src="10.0.1.2", dst="10.0.2.2", options=IPOption_RR()) / UDP())),
    "ipv6": (0, Ether(dst=UP) / IPv6() / UDP()),
    "vlan": (0, Ether(dst=UP) / Dot1Q(vlan=5) / IP(dst="10.0.2.2") / UDP()),
    "truncated": (0, Raw(bytes(up(IP(src="10.0.1.2", dst="10.0.2.2") / UDP()))[:20])),
    # WireGuard on 10.0.1.1:51820: each message type at its length, and a
    # packet for the peer's allowed prefix (staged: no session yet).
    "wg_initiation": (0, up(IP(src="10.0.1.254", dst="10.0.1.1") / UDP(sport=51820, dport=51820) /
                            (b"\x01\x00\x00\x00" + b"\x11" * 144))),
    "wg_response": (0, up(IP(src="10.0.1.254", dst="10.0.1.1") / UDP(sport=51820, dport=51820) /
                          (b"\x02\x00\x00\x00" + b"\x22" * 88))),
    "wg_cookie": (0, up(IP(src="10.0.1.254", dst="10.0.1.1") / UDP(sport=51820, dport=51820) /
                        (b"\x03\x00\x00\x00" + b"\x33" * 60))),
    "wg_data": (0, up(IP(src="10.0.1.254", dst="10.0.1.1") / UDP(sport=51820, dport=51820) /
                      (b"\x04\x00\x00\x00" + b"\x01\x00\x00\x00" + b"\x00" * 8 + b"\x44" * 48))),
    "wg_to_peer": (1, Ether(dst=LAN) / IP(src="10.0.2.2", dst="10.50.1.1") / UDP() / b"t"),
    # NAT: published 10.0.1.1 tcp 3389, udp 5000-5099, whole address 10.0.1.7.
    "nat_syn": (0, up(IP(src="10.0.1.2", dst="10.0.1.1") /
                      TCP(sport=40000, dport=3389, flags="S", options=[("MSS", 1460)]))),
    "nat_udp_range": (0, up(IP(src="10.0.1.2", dst="10.0.1.1") / UDP(sport=40000, dport=5050) /
                            b"u")),
    "nat_echo_whole": (0, up(IP(src="10.0.1.2", dst="10.0.1.7") / ICMP(id=77) / b"e")),
    "nat_first_fragment": (0, up(IP(src="10.0.1.2", dst="10.0.1.7", flags="MF", id=9) /
                                 UDP(sport=1, dport=2, len=64) / (b"h" * 16))),
    "nat_later_fragment": (0, up(IP(src="10.0.1.2", dst="10.0.1.7", frag=3, id=9, proto=17) /
                                 (b"i" * 24))),
    "nat_icmp_error": (1, Ether(dst=LAN) / IP(src="10.0.2.9", dst="10.0.2.1") /
                       ICMP(type=3, code=4) / IP(src="10.0.2.1", dst="10.0.2.5") /
                       TCP(sport=1024, dport=3389, flags="S")),
    # Firewall: uplink -> lan rejects tcp 23 and udp 69, accepts tcp 1-5000
    # and udp; uplink -> management rejects tcp 22.
    "fw_reject_tcp": (0, up(IP(src="10.0.1.2", dst="10.0.2.5") / TCP(sport=40001, dport=23,
                                                                       flags="S", seq=7))),
    "fw_reject_udp": (0, up(IP(src="10.0.1.2", dst="10.0.2.5") / UDP(sport=40002, dport=69) /
                            b"r")),
    "fw_reject_mgmt": (0, up(IP(src="10.0.1.2", dst="10.0.1.1") / TCP(sport=40003, dport=22,
                                                                        flags="S"))),
    "fw_accept_tcp": (0, up(IP(src="10.0.1.2", dst="10.0.2.5") / TCP(sport=40004, dport=80,
                                                                       flags="S", seq=1,
                                                                       options=[("WScale", 7)]))),
    "fw_ack_first": (0, up(IP(src="10.0.1.2", dst="10.0.2.5") / TCP(sport=40005, dport=80,
                                                                      flags="A"))),
}
for name, (port, pkt) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([port]) + bytes(pkt))
bad = bytearray(bytes(up(IP(src="10.0.1.2", dst="10.0.2.2") / UDP())))
bad[14 + 10] ^= 0xFF  # header checksum
with open(os.path.join(out, "bad_checksum"), "wb") as f:
    f.write(bytes([0]) + bytes(bad))
print(f"{len(seeds) + 1} seeds in {out}")
