#!/usr/bin/python3
"""010 jumbo echo: echo requests to the port's own address, of 2000 bytes (one
mbuf) and 3000 and 8000 bytes (chained mbufs), are all answered (RFC 1122
§3.2.2.6: a host SHOULD answer echo requests of any size it can receive)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403

OUT = out_dir(__file__)
A, HOST_A = "02:00:00:00:00:0a", "02:00:00:01:00:02"
send_a, expect_a = [], []
for seq, total in enumerate([2000, 3000, 8000], 1):
    req = build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.1.1", id=seq) /
                ICMP(type=8, id=3, seq=seq) / Raw(bytes(i % 256 for i in range(total - 28))))
    send_a.append(req)
    expect_a.append(echo_reply(req, A, HOST_A))

write(OUT, "send-a.pcap", send_a)
write(OUT, "expect-a.pcap", expect_a)
