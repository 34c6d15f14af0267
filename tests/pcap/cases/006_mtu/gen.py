#!/usr/bin/python3
"""006 MTU: port b's MTU is 576. A datagram that fits is forwarded whole. A
larger one with DF is dropped (mtu_exceeded_df) and answered with ICMP
fragmentation needed carrying the next-hop MTU (RFC 1191 §4). A larger one
without DF is cut into fragments (RFC 791 §3.2): same id, tos, protocol and
addresses, TTL - 1, payloads of (576 - 20) // 8 * 8 = 552 bytes but the last,
offsets in 8-byte units, MF on all but the last (and on the last too when the
datagram was itself a non-final fragment). The expected fragments are checked
here to reassemble into the original payload."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
HOST_A, HOST_B = "02:00:00:01:00:02", "02:00:00:02:00:02"
MTU_B = 576
CHUNK = (MTU_B - 20) // 8 * 8
send_a, expect_a, expect_b = [], [], []
errors = 0


def datagram(total, flags=0, frag=0, ip_id=1, proto=None, tos=0):
    """A datagram from host a to host b of `total` bytes of IPv4."""
    ip = IP(src="10.0.1.2", dst="10.0.2.2", id=ip_id, flags=flags, frag=frag, tos=tos)
    if proto is None:
        payload = UDP(sport=1111, dport=2222) / Raw(bytes(i % 251 for i in range(total - 28)))
    else:
        ip.proto = proto
        payload = Raw(bytes(i % 253 for i in range(total - 20)))
    return build(Ether(src=HOST_A, dst=A) / ip / payload)


def fragments(p):
    """`p` as port b sends it in fragments of at most MTU_B bytes."""
    ip = p[IP]
    data = raw(ip.payload)
    base = ip.frag * 8
    out = []
    for off in range(0, len(data), CHUNK):
        part = data[off:off + CHUNK]
        more = off + len(part) < len(data) or ip.flags.MF
        f = Ether(src=B, dst=HOST_B) / IP(src=ip.src, dst=ip.dst, id=ip.id, tos=ip.tos,
                                          ttl=ip.ttl - 1, proto=ip.proto,
                                          flags="MF" if more else 0,
                                          frag=(base + off) // 8) / Raw(part)
        out.append(build(f))
    assert all(len(f[IP]) <= MTU_B for f in out)
    assert b"".join(raw(f[IP].payload) for f in out) == data  # reassembles
    return out


def fits(p):
    send_a.append(p)
    expect_b.append(routed(p, B, HOST_B))


def too_big_df(p):
    global errors
    errors += 1
    send_a.append(p)
    expect_a.append(icmp_error(p, 3, 4, "10.0.1.1", A, HOST_A, ip_id=errors, mtu=MTU_B))


def fragmented(p):
    send_a.append(p)
    expect_b.extend(fragments(p))


fits(datagram(576, ip_id=1))
fits(datagram(576, flags="DF", ip_id=2))
too_big_df(datagram(577, flags="DF", ip_id=3))
too_big_df(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.2.2", id=4, flags="DF") /
                 TCP(sport=443, dport=50000, flags="A") / Raw(b"\x17" * 1460)))
fragmented(datagram(1400, ip_id=5, tos=0x10))
fragmented(datagram(577, ip_id=6))
# Fragments that are too big themselves: a first one (MF) and a last one.
fragmented(datagram(1020, flags="MF", ip_id=7, proto=17))
fragmented(datagram(720, frag=125, ip_id=8, proto=17))

# The whole 1400-byte datagram reassembles to what was sent.
whole = send_a[4][IP]
frags = [f for f in expect_b if f[IP].id == 5]
assert len(frags) == 3 and [len(f[IP].payload) for f in frags] == [552, 552, 276]
assert b"".join(raw(f[IP].payload) for f in sorted(frags, key=lambda f: f[IP].frag)) == \
    raw(whole.payload)

write(OUT, "send-a.pcap", send_a)
write(OUT, "expect-a.pcap", expect_a)
write(OUT, "expect-b.pcap", expect_b)
