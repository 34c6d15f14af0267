#!/usr/bin/python3
"""009 jumbo frames: datagrams larger than one mbuf (2048 bytes of data) go
through every path that touches the payload: forwarding, Ethernet padding
trim, fragmentation to a 1500-byte port, ICMP errors (quote cut at 576
bytes). Echo requests of that size: 010_jumbo_echo."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
HOST_A, HOST_B, HOST_C = "02:00:00:01:00:02", "02:00:00:02:00:02", "02:00:00:03:00:02"
send_a = []
expect = {"a": [], "b": [], "c": []}
errors = 0


def udp(dst, total, ip_id, **ip):
    data = bytes((i * 7) % 256 for i in range(total - 28))
    return build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst=dst, id=ip_id, **ip) /
                 UDP(sport=7000, dport=8000) / Raw(data))


def error(p, icmp_type, code, mtu=None):
    global errors
    errors += 1
    return icmp_error(p, icmp_type, code, "10.0.1.1", A, HOST_A, ip_id=errors, mtu=mtu)


# Forwarded whole between the 9000-byte ports.
for total, ip_id in [(4000, 1), (9000, 2)]:
    p = udp("10.0.2.2", total, ip_id)
    send_a.append(p)
    expect["b"].append(routed(p, B, HOST_B))
# Padding after a jumbo datagram is trimmed.
p = udp("10.0.2.2", 3000, 3)
send_a.append(raw(p) + b"\x55" * 10)
expect["b"].append(routed(p, B, HOST_B))
# To the 1500-byte port: fragments of 1480 bytes, or frag needed with DF.
p = udp("10.0.3.2", 4000, 4)
send_a.append(p)
data = raw(p[IP].payload)
for off in range(0, len(data), 1480):
    part = data[off:off + 1480]
    more = off + len(part) < len(data)
    expect["c"].append(build(Ether(src=C, dst=HOST_C) /
                             IP(src="10.0.1.2", dst="10.0.3.2", id=4, ttl=63, proto=17,
                                flags="MF" if more else 0, frag=off // 8) / Raw(part)))
p = udp("10.0.3.2", 4000, 5, flags="DF")
send_a.append(p)
expect["a"].append(error(p, 3, 4, mtu=1500))
# TTL 1: time exceeded quoting 548 bytes of the 5000-byte datagram.
p = udp("10.0.2.2", 5000, 6, ttl=1)
send_a.append(p)
expect["a"].append(error(p, 11, 0))
write(OUT, "send-a.pcap", send_a)
for port in ("a", "b", "c"):
    write(OUT, f"expect-{port}.pcap", expect[port])
