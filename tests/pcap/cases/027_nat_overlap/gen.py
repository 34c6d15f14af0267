#!/usr/bin/python3
"""027 NAT with overlapping VDCs: domains 7 and 8 both use 10.0.0.0/24, both
gateways are 10.0.0.254 and both publish a workload 10.0.0.5. Sessions and
port pools are per domain, so a user's connections to the two resources
become the very same five-tuple (10.0.0.254:1024 -> 10.0.0.5:3389) in two
domains; each leaves only on its own domain's port, and each domain's reply
goes back to the right user connection from the right public address/port.

- rdp7: 198.51.100.7:3389/tcp -> domain 7; rdp8: 198.51.100.8:3389/tcp ->
  domain 8 (same port, another public address).
- app7: 198.51.100.7:4000/udp -> domain 7 :4000; app8: 198.51.100.7:4001/udp
  -> domain 8 :4000 (same address, another port).
Each gateway address answers pings in its own domain only (echo replies go
out of the port they came from; those ports' order is not checked since
they mix service and worker packets)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC7, VDC8 = "02:00:00:00:00:01", "02:00:00:00:00:07", "02:00:00:00:00:08"
ROUTER, W7, W8 = "02:00:00:aa:00:fe", "02:00:00:07:00:05", "02:00:00:08:00:05"
GW, INNER, USER = "10.0.0.254", "10.0.0.5", "203.0.113.10"
PORT_MAC = {"vdc7": VDC7, "vdc8": VDC8}
WL_MAC = {"vdc7": W7, "vdc8": W8}

send = {"up": [], "vdc7": [], "vdc8": []}
expect = {"up": [], "vdc7": [], "vdc8": []}
ip_id = 700


def pkt(src_mac, port_mac, src, dst, l4, ttl=64):
    global ip_id
    ip_id += 1
    return build(Ether(src=src_mac, dst=port_mac) / IP(src=src, dst=dst, id=ip_id, ttl=ttl) / l4)


def inbound(public, l4, vdc, gw_port, inner_port):
    p = pkt(ROUTER, UP, USER, public, l4)
    send["up"].append(p)
    expect[vdc].append(translated(p, PORT_MAC[vdc], WL_MAC[vdc], src=GW, dst=INNER,
                                  sport=gw_port, dport=inner_port))


def outbound(vdc, l4, public, public_port, user_port):
    p = pkt(WL_MAC[vdc], PORT_MAC[vdc], INNER, GW, l4, ttl=128)
    send[vdc].append(p)
    expect["up"].append(translated(p, UP, ROUTER, src=public, dst=USER, sport=public_port,
                                   dport=user_port))


inbound("198.51.100.7", TCP(sport=50000, dport=3389, flags="S", seq=7000), "vdc7", 1024, 3389)
inbound("198.51.100.8", TCP(sport=50000, dport=3389, flags="S", seq=8000), "vdc8", 1024, 3389)
inbound("198.51.100.7", UDP(sport=50001, dport=4000) / Raw(b"to app7"), "vdc7", 1024, 4000)
inbound("198.51.100.7", UDP(sport=50001, dport=4001) / Raw(b"to app8"), "vdc8", 1024, 4000)

outbound("vdc7", TCP(sport=3389, dport=1024, flags="SA", seq=77000, ack=7001),
         "198.51.100.7", 3389, 50000)
outbound("vdc7", UDP(sport=4000, dport=1024) / Raw(b"from app7"), "198.51.100.7", 4000, 50001)
outbound("vdc8", TCP(sport=3389, dport=1024, flags="SA", seq=88000, ack=8001),
         "198.51.100.8", 3389, 50000)
outbound("vdc8", UDP(sport=4000, dport=1024) / Raw(b"from app8"), "198.51.100.7", 4001, 50001)

for vdc in ("vdc7", "vdc8"):
    req = pkt(WL_MAC[vdc], PORT_MAC[vdc], INNER, GW, ICMP(type=8, id=5, seq=1) / Raw(vdc.encode()))
    send[vdc].append(req)
    expect[vdc].append(echo_reply(req, PORT_MAC[vdc], WL_MAC[vdc]))

for port in send:
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
