#!/usr/bin/python3
"""005 ICMP echo (RFC 792) to the dataplane's own addresses: answered from the
address asked, routed back to the sender, with TTL 64 and everything else of
the request kept. TTL 0 or 1 does not stop a datagram addressed to us (RFC
1812 §4.2.2.9). Without an exception port, anything else to an own address is
dropped (local_unsupported); a bad ICMP checksum too (ipv4_bad_checksum)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
HOST_A, GW_A, HOST_B = "02:00:00:01:00:02", "02:00:00:01:00:fe", "02:00:00:02:00:02"
send_a, send_b, expect_a, expect_b = [], [], [], []


def ping(dst, src="10.0.1.2", mac=HOST_A, data=b"abcdefgh" * 7, seq=1, **ip):
    return build(Ether(src=mac, dst=A) / IP(src=src, dst=dst, **ip) /
                 ICMP(type=8, id=0x1234, seq=seq) / Raw(data))


def answered(req, to_mac=HOST_A):
    send_a.append(req)
    expect_a.append(echo_reply(req, A, to_mac))


answered(ping("10.0.1.1", id=500))
answered(ping("10.0.2.1", seq=2))                                # port b's address, asked on a
answered(ping("10.0.1.1", seq=3, ttl=1))
answered(ping("10.0.1.1", seq=4, ttl=0))
answered(ping("10.0.1.1", seq=5, tos=0x28, flags="DF", data=bytes(range(256)) * 5 + b"x" * 120))
answered(ping("10.0.1.1", seq=6, data=b"odd length payload, 33 bytes...!"))
answered(ping("10.0.1.1", src="198.51.100.7", mac=GW_A, seq=7), to_mac=GW_A)
# A request without data in a padded 60-byte frame: the reply is 42 bytes.
short = ping("10.0.1.1", seq=8, data=b"")
send_a.append(Ether(raw(short) + b"\xaa" * 18))
expect_a.append(echo_reply(short, A, HOST_A))

# Not answered.
bad = ping("10.0.1.1", seq=9)
bad[ICMP].chksum ^= 0x0101
send_a.append(build(bad))                                         # ipv4_bad_checksum
send_a.append(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.1.1") /
                    ICMP(type=8, code=1, id=1, seq=10)))           # code 1: local_unsupported
send_a.append(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.1.1") /
                    ICMP(type=0, id=1, seq=11)))                   # echo reply: local_unsupported
send_a.append(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.1.1", flags="MF") /
                    ICMP(type=8, id=1, seq=12) / Raw(b"12345678")))  # fragment: local_unsupported
send_a.append(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.1.1") /
                    UDP(sport=1, dport=7) / Raw(b"echo?")))        # UDP: local_unsupported
send_a.append(ping("10.0.1.255", seq=13))                         # ipv4_bad_destination

# From port b to port a's address: the reply leaves port b, from 10.0.1.1.
req = build(Ether(src=HOST_B, dst=B) / IP(src="10.0.2.2", dst="10.0.1.1") /
            ICMP(type=8, id=7, seq=1) / Raw(b"from b"))
send_b.append(req)
expect_b.append(echo_reply(req, B, HOST_B))

write(OUT, "send-a.pcap", send_a)
write(OUT, "send-b.pcap", send_b)
write(OUT, "expect-a.pcap", expect_a)
write(OUT, "expect-b.pcap", expect_b)
