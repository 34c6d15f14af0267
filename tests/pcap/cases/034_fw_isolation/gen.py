#!/usr/bin/python3
"""034 Firewall, isolation between VDCs: traffic from one VDC zone to
another passes only where a policy joins them, one way; hairpinning through
a published address is traffic between the two VDCs (the source zone is
the one the packet came from, the destination zone the published
workload's).

Published on 198.51.100.7: tcp 443, 80 and 2208 (-> 22) -> 10.0.8.5
(domain 8), tcp 22 -> 10.0.7.5 (domain 7). Policy vdc-7 -> vdc-8 (default
drop): "https" (tcp dport 443 from 10.0.7.0/24 to 10.0.8.5: the source
before SNAT, the destination after DNAT) accepts, "no-web" (tcp dport 80)
drops. No other policy: uplink -> vdc-8 is accepted (built-in), vdc-9 ->
vdc-8 and vdc-8 -> vdc-7 are isolated (built-in drop, fw_isolation),
vdc-8 -> vdc-8 is within one zone (accepted).

Logging: "https" and "no-web" are logged, through a bucket of one record
refilled at one a second (firewall.log_per_sec 1; the case takes
milliseconds). The https accept takes the one record (fw_logged), the four
no-web drops after it find the bucket empty (fw_log_suppressed). The
policy's default and the built-in verdicts are no logged rule's, and
packets of a session are no first packets: none of them is logged.

Round 0 (ports polled up, vdc7, vdc8, vdc9):
- up: the user 203.0.113.10 -> .7:443 and .7:80: accepted, to 10.0.8.5
  from 10.0.8.254:1024 and :1025.
- vdc7: 10.0.7.20 -> .7:443: hairpinned, accepted by "https" (logged),
  to 10.0.8.5 from 10.0.8.254:1026; 10.0.7.20 -> .7:80 four times (four
  flows): "no-web": fw_denied, no port taken; -> .7:2208 (10.0.8.5:22):
  the policy's default drop, fw_denied.
- vdc8: the SYN-ACKs for 1024, 1025 (to the user, as from .7) and 1026
  (out of the vdc7 port to 10.0.7.20, as from .7:443, never from the inner
  address); 10.0.8.20 -> .7:443, its own domain's published workload:
  accepted (gateway port 1027); 10.0.8.5 -> .7:22 (domain 7's workload):
  vdc-8 -> vdc-7 has no policy, the vdc-7 -> vdc-8 one does not count
  backwards: fw_isolation.
- vdc9: 10.0.9.20 -> .7:443 and -> .7:80: no policy vdc-9 -> vdc-8:
  fw_isolation (built-in verdicts are not logged).

Without NAT, explicit zones do the same within one domain: ports lan1 and
lan2 of domain 0 are zones dmz1 and dmz2 of kind vdc. Policy uplink -> dmz1
(default drop): "web1" (tcp 80 to 192.0.2.10) accepts.
- up: user:51000 -> 192.0.2.10:80: accepted, a session that only filters
  (fw_sessions_created), routed as it is (TTL - 1); :51001 -> :81:
  fw_denied.
- lan1: the SYN-ACK, through the session; 192.0.2.10 -> 192.0.2.70 (dmz2):
  fw_isolation; an ACK to a user port with no session (dmz1 -> uplink has
  no policy, the built-in accept, but a new TCP flow starts with a SYN):
  fw_tcp_not_syn.
- lan2: 192.0.2.70 -> 192.0.2.10 (dmz2 -> dmz1): fw_isolation.

Round 1: the ACKs completing the accepted handshakes (the user twice,
10.0.7.20), the SYN-ACK for 1027 and 10.0.8.20's ACK after it, all
forwarded. An ICMP error quoting the dmz1 flow passes to the quoted
packet's sender, 192.0.2.10; the same quote addressed to 192.0.2.11 does
not (fw_icmp_unrelated): a session only vouches for errors to its own
endpoints."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import ICMP, TCP  # noqa: E402

OUT = out_dir(__file__)
UP = "02:00:00:00:00:01"
PORT_MAC = {"up": UP, "vdc7": "02:00:00:00:00:07", "vdc8": "02:00:00:00:00:08",
            "vdc9": "02:00:00:00:00:09", "lan1": "02:00:00:00:00:0a", "lan2": "02:00:00:00:00:0b"}
L10, L70 = "02:00:00:0a:00:0a", "02:00:00:0b:00:46"
ROUTER = "02:00:00:aa:00:fe"
H7_20, W8_5, H8_20, H9_20, W7_5 = ("02:00:00:07:00:14", "02:00:00:08:00:05",
                                   "02:00:00:08:00:14", "02:00:00:09:00:14", "02:00:00:07:00:05")
PUB, GW8 = "198.51.100.7", "10.0.8.254"
USER = "203.0.113.10"
PORTS = ("up", "vdc7", "vdc8", "vdc9", "lan1", "lan2")

R = [{p: [] for p in PORTS} for _ in range(2)]
expect = {p: [] for p in PORTS}
ip_id = 3400


def tcp(port, src_mac, src, dst, sport, dport, flags, seq, ack=0):
    global ip_id
    ip_id += 1
    return build(Ether(src=src_mac, dst=PORT_MAC[port]) /
                 IP(src=src, dst=dst, id=ip_id, flags="DF") /
                 TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))


def hop(k, port, p, out_port, next_mac, **rw):
    """Round k: `p` arrives on `port` and leaves `out_port` translated."""
    R[k][port].append(p)
    expect[out_port].append(translated(p, PORT_MAC[out_port], next_mac, **rw))


def to_w8(k, port, src_mac, src, sport, dport, flags, seq, ack, gw_port):
    hop(k, port, tcp(port, src_mac, src, PUB, sport, dport, flags, seq, ack),
        "vdc8", W8_5, src=GW8, dst="10.0.8.5", sport=gw_port)


def from_w8(k, gw_port, public_port, flags, seq, ack, out_port, peer_mac, peer, peer_port):
    hop(k, "vdc8", tcp("vdc8", W8_5, "10.0.8.5", GW8, public_port, gw_port, flags, seq, ack),
        out_port, peer_mac, src=PUB, dst=peer, dport=peer_port)


def dropped(k, port, p):
    R[k][port].append(p)


# --- round 0 ---
to_w8(0, "up", ROUTER, USER, 50000, 443, "S", 1000, 0, 1024)
to_w8(0, "up", ROUTER, USER, 50001, 80, "S", 2000, 0, 1025)
to_w8(0, "vdc7", H7_20, "10.0.7.20", 41000, 443, "S", 3000, 0, 1026)
dropped(0, "vdc7", tcp("vdc7", H7_20, "10.0.7.20", PUB, 41001, 80, "S", 4000))  # no-web
for k in range(3):                                                                # no-web
    dropped(0, "vdc7", tcp("vdc7", H7_20, "10.0.7.20", PUB, 41002 + k, 80, "S", 4100 + k))
dropped(0, "vdc7", tcp("vdc7", H7_20, "10.0.7.20", PUB, 41010, 2208, "S", 4200))  # default
from_w8(0, 1024, 443, "SA", 9000, 1001, "up", ROUTER, USER, 50000)
from_w8(0, 1025, 80, "SA", 9100, 2001, "up", ROUTER, USER, 50001)
from_w8(0, 1026, 443, "SA", 9200, 3001, "vdc7", H7_20, "10.0.7.20", 41000)
to_w8(0, "vdc8", H8_20, "10.0.8.20", 43000, 443, "S", 5000, 0, 1027)
dropped(0, "vdc8", tcp("vdc8", W8_5, "10.0.8.5", PUB, 44000, 22, "S", 6000))     # isolation
dropped(0, "vdc9", tcp("vdc9", H9_20, "10.0.9.20", PUB, 42000, 443, "S", 7000))  # isolation
dropped(0, "vdc9", tcp("vdc9", H9_20, "10.0.9.20", PUB, 42001, 80, "S", 8000))   # isolation
# Domain 0 without NAT: the user, dmz1 (lan1) and dmz2 (lan2).
hop(0, "up", tcp("up", ROUTER, USER, "192.0.2.10", 51000, 80, "S", 10000), "lan1", L10)
dropped(0, "up", tcp("up", ROUTER, USER, "192.0.2.10", 51001, 81, "S", 11000))     # no rule
hop(0, "lan1", tcp("lan1", L10, "192.0.2.10", USER, 80, 51000, "SA", 20000, 10001), "up", ROUTER)
dropped(0, "lan1", tcp("lan1", L10, "192.0.2.10", "192.0.2.70", 5000, 22, "S", 12000))  # isolation
dropped(0, "lan1", tcp("lan1", L10, "192.0.2.10", USER, 80, 51099, "A", 13000, 1))  # not a SYN
dropped(0, "lan2", tcp("lan2", L70, "192.0.2.70", "192.0.2.10", 6000, 80, "S", 14000))  # isolation

# --- round 1 ---
to_w8(1, "up", ROUTER, USER, 50000, 443, "A", 1001, 9001, 1024)
to_w8(1, "up", ROUTER, USER, 50001, 80, "A", 2001, 9101, 1025)
to_w8(1, "vdc7", H7_20, "10.0.7.20", 41000, 443, "A", 3001, 9201, 1026)
hop(1, "up", tcp("up", ROUTER, USER, "192.0.2.10", 51000, 80, "A", 10001, 20001), "lan1", L10)
from_w8(1, 1027, 443, "SA", 9300, 5001, "vdc8", H8_20, "10.0.8.20", 43000)
to_w8(1, "vdc8", H8_20, "10.0.8.20", 43000, 443, "A", 5001, 9301, 1027)


def icmp_about_dmz_flow(outer_dst):
    """An ICMP error from the user's side quoting the dmz flow's reply."""
    global ip_id
    ip_id += 1
    quote = IP(src="192.0.2.10", dst=USER, id=77, flags="DF") / TCP(sport=80, dport=51000,
                                                                     flags="A", seq=20001)
    return build(Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=outer_dst, id=ip_id) /
                 ICMP(type=3, code=3) / bytes(quote)[:28])


# It relates to the session and goes to the quoted packet's sender; the same
# quote addressed to another dmz1 host is refused (fw_icmp_unrelated).
hop(1, "up", icmp_about_dmz_flow("192.0.2.10"), "lan1", L10)
dropped(1, "up", icmp_about_dmz_flow("192.0.2.11"))

send = rounds(R)
for port in PORTS:
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
if len(sys.argv) == 1:
    print("eth_not_for_us:", count_fillers(send))
