#!/usr/bin/python3
"""032 Firewall, stateful UDP and ICMP: a flow's first packet is judged, its
replies (and ICMP errors about it) pass through its session.

Policy uplink -> vdc-7, default drop: "dns" (udp dport 53 to 10.0.0.5) and
"ping" (icmp type 8 to 10.0.0.7) accept. Policy vdc-7 -> uplink, default
drop: "ntp" (udp dport 123 from 10.0.0.5) accepts. Mappings: .7 udp 53 -> 10.0.0.5:53,
.7 udp 27015 -> 10.0.0.5:28015, .8 -> 10.0.0.7 and .9 -> 10.0.0.9 (whole
addresses); source NAT of domain 7 to .7.

Round 0, the uplink (user 203.0.113.10):
- UDP :40000 -> .7:53: accepted (gateway port 1024), translated.
- UDP :40001 -> .7:53: accepted (1025), translated.
- UDP :40002 -> .7:27015: mapped but no rule: fw_denied (no port taken).
- echo id 0x1234 -> .8: accepted by "ping" (after DNAT: to 10.0.0.7),
  identifier 1024 of the gateway's ICMP pool.
- echo -> .9 (10.0.0.9: "ping" does not name it): fw_denied.
Round 0, the VDC:
- the DNS answer 10.0.0.5:53 -> 10.0.0.254:1024: the session's reply,
  translated back (.7:53 -> user:40000); no policy judges it.
- port unreachable (3/3) from 10.0.0.5 about the second query (gateway
  port 1025): related to an accepted session, it passes translated like the
  session (RFC 5508 §4): outer .7 -> user, the quote as the user sent it
  (with the quoted TTL, 63).
- the echo reply (10.0.0.7, identifier 1024): back to the user as from .8,
  identifier 0x1234.
- UDP 10.0.0.5:5353 -> user:40000, unsolicited (no session has it as a
  reply: session 1's reply comes to the gateway address): a new flow from
  vdc-7 to the uplink through source NAT, and the policy's default drops it
  (fw_denied). The same for an echo request from 10.0.0.5 to the user.
- UDP 10.0.0.5:123 -> 192.0.2.123:123: accepted by "ntp" (which sees the
  source before SNAT), source NAT to .7:1024 (the public address's own
  pool). The same from 10.0.0.6: not the rule's source, fw_denied.
Round 1, the uplink: the NTP server's answer to .7:1024 (translated to
10.0.0.5:123), a second query on session 1 and a second echo request
(sequence 2) of the echo session pass through their sessions."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER = "02:00:00:aa:00:fe"
W5, W7 = "02:00:00:07:00:05", "02:00:00:07:00:07"
PUB7, PUB8, PUB9, GW = "198.51.100.7", "198.51.100.8", "198.51.100.9", "10.0.0.254"
USER, NTP = "203.0.113.10", "192.0.2.123"

R = [dict(up=[], vdc=[]) for _ in range(2)]
expect = {"up": [], "vdc": []}
ip_id = 3200


def nid():
    global ip_id
    ip_id += 1
    return ip_id


def from_up(src, dst, l4):
    return build(Ether(src=ROUTER, dst=UP) / IP(src=src, dst=dst, id=nid()) / l4)


def from_vdc(mac, src, dst, l4, **ip):
    return build(Ether(src=mac, dst=VDC) / IP(src=src, dst=dst, id=nid(), **ip) / l4)


def as_seen(p, ttl):
    """The IP packet of frame `p` with another TTL (and its checksum): what
    an erring node quotes."""
    q = IP(raw(p[IP]))
    q.ttl = ttl
    del q.chksum
    return raw(q)


# --- round 0, the uplink ---
q1 = from_up(USER, PUB7, UDP(sport=40000, dport=53) / Raw(b"query one"))
R[0]["up"].append(q1)
q1_in = translated(q1, VDC, W5, src=GW, dst="10.0.0.5", sport=1024)
expect["vdc"].append(q1_in)
q2 = from_up(USER, PUB7, UDP(sport=40001, dport=53) / Raw(b"query two"))
R[0]["up"].append(q2)
q2_in = translated(q2, VDC, W5, src=GW, dst="10.0.0.5", sport=1025)
expect["vdc"].append(q2_in)
R[0]["up"].append(from_up(USER, PUB7, UDP(sport=40002, dport=27015) / Raw(b"join")))  # denied
ping1 = from_up(USER, PUB8, ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping one"))
R[0]["up"].append(ping1)
expect["vdc"].append(translated(ping1, VDC, W7, src=GW, dst="10.0.0.7", ident=1024))
R[0]["up"].append(from_up(USER, PUB9, ICMP(type=8, id=0x1235, seq=1) / Raw(b"ping nine")))  # denied

# --- round 0, the VDC ---
ans = from_vdc(W5, "10.0.0.5", GW, UDP(sport=53, dport=1024) / Raw(b"answer one"))
R[0]["vdc"].append(ans)
expect["up"].append(translated(ans, UP, ROUTER, src=PUB7, dst=USER, sport=53, dport=40000))
# Port unreachable about the second query, as the workload received it.
err = from_vdc(W5, "10.0.0.5", GW, ICMP(type=3, code=3) / Raw(as_seen(q2_in, IP(raw(q2_in[IP])).ttl)),
               tos=0xC0)
R[0]["vdc"].append(err)
expect["up"].append(build(
    Ether(src=UP, dst=ROUTER) /
    IP(src=PUB7, dst=USER, id=err[IP].id, ttl=err[IP].ttl - 1, tos=0xC0) /
    ICMP(type=3, code=3) / Raw(as_seen(q2, q2_in[IP].ttl))))
pong = from_vdc(W7, "10.0.0.7", GW, ICMP(type=0, id=1024, seq=1) / Raw(b"ping one"))
R[0]["vdc"].append(pong)
expect["up"].append(translated(pong, UP, ROUTER, src=PUB8, dst=USER, ident=0x1234))
R[0]["vdc"].append(from_vdc(W5, "10.0.0.5", USER, UDP(sport=5353, dport=40000) /
                            Raw(b"unsolicited")))                                  # denied
R[0]["vdc"].append(from_vdc(W5, "10.0.0.5", USER, ICMP(type=8, id=77, seq=1)))     # denied
ntp = from_vdc(W5, "10.0.0.5", NTP, UDP(sport=123, dport=123) / Raw(b"ntp request"))
R[0]["vdc"].append(ntp)
expect["up"].append(translated(ntp, UP, ROUTER, src=PUB7, sport=1024))
R[0]["vdc"].append(from_vdc("02:00:00:07:00:06", "10.0.0.6", NTP, UDP(sport=123, dport=123) /
                            Raw(b"ntp request")))                                # denied

# --- round 1, the uplink ---
ntp_ans = from_up(NTP, PUB7, UDP(sport=123, dport=1024) / Raw(b"ntp answer"))
R[1]["up"].append(ntp_ans)
expect["vdc"].append(translated(ntp_ans, VDC, W5, dst="10.0.0.5", dport=123))
q1b = from_up(USER, PUB7, UDP(sport=40000, dport=53) / Raw(b"query one again"))
R[1]["up"].append(q1b)
expect["vdc"].append(translated(q1b, VDC, W5, src=GW, dst="10.0.0.5", sport=1024))
ping2 = from_up(USER, PUB8, ICMP(type=8, id=0x1234, seq=2) / Raw(b"ping two"))
R[1]["up"].append(ping2)
expect["vdc"].append(translated(ping2, VDC, W7, src=GW, dst="10.0.0.7", ident=1024))

send = rounds(R)
for port in ("up", "vdc"):
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
if len(sys.argv) == 1:
    print("eth_not_for_us:", count_fillers(send))
