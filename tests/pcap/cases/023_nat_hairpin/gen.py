#!/usr/bin/python3
"""023 NAT hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): a host inside a VDC
that connects to a published address of domain 0 reaches the published
workload as a user from the internet would, translated the same way: the
destination becomes the inner address and port, the source the target
domain's gateway address with a port of that domain's pool. The reply comes
back to the host from the published address and port, never from the
workload's inner address.

- 10.0.0.20 (domain 7) -> .7:3389 -> 10.0.0.5 (domain 7): gw 10.0.0.254:1024.
- 10.0.0.5 -> its own published .7:3389 (a server connecting to itself):
  10.0.0.254:1025 -> 10.0.0.5:3389.
- 10.0.0.20 (domain 7) -> .7:80 -> 10.0.8.5:8080 (domain 8): gw
  10.0.8.254:1024 (domain 8's own pool).
- 10.0.8.20 (domain 8) -> .7:3389 -> 10.0.0.5 (domain 7): 10.0.0.254:1026.

Ordering: ports are polled up, vdc, vdc8. A reply on the same port as its
first packet comes after it in the same burst; the reply to the domain 8
host's SYN (sent on vdc8) goes in vdc's second burst, behind filler frames
for another MAC (eth_not_for_us)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP  # noqa: E402

OUT = out_dir(__file__)
VDC, VDC8 = "02:00:00:00:00:07", "02:00:00:00:00:08"
W5, H20 = "02:00:00:07:00:05", "02:00:00:07:00:14"
W8_5, H8_20 = "02:00:00:08:00:05", "02:00:00:08:00:14"
PUB, GW7, GW8 = "198.51.100.7", "10.0.0.254", "10.0.8.254"

send = {"vdc": [], "vdc8": []}
expect = {"vdc": [], "vdc8": []}
ip_id = 400


def tcp(src_mac, port_mac, src, dst, sport, dport, flags, seq, ack=0):
    global ip_id
    ip_id += 1
    return build(Ether(src=src_mac, dst=port_mac) /
                 IP(src=src, dst=dst, id=ip_id, flags="DF") /
                 TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))


def hop(in_port, p, out_port, out_mac, next_mac, **rw):
    send[in_port].append(p)
    expect[out_port].append(translated(p, out_mac, next_mac, **rw))


# 10.0.0.20 -> rdp (same domain)
hop("vdc", tcp(H20, VDC, "10.0.0.20", PUB, 41000, 3389, "S", 100),
    "vdc", VDC, W5, src=GW7, dst="10.0.0.5", sport=1024, dport=3389)
hop("vdc", tcp(W5, VDC, "10.0.0.5", GW7, 3389, 1024, "SA", 900, 101),
    "vdc", VDC, H20, src=PUB, dst="10.0.0.20", sport=3389, dport=41000)
# 10.0.0.20 -> web8 (domain 8)
hop("vdc", tcp(H20, VDC, "10.0.0.20", PUB, 41001, 80, "S", 200),
    "vdc8", VDC8, W8_5, src=GW8, dst="10.0.8.5", sport=1024, dport=8080)
# 10.0.0.5 -> its own published address
hop("vdc", tcp(W5, VDC, "10.0.0.5", PUB, 50010, 3389, "S", 300),
    "vdc", VDC, W5, src=GW7, dst="10.0.0.5", sport=1025, dport=3389)
hop("vdc", tcp(W5, VDC, "10.0.0.5", GW7, 3389, 1025, "SA", 700, 301),
    "vdc", VDC, W5, src=PUB, dst="10.0.0.5", sport=3389, dport=50010)
# domain 8's port, polled after vdc's first burst
hop("vdc8", tcp(H8_20, VDC8, "10.0.8.20", PUB, 42000, 3389, "S", 400),
    "vdc", VDC, W5, src=GW7, dst="10.0.0.5", sport=1026, dport=3389)
hop("vdc8", tcp(W8_5, VDC8, "10.0.8.5", GW8, 8080, 1024, "SA", 800, 201),
    "vdc", VDC, H20, src=PUB, dst="10.0.0.20", sport=80, dport=41001)
# vdc's second burst: the reply to the domain 8 host
FILLERS = 32 - len(send["vdc"])
for i in range(FILLERS):
    send["vdc"].append(build(Ether(src=W5, dst="02:00:00:99:99:99") /
                             IP(src="10.0.0.5", dst="10.0.0.20") / Raw(b"filler")))
hop("vdc", tcp(W5, VDC, "10.0.0.5", GW7, 3389, 1026, "SA", 600, 401),
    "vdc8", VDC8, H8_20, src=PUB, dst="10.0.8.20", sport=3389, dport=42000)

for port in ("vdc", "vdc8"):
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
