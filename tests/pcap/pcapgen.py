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


# --- rounds: making peers on different ports take turns ---

# A MAC that is no port's: frames to it are dropped as eth_not_for_us before
# anything else looks at them.
FILLER_MAC = "02:00:00:99:99:99"
BURST = 32  # packets a worker reads from a port per poll (kBurst)


def filler_frame(filler_mac=FILLER_MAC, n=0):
    """One frame for another MAC (a unicast address no port has): the
    dataplane drops it at once as eth_not_for_us."""
    return build(Ether(src="02:00:00:99:99:98", dst=filler_mac) /
                 IP(src="192.0.2.253", dst="192.0.2.254", id=n & 0xFFFF) /
                 Raw(b"filler frame for another MAC"))


def rounds(per_round, filler_mac=FILLER_MAC):
    """The send pcaps' frames for a case played in rounds.

    With one worker, each poll reads up to 32 frames from every port's send
    pcap in port order (config.json's `ports`), so round k is frames
    [32k, 32k + 32) of each port: every port's frames of round k are handled
    before any frame of round k + 1, and within a round port A's before port
    B's when A comes first. That is how two peers take turns (SYN, SYN-ACK,
    ACK, ...), which TCP window tracking needs.

    `per_round` is a list of {port: [frames]}, at most 32 frames per port
    and round. Each round's list of a port is padded to exactly 32 with
    filler frames to `filler_mac` (another MAC: dropped as eth_not_for_us,
    which case.json must list; count them with count_fillers), except the
    port's last round with frames, which is not padded. A port without
    frames in a round before its last gets 32 fillers. Returns {port:
    [frames]} for every port named in any round."""
    ports = []
    for r in per_round:
        for p in r:
            if p not in ports:
                ports.append(p)
    last = {p: -1 for p in ports}  # each port's last round with frames
    for k, r in enumerate(per_round):
        for p, frames in r.items():
            if frames:
                last[p] = k
    out = {p: [] for p in ports}
    n = 0
    for k, r in enumerate(per_round):
        for p in ports:
            frames = list(r.get(p, []))
            if len(frames) > BURST:
                raise ValueError(f"round {k}, port {p}: {len(frames)} frames, at most {BURST}")
            if k > last[p]:
                continue
            out[p] += frames
            if k < last[p]:
                for _ in range(BURST - len(frames)):
                    out[p].append(filler_frame(filler_mac, n))
                    n += 1
    return out


def count_fillers(frames_by_port, filler_mac=FILLER_MAC):
    """How many frames of {port: [frames]} go to `filler_mac` (the
    eth_not_for_us drops that rounds() added)."""
    mac = filler_mac.lower()
    return sum(1 for frames in frames_by_port.values() for f in frames
               if Ether(raw(f) if not isinstance(f, (bytes, bytearray)) else f).dst.lower() == mac)
