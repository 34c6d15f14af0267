#!/usr/bin/python3
"""003 no route: a datagram without a route is dropped (no_route) and answered
with ICMP destination unreachable, code 0 (net unreachable), from the ingress
port's address, out of the port that routes back to the sender. No error is
sent about an ICMP error or about a non-first fragment (RFC 1812 §4.3.2.7),
and the quote stops at 576 bytes in all (RFC 1812 §4.3.2.3)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
HOST_A, GW_A, HOST_B = "02:00:00:01:00:02", "02:00:00:01:00:fe", "02:00:00:02:00:02"
NOWHERE = "203.0.113.9"

send = {"a": [], "b": []}
expect = {"a": [], "b": []}
errors = 0


def unreachable(port, p, from_ip, to_mac):
    """`p` has no route: expect a net unreachable back."""
    global errors
    errors += 1
    p = build(p)
    send[port].append(p)
    mac = A if port == "a" else B
    expect[port].append(icmp_error(p, 3, 0, from_ip, mac, to_mac, ip_id=errors))


def silent(port, p):
    """`p` has no route and gets no ICMP error."""
    send[port].append(build(p))


def from_a(payload, src="10.0.1.2", mac=HOST_A, **ip):
    return Ether(src=mac, dst=A) / IP(src=src, dst=NOWHERE, **ip) / payload


unreachable("a", from_a(UDP(sport=1, dport=2) / Raw(b"no route!")), "10.0.1.1", HOST_A)  # odd length
unreachable("a", from_a(ICMP(type=8, id=1, seq=1) / Raw(b"ping")), "10.0.1.1", HOST_A)
# ICMP errors themselves: unreachable, source quench, redirect, time exceeded,
# parameter problem. Each quotes some datagram.
quoted = raw(IP(src=NOWHERE, dst="10.0.1.2") / UDP(sport=2, dport=1))
for t, c in [(3, 1), (4, 0), (5, 1), (11, 0), (12, 0)]:
    silent("a", from_a(ICMP(type=t, code=c) / Raw(quoted)))
# An ICMP datagram too short to say what it is: no error either.
silent("a", from_a(Raw(b""), proto=1))
# A non-first fragment: silent. The first fragment: answered.
silent("a", from_a(Raw(b"f" * 16), proto=17, id=9, frag=2))
unreachable("a", from_a(Raw(b"f" * 16), proto=17, id=9, flags="MF"), "10.0.1.1", HOST_A)
# A sender behind a gateway: the error goes to the gateway's MAC, from the
# ingress port's address.
unreachable("a", from_a(UDP(sport=3, dport=4), src="198.51.100.7", mac=GW_A), "10.0.1.1", GW_A)
# A 1000-byte datagram: the quote is cut so the error is 576 bytes long.
unreachable("a", from_a(UDP(sport=5, dport=6) / Raw((bytes(range(256)) * 4)[:972])),
            "10.0.1.1", HOST_A)
# From port b: the error leaves port b from port b's address.
unreachable("b", Ether(src=HOST_B, dst=B) / IP(src="10.0.2.2", dst=NOWHERE) / UDP(sport=7, dport=8),
            "10.0.2.1", HOST_B)

assert len(expect["a"][-1][IP]) == 576
for port in ("a", "b"):
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
