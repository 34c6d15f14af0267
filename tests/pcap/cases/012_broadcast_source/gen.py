#!/usr/bin/python3
"""012 directed-broadcast source: the broadcast address of a connected subnet
(10.0.1.255, 10.0.2.255) MUST NOT be used as a source (RFC 1812 §4.2.2.11 (b));
a router SHOULD NOT forward a datagram with such an invalid source (§5.3.7)
and MUST NOT send an ICMP error about it (§4.3.2.7). Expected: both datagrams
are dropped as ipv4_martian_source, nothing leaves, no ICMP error is counted."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, HOST_A = "02:00:00:00:00:0a", "02:00:00:01:00:02"

send_a = [build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.255", dst="10.0.2.2") /
                UDP(sport=137, dport=137) / Raw(b"from the broadcast address")),
          build(Ether(src=HOST_A, dst=A) / IP(src="10.0.2.255", dst="10.0.2.2", ttl=1) /
                UDP(sport=137, dport=137) / Raw(b"and with TTL 1"))]
write(OUT, "send-a.pcap", send_a)
write(OUT, "expect-a.pcap", [])
write(OUT, "expect-b.pcap", [])
