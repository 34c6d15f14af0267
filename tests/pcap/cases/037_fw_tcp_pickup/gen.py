#!/usr/bin/python3
"""037 TCP pickup (firewall.tcp_pickup): connections the gateway has no
session for (it restarted, or the firewall was just turned on) go on if the
policy accepts them, as with netfilter's loose tracking.

- up: 203.0.113.10:51000 -> 192.0.2.10:80, an ACK with data in the middle of
  a connection: the policy (uplink -> lan, "web": tcp 80) accepts it, a
  session that only filters is made (fw_sessions_created, fw_tcp_picked_up)
  and the segment is routed as it is (TTL - 1).
- up: the same mid-stream ACK to port 81: no rule, the default drop
  (fw_denied).
- up: a RST to port 80 with no session starts nothing (fw_tcp_not_syn).
- up: SYN+FIN to port 80: not a connection's segment (fw_tcp_not_syn).
- lan: the server's ACK back to 51000 passes through the session; its ACK
  to port 51001 (no session: lan -> uplink has no policy, built-in accept)
  is picked up too."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP  # noqa: E402

OUT = out_dir(__file__)
UP, LAN = "02:00:00:00:00:01", "02:00:00:00:00:02"
USER_MAC, SERVER_MAC = "02:00:00:aa:00:0a", "02:00:00:bb:00:0a"
USER, SERVER = "203.0.113.10", "192.0.2.10"
send_up, send_lan, expect_up, expect_lan = [], [], [], []
ip_id = 3700


def tcp(port_mac, src_mac, src, dst, sport, dport, flags, seq, ack=0, data=b""):
    global ip_id
    ip_id += 1
    p = (Ether(src=src_mac, dst=port_mac) / IP(src=src, dst=dst, id=ip_id, flags="DF") /
         TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))
    return build(p / Raw(data) if data else p)


p = tcp(UP, USER_MAC, USER, SERVER, 51000, 80, "PA", 5000, 9000, b"GET / HTTP/1.1\r\n\r\n")
send_up.append(p)
expect_lan.append(routed(p, LAN, SERVER_MAC))
send_up.append(tcp(UP, USER_MAC, USER, SERVER, 51001, 81, "A", 6000, 9100))
send_up.append(tcp(UP, USER_MAC, USER, SERVER, 51002, 80, "R", 7000))
send_up.append(tcp(UP, USER_MAC, USER, SERVER, 51003, 80, "SF", 8000))

p = tcp(LAN, SERVER_MAC, SERVER, USER, 80, 51000, "A", 9000, 5018)
send_lan.append(p)
expect_up.append(routed(p, UP, USER_MAC))
p = tcp(LAN, SERVER_MAC, SERVER, USER, 80, 51001, "A", 9100, 6000)
send_lan.append(p)
expect_up.append(routed(p, UP, USER_MAC))

write(OUT, "send-up.pcap", send_up)
write(OUT, "send-lan.pcap", send_lan)
write(OUT, "expect-up.pcap", expect_up)
write(OUT, "expect-lan.pcap", expect_lan)
