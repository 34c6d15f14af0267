#!/usr/bin/python3
"""033 Firewall, reject: the gateway answers what a reject rule (or a
policy's default "reject") refuses, for TCP with a reset from the address
the segment was sent to, for the rest through the ICMP error path.

Policy uplink -> vdc-7: "telnet" (tcp 23), "tftp" (udp 69), "ping6" (echo
to 10.0.0.6) reject, "ssh" (tcp 22) accepts, default reject. Policy uplink ->
management (the gateway's own addresses, judged packet by packet):
"mgmt-telnet" (tcp 23), "snmp" (udp 161), "unreachables" (icmp type 3)
reject, default accept. Policy vdc-7 -> uplink (source NAT to .7):
"no-smtp" (tcp 25), "no-syslog" (udp 514) reject, default accept.

TCP (RFC 9293 §3.10.7.1, a SYN to a CLOSED port): the reset goes from the
address and port the SYN was sent to (the public address, the gateway's, or
the internet server the workload addressed: nothing was translated, the
flow never existed) back to its source, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
<CTL=RST,ACK> (SEG.LEN counts the SYN and its data). No options, window 0,
TTL 64, TOS 0, no DF, IP ids from the gateway's own counter (1, 2, ...:
shared with ICMP errors). Only SYNs meet a policy as TCP: a first segment
without SYN to a published or VDC address is dropped before any rule
(nat_tcp_not_syn, fw_tcp_not_syn: cases 031, 034), one to the gateway's own
address goes to the appliance without a verdict (the kernel's connection
tracking judges it; here no exception path: local_unsupported).
Anything else: ICMP destination unreachable, communication administratively
prohibited (3/13, RFC 1812 §5.2.7.1) from the address of the port it leaves
by (RFC 1812 §4.3.2.4: 198.51.100.1 on the uplink, 10.0.0.1 in the VDC),
quoting the packet as it arrived (not translated). An ICMP error to the
gateway itself meets no policy: it belongs to the appliance's own
connections, which the kernel relates it to (here, with no exception path,
local_unsupported); it is never answered (RFC 1812 §4.3.2.7: no error about
an error). Resets and ICMP 3/13 answers share the rejects' token bucket
(icmp.burst, 9 here; apart from the routing's ICMP errors): the last two
rejected packets get no answer (icmp_rate_limited).

The uplink's one burst (user 203.0.113.10):
 1 SYN (MSS option) :40000 -> .7:23        -> RST+ACK seq 0 ack 1001      (id 1)
 2 SYN + 10 bytes :40001 -> .7:23          -> RST+ACK seq 0 ack 2011      (id 2)
 3 SYN :40002 -> .7:80 (the default)       -> RST+ACK seq 0 ack 3001      (id 3)
 4 UDP :40003 -> .7:69                     -> ICMP 3/13 from .1           (id 4)
 5 echo -> .8 (10.0.0.6)                   -> ICMP 3/13 from .1           (id 5)
 6 SYN :40004 -> .7:22                     -> forwarded to 10.0.0.5 (gateway port 1024)
 7 SYN :40005 -> .1:23                     -> RST+ACK from .1:23          (id 6)
 8 ACK seq 5000 ack 7777 :40006 -> .1:23,
 9 FIN+ACK+data :40007 -> .1:23,
10 RST :40008 -> .1:23                     -> no verdict: local_unsupported
11 UDP :40009 -> .1:161                    -> ICMP 3/13 from .1           (id 7)
12 ICMP 3/3 from the user to .1            -> to the kernel: local_unsupported
13 echo request -> .1                      -> echo reply (the default accepts)
The VDC's burst (workload 10.0.0.5, handled after the uplink's):
14 SYN :33000 -> 192.0.2.25:25             -> RST+ACK from 192.0.2.25:25  (id 8)
15 UDP :33001 -> 192.0.2.25:514            -> ICMP 3/13 from 10.0.0.1     (id 9)
16 SYN :33004 -> 192.0.2.80:80             -> forwarded, source NAT .7:1024
17 SYN :33002 -> 192.0.2.25:25, 18 UDP :33003 -> 192.0.2.25:514
                                           -> nothing (icmp_rate_limited)
Answers and forwarded packets take different paths (service thread,
worker), so both ports' output is compared unordered."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP, UDP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER, W5 = "02:00:00:aa:00:fe", "02:00:00:07:00:05"
OWN, PUB7, PUB8, GW = "198.51.100.1", "198.51.100.7", "198.51.100.8", "10.0.0.254"
VDC_OWN, INNER = "10.0.0.1", "10.0.0.5"
USER, SERVER, WEB = "203.0.113.10", "192.0.2.25", "192.0.2.80"

send = {"up": [], "vdc": []}
expect = {"up": [], "vdc": []}
ip_id = 3300
answer_id = 0  # the gateway's own IP id counter


def nid():
    global ip_id
    ip_id += 1
    return ip_id


def next_answer_id():
    global answer_id
    answer_id += 1
    return answer_id


def from_user(dst, l4):
    p = build(Ether(src=ROUTER, dst=UP) / IP(src=USER, dst=dst, id=nid(), flags="DF") / l4)
    send["up"].append(p)
    return p


def from_workload(dst, l4):
    p = build(Ether(src=W5, dst=VDC) / IP(src=INNER, dst=dst, id=nid(), flags="DF") / l4)
    send["vdc"].append(p)
    return p


# Where an answer to a packet from each port goes: (our MAC, next hop's MAC).
BACK = {"up": (UP, ROUTER), "vdc": (VDC, W5)}


def reset(p, port="up"):
    """The RST the gateway answers TCP segment `p` with (RFC 9293 §3.10.7.1)."""
    ip, t = p[IP], p[TCP]
    if t.flags.A:
        seq, ack, flags = t.ack, 0, "R"
    else:
        seg_len = len(t.payload) + (1 if t.flags.S else 0) + (1 if t.flags.F else 0)
        seq, ack, flags = 0, (t.seq + seg_len) & 0xFFFFFFFF, "RA"
    src_mac, dst_mac = BACK[port]
    expect[port].append(build(
        Ether(src=src_mac, dst=dst_mac) /
        IP(src=ip.dst, dst=ip.src, id=next_answer_id(), ttl=64, tos=0, flags=0) /
        TCP(sport=t.dport, dport=t.sport, seq=seq, ack=ack, flags=flags, window=0)))


def prohibited(p, port="up"):
    """ICMP 3/13 about `p` from the address of the port it leaves by."""
    src_mac, dst_mac = BACK[port]
    expect[port].append(icmp_error(p, 3, 13, OWN if port == "up" else VDC_OWN, src_mac, dst_mac,
                                   next_answer_id()))


# 1-3: TCP to published ports, rejected by a rule and by the default.
reset(from_user(PUB7, TCP(sport=40000, dport=23, flags="S", seq=1000, options=[("MSS", 1460)])))
reset(from_user(PUB7, TCP(sport=40001, dport=23, flags="S", seq=2000) / Raw(b"0123456789")))
reset(from_user(PUB7, TCP(sport=40002, dport=80, flags="S", seq=3000)))
# 4-5: UDP and an echo request: ICMP 3/13.
prohibited(from_user(PUB7, UDP(sport=40003, dport=69) / Raw(b"\x00\x01boot\x00octet\x00")))
prohibited(from_user(PUB8, ICMP(type=8, id=0x42, seq=1) / Raw(b"ping")))
# 6: accepted.
ssh = from_user(PUB7, TCP(sport=40004, dport=22, flags="S", seq=4000))
expect["vdc"].append(translated(ssh, VDC, W5, src=GW, dst=INNER, sport=1024))
# 7-10: TCP to the gateway itself: the SYN is rejected, the rest is no
# connection attempt and meets no policy.
reset(from_user(OWN, TCP(sport=40005, dport=23, flags="S", seq=5000)))
from_user(OWN, TCP(sport=40006, dport=23, flags="A", seq=5000, ack=7777))
from_user(OWN, TCP(sport=40007, dport=23, flags="FA", seq=100, ack=200) / Raw(b"bye"))
from_user(OWN, TCP(sport=40008, dport=23, flags="R", seq=300))
# 11: UDP to the gateway itself.
prohibited(from_user(OWN, UDP(sport=40009, dport=161) / Raw(b"snmp get")))
# 12: an ICMP error to the gateway itself: no policy, passed on toward the
# kernel (local_unsupported here), never answered.
quote = raw(IP(src=OWN, dst=USER, ttl=60) / UDP(sport=5000, dport=6000) / Raw(b"x"))
from_user(OWN, ICMP(type=3, code=3) / Raw(quote))
# 13: an echo request to the gateway itself: the default accepts it.
expect["up"].append(echo_reply(from_user(OWN, ICMP(type=8, id=0x77, seq=3) / Raw(b"hello")),
                               UP, ROUTER))

# 14-18: from the workload to the internet.
reset(from_workload(SERVER, TCP(sport=33000, dport=25, flags="S", seq=111)), "vdc")
prohibited(from_workload(SERVER, UDP(sport=33001, dport=514) / Raw(b"<13>syslog")), "vdc")
web = from_workload(WEB, TCP(sport=33004, dport=80, flags="S", seq=444))
expect["up"].append(translated(web, UP, ROUTER, src=PUB7, sport=1024))
from_workload(SERVER, TCP(sport=33002, dport=25, flags="S", seq=222))
from_workload(SERVER, UDP(sport=33003, dport=514) / Raw(b"<13>again"))

assert answer_id == 9 and len(send["up"]) < 32 and len(send["vdc"]) < 32
for port in ("up", "vdc"):
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])
