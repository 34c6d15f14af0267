#!/usr/bin/python3
"""013 routing domains: each domain routes with its own table and own
addresses. Port c (domain 1) has the same subnet and address as port a
(domain 0), and the same host 10.0.1.2 behind it with another MAC. Domain 1
has a default route out of d; domain 0 has none."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B, C, D = ("02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c",
              "02:00:00:00:00:0d")
HOST_A, HOST_B, HOST_C = "02:00:00:01:00:02", "02:00:00:02:00:02", "02:00:00:0c:00:02"
HOST_D, GW_D = "02:00:00:0d:00:05", "02:00:00:0d:00:fe"
send = {p: [] for p in "abcd"}
expect = {p: [] for p in "abcd"}


def pkt(src_mac, port_mac, dst, **ip):
    return build(Ether(src=src_mac, dst=port_mac) / IP(src="10.0.1.2", dst=dst, **ip) /
                 UDP(sport=1, dport=2) / Raw(b"to " + dst.encode()))


# Domain 0: a → b works; a → 10.0.9.5 (domain 1's subnet) has no route.
p = pkt(HOST_A, A, "10.0.2.2")
send["a"].append(p)
expect["b"].append(routed(p, B, HOST_B))
p = pkt(HOST_A, A, "10.0.9.5")
send["a"].append(p)
expect["a"].append(icmp_error(p, 3, 0, "10.0.1.1", A, HOST_A, ip_id=1))

# Domain 1: c → 10.0.9.5 on-link on d; c → 10.0.2.2 (domain 0's subnet) takes
# domain 1's default route; the echo to 10.0.1.1 is answered on c with c's
# neighbor MAC; 10.0.2.1 is not an address of domain 1, so it is routed too.
p = pkt(HOST_C, C, "10.0.9.5")
send["c"].append(p)
expect["d"].append(routed(p, D, HOST_D))
p = pkt(HOST_C, C, "10.0.2.2")
send["c"].append(p)
expect["d"].append(routed(p, D, GW_D))
req = build(Ether(src=HOST_C, dst=C) / IP(src="10.0.1.2", dst="10.0.1.1") / ICMP(id=5, seq=1))
send["c"].append(req)
expect["c"].append(echo_reply(req, C, HOST_C))
p = build(Ether(src=HOST_C, dst=C) / IP(src="10.0.1.2", dst="10.0.2.1") / ICMP(id=5, seq=2))
send["c"].append(p)
expect["d"].append(routed(p, D, GW_D))
# TTL 1 on c: the time exceeded comes from c's 10.0.1.1 and goes to c's host.
p = pkt(HOST_C, C, "10.0.9.5", ttl=1)
send["c"].append(p)
expect["c"].append(icmp_error(p, 11, 0, "10.0.1.1", C, HOST_C, ip_id=2))

for port in "abcd":
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
