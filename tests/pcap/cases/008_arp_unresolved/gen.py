#!/usr/bin/python3
"""008 unresolved next hop: six packets to 10.0.2.9, which never answers ARP.
Four wait (arp.queue_per_neighbor), two are dropped (neighbor_queue_full).
The dataplane asks twice (arp.retries, arp.retry_ms apart), then drops the
waiting four (neighbor_unresolved) and sends one ICMP host unreachable (RFC
1812 §4.3.3.1) about the first, quoting it as it was held: TTL already
decremented."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
HOST_A = "02:00:00:01:00:02"
send_a, expect_a, expect_b = [], [], []

for i in range(6):
    send_a.append(build(Ether(src=HOST_A, dst=A) / IP(src="10.0.1.2", dst="10.0.2.9", id=i) /
                        UDP(sport=4000 + i, dport=53) / Raw(b"lost %d" % i)))
arp_request = build(Ether(src=B, dst="ff:ff:ff:ff:ff:ff") /
                    ARP(op=1, hwsrc=B, psrc="10.0.2.1", hwdst="00:00:00:00:00:00",
                        pdst="10.0.2.9"))
expect_b += [arp_request, arp_request]
held = routed(send_a[0], A, HOST_A)  # as held: TTL 63 (the MACs are not quoted)
expect_a.append(icmp_error(held, 3, 1, "10.0.1.1", A, HOST_A, ip_id=1))

write(OUT, "send-a.pcap", send_a)
write(OUT, "expect-a.pcap", expect_a)
write(OUT, "expect-b.pcap", expect_b)
