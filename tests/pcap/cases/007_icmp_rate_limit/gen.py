#!/usr/bin/python3
"""007 ICMP rate limit (RFC 1812 §4.3.2.8): ICMP errors come from one token
bucket (icmp.burst = 4, icmp.rate_per_sec = 1). Of 20 datagrams with TTL 1,
the first 4 get a time exceeded; the other 16 and 3 more without a route are
counted as icmp_rate_limited. Echo replies are not errors and are not
limited."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A = "02:00:00:00:00:0a"
HOST_A = "02:00:00:01:00:02"
BURST = 4
send_a, expect_a = [], []

for i in range(20):
    p = build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.2.2", ttl=1, id=1000 + i) /
              UDP(sport=33434 + i, dport=33434) / Raw(b"traceroute probe"))
    send_a.append(p)
    if i < BURST:
        expect_a.append(icmp_error(p, 11, 0, "10.0.1.1", A, HOST_A, ip_id=i + 1))
for i in range(3):
    send_a.append(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="203.0.113.1") /
                        UDP(sport=9, dport=9)))
for seq in (1, 2):
    p = build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.1.1") /
              ICMP(type=8, id=1, seq=seq) / Raw(b"still answered"))
    send_a.append(p)
    expect_a.append(echo_reply(p, A, HOST_A))

write(OUT, "send-a.pcap", send_a)
write(OUT, "expect-a.pcap", expect_a)
