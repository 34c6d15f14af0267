#!/usr/bin/python3
"""011 ICMP error source address with asymmetric routing: a datagram from
198.51.100.7 arrives on port b with TTL 1, but the route back to
198.51.100.7 leaves port a. RFC 1812 §4.3.2.4: the source of an ICMP message
the router originates MUST be an address of the interface it is sent on, so
the time exceeded leaves port a from 10.0.1.1 (Linux does the same by
default: icmp_errors_use_inbound_ifaddr = 0)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
GW_A, GW_B = "02:00:00:01:00:fe", "02:00:00:02:00:fe"

p = build(Ether(src=GW_B, dst=B) / IP(src="198.51.100.7", dst="10.0.1.50", ttl=1) /
          UDP(sport=33434, dport=33434))
write(OUT, "send-b.pcap", [p])
write(OUT, "expect-a.pcap", [icmp_error(p, 11, 0, "10.0.1.1", A, GW_A, ip_id=1)])
write(OUT, "expect-b.pcap", [])
