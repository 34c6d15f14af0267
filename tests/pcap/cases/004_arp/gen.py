#!/usr/bin/python3
"""004 ARP (RFC 826): requests for a port's own address are answered (from any
sender; senders inside the subnet are learned), requests for other addresses
are not (arp_not_for_us), malformed ARP is dropped (arp_malformed). A packet
to a next hop without a MAC is held, an ARP request is broadcast from the
egress port's address, and the reply releases the packet.

Ordering: the held packet arrives on port a in the first burst; the reply
arrives on port b behind 40 other packets, so in a later burst, and the
service thread sees it after the held packet. Port a's output mixes ARP
replies (service thread) with the 40 forwarded packets (worker), so its order
is not checked (case.json "unordered"). The packet to 10.0.1.3 (learned from
its request) is forwarded by the worker, or held once (punted_resolve 2) when
the worker gets to it before the service thread has learned 10.0.1.3."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
BCAST, ZERO = "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"


def host_a(n):
    return "02:00:00:01:00:%02x" % n


H9 = "02:00:00:02:00:09"  # 10.0.2.9, unknown to the dataplane at start
send_a, send_b, expect_a, expect_b = [], [], [], []


def request(src_mac, src_ip, target, dst=BCAST, pad=True):
    p = Ether(src=src_mac, dst=dst) / ARP(op=1, hwsrc=src_mac, psrc=src_ip, hwdst=ZERO, pdst=target)
    return Ether(raw(p) + (b"\0" * 18 if pad else b""))  # 60 bytes on the wire, as NICs send


def reply_from_port_a(src_mac, src_ip):
    """Our answer: exactly 42 bytes, padding dropped."""
    return build(Ether(src=A, dst=src_mac) /
                 ARP(op=2, hwsrc=A, psrc="10.0.1.1", hwdst=src_mac, pdst=src_ip))


# Answered: a neighbor in the subnet (learned), a sender outside the subnet
# (answered, not learned), a unicast request to our MAC (learned again).
send_a.append(request(host_a(3), "10.0.1.3", "10.0.1.1"))
expect_a.append(reply_from_port_a(host_a(3), "10.0.1.3"))
send_a.append(request("02:00:00:07:07:07", "192.168.7.7", "10.0.1.1"))
expect_a.append(reply_from_port_a("02:00:00:07:07:07", "192.168.7.7"))
send_a.append(request(host_a(3), "10.0.1.3", "10.0.1.1", dst=A, pad=False))
expect_a.append(reply_from_port_a(host_a(3), "10.0.1.3"))
# Not for us: another host of the subnet, and port b's address asked on port a.
send_a.append(request(host_a(4), "10.0.1.4", "10.0.1.77"))
send_a.append(request(host_a(4), "10.0.1.4", "10.0.2.1"))
# A gratuitous-style reply addressed to us: learned, not answered.
send_a.append(build(Ether(src=host_a(5), dst=A) /
                    ARP(op=2, hwsrc=host_a(5), psrc="10.0.1.5", hwdst=A, pdst="10.0.1.1")))
# Malformed: cut short, hardware type IEEE 802, protocol IPv6, opcode 3 (RARP).
send_a.append(raw(request(host_a(6), "10.0.1.6", "10.0.1.1", pad=False))[:14 + 20])
send_a.append(build(Ether(src=host_a(6), dst=BCAST) /
                    ARP(hwtype=6, hwsrc=host_a(6), psrc="10.0.1.6", pdst="10.0.1.1")))
send_a.append(build(Ether(src=host_a(6), dst=BCAST) /
                    ARP(ptype=0x86DD, hwsrc=host_a(6), psrc="10.0.1.6", pdst="10.0.1.1")))
send_a.append(build(Ether(src=host_a(6), dst=BCAST) /
                    ARP(op=3, hwsrc=host_a(6), psrc="10.0.1.6", pdst="10.0.1.1")))

# Resolution: a packet to 10.0.2.9 waits for ARP.
held = build(Ether(src=host_a(2), dst=A) / IP(src="10.0.1.2", dst="10.0.2.9") /
             UDP(sport=5000, dport=6000) / Raw(b"held until 10.0.2.9 answers"))
send_a.append(held)
expect_b.append(build(Ether(src=B, dst=BCAST) /
                      ARP(op=1, hwsrc=B, psrc="10.0.2.1", hwdst=ZERO, pdst="10.0.2.9")))
# Port b: 40 packets towards port a, then 10.0.2.9's reply.
for i in range(40):
    p = build(Ether(src=H9, dst=B) / IP(src="10.0.2.9", dst="10.0.1.2", id=i) /
              UDP(sport=6000, dport=5000) / Raw(b"filler %d" % i))
    send_b.append(p)
    expect_a.append(routed(p, A, host_a(2)))
# A packet to 10.0.1.3, known only from its ARP request: sent to the learned MAC.
p = build(Ether(src=H9, dst=B) / IP(src="10.0.2.9", dst="10.0.1.3") / UDP(sport=1, dport=2))
send_b.append(p)
expect_a.append(routed(p, A, host_a(3)))
send_b.append(Ether(raw(Ether(src=H9, dst=B) /
                        ARP(op=2, hwsrc=H9, psrc="10.0.2.9", hwdst=B, pdst="10.0.2.1")) + b"\0" * 18))
expect_b.append(routed(held, B, H9))

write(OUT, "send-a.pcap", send_a)
write(OUT, "send-b.pcap", send_b)
write(OUT, "expect-a.pcap", expect_a)
write(OUT, "expect-b.pcap", expect_b)
