#!/usr/bin/python3
"""014 fragment bounds: a datagram, header included, is at most 65535 bytes
(RFC 791 §3.1, total length), so a fragment whose header + offset + payload
passes 65535 cannot belong to a valid datagram (the "ping of death") and is
dropped as ipv4_bad_fragment. The last valid byte is forwarded."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
HOST_A, HOST_B = "02:00:00:01:00:02", "02:00:00:02:00:02"
LAST_OFFSET = 65512 // 8  # the highest 8-byte unit below 65535 - 20


def last_fragment(payload_len):
    return build(Ether(src=HOST_A, dst=A) /
                 IP(src="10.0.1.2", dst="10.0.2.2", id=42, proto=17, frag=LAST_OFFSET) /
                 Raw(b"\x00" * payload_len))


fits = last_fragment(3)       # 20 + 65512 + 3 = 65535: the largest datagram
too_long = last_fragment(4)   # 65536
way_too_long = last_fragment(23)  # 65555, but offset + payload is still 65535
write(OUT, "send-a.pcap", [fits, too_long, way_too_long])
write(OUT, "expect-a.pcap", [])
write(OUT, "expect-b.pcap", [routed(fits, B, HOST_B)])
