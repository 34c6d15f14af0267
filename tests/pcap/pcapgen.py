"""What every case's gen.py shares: where to write, how to write a pcap
reproducibly, and the few packets the dataplane derives from others (a routed
copy, an ICMP error, an echo reply). Imported by gen.py only; the runner does
not use it.

    import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    from pcapgen import *
"""
import pathlib
import sys

from scapy.all import ARP, ICMP, IP, Ether, Raw, conf, raw  # noqa: F401  (re-exported)
from scapy.utils import PcapWriter

conf.verb = 0

# RFC 1812 §4.3.2.3: an ICMP error quotes as much as fits in 576 bytes.
ICMP_QUOTE_MAX = 576 - 20 - 8


def out_dir(gen_file):
    """The folder to write to: argv[1] when given (the runner's staleness
    check), otherwise the case folder itself."""
    return pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(gen_file).parent


def write(folder, name, pkts):
    """Writes `pkts` (scapy packets or raw bytes) as an Ethernet pcap with
    fixed timestamps, so that regenerating gives the same bytes."""
    w = PcapWriter(str(pathlib.Path(folder) / name), linktype=1, sync=True)
    w.write_header(None)
    for i, p in enumerate(pkts):
        data = p if isinstance(p, (bytes, bytearray)) else raw(p)
        w.write_packet(bytes(data), sec=1700000000, usec=i)
    w.close()


def routed(p, src_mac, dst_mac, ttl_dec=1):
    """`p` as a router forwards it: MACs rewritten, TTL decremented, header
    checksum recomputed, nothing else changed."""
    q = Ether(raw(p))
    q[Ether].src, q[Ether].dst = src_mac, dst_mac
    q[IP].ttl -= ttl_dec
    del q[IP].chksum
    return Ether(raw(q))


def icmp_error(orig, icmp_type, code, src_ip, src_mac, dst_mac, ip_id, mtu=None):
    """The ICMP error the dataplane sends about `orig` (an Ether/IP packet as
    it stood when the error was decided): TTL 64, TOS 0xc0 (RFC 1812
    §4.3.2.5), quoting the original datagram up to 576 bytes in all."""
    quote = raw(orig[IP])[: orig[IP].len][:ICMP_QUOTE_MAX]
    icmp = ICMP(type=icmp_type, code=code)
    if mtu is not None:
        icmp = ICMP(type=icmp_type, code=code, nexthopmtu=mtu)  # RFC 1191
    p = (Ether(src=src_mac, dst=dst_mac) /
         IP(src=src_ip, dst=orig[IP].src, ttl=64, tos=0xC0, id=ip_id, flags=0) /
         icmp / Raw(quote))
    return Ether(raw(p))


def echo_reply(req, src_mac, dst_mac):
    """The echo reply (RFC 792) to `req`: addresses swapped, type 0, TTL 64,
    everything else (id, tos, flags, identifier, sequence, data) kept."""
    ip = req[IP]
    p = (Ether(src=src_mac, dst=dst_mac) /
         IP(src=ip.dst, dst=ip.src, ttl=64, tos=ip.tos, id=ip.id, flags=ip.flags) /
         ICMP(type=0, code=0, id=req[ICMP].id, seq=req[ICMP].seq) / raw(req[ICMP].payload))
    return Ether(raw(p))


def build(p):
    """A packet as it is on the wire (fields like len and chksum filled in)."""
    return Ether(raw(p))


def translated(p, src_mac, dst_mac, src=None, dst=None, sport=None, dport=None, ident=None,
               ttl_dec=1):
    """`p` as a NAT forwards it: routed (MACs rewritten, TTL decremented) with
    the given addresses, TCP/UDP ports or ICMP echo identifier replaced and
    every checksum recomputed (an incremental update must give the same
    bytes); a UDP checksum of 0 (none) stays 0. Unfragmented packets only."""
    from scapy.all import TCP, UDP
    q = Ether(raw(p))
    q[Ether].src, q[Ether].dst = src_mac, dst_mac
    ip = q[IP]
    ip.ttl -= ttl_dec
    if src is not None:
        ip.src = src
    if dst is not None:
        ip.dst = dst
    del ip.chksum
    for proto in (TCP, UDP):
        if proto in q and q[proto].underlayer is ip:
            l4 = q[proto]
            if sport is not None:
                l4.sport = sport
            if dport is not None:
                l4.dport = dport
            if not (proto is UDP and l4.chksum == 0):
                del l4.chksum
    if ICMP in q and q[ICMP].underlayer is ip:
        if ident is not None:
            q[ICMP].id = ident
        del q[ICMP].chksum
    return Ether(raw(q))
