#!/usr/bin/python3
"""031 Firewall, stateful TCP through a published resource, window tracking on.

Policy uplink -> vdc-7: rule "ssh" (tcp dport 22 from 203.0.113.0/24 to
10.0.0.5, accept, logged), default drop. Mappings on 198.51.100.7: "ssh"
tcp 22 -> 10.0.0.5:22, "ssh-alt" tcp 2222 -> 10.0.0.5:22, "web" tcp 80 ->
10.0.0.5:80. Source NAT of domain 7 to 198.51.100.8 (no policy vdc-7 ->
uplink: the built-in accept).

The rule sees the destination after DNAT and the source before SNAT: a SYN
from a user of 203.0.113.0/24 to .7:22 and to .7:2222 (both 10.0.0.5:22
inside) is accepted although the packet's own destination is the public
address and the translated source is the gateway's 10.0.0.254. Each
accepted first packet is logged (fw_logged; log_per_sec 100).

Session 1 (user 203.0.113.10:50000 -> .7:22, gateway port 1024): the whole
connection, both peers taking turns (pcapgen.rounds: each round is the
uplink's burst of 32, then the VDC's; fillers for another MAC are dropped as
eth_not_for_us):
  round 0: SYN (MSS, SACK, wscale 7)      | SYN-ACK (wscale 8)
  round 1: ACK, data "SSH-2.0-client"     | the SYN-ACK again (its ACK was
                                          |   "lost"), data "SSH-2.0-server"
  round 2: the data again (a retransmission of what was acked), a
           keep-alive (SEG.SEQ = SND.NXT - 1, RFC 9293 §3.8.4), FIN-ACK
                                          | FIN-ACK
  round 3: ACK; then a new SYN from the same port (new ISN: the port reused
           after the close)               | its SYN-ACK
  round 4: ACK
every segment forwarded, translated (addresses, ports, checksums; TTL - 1;
sequence numbers, options, flags, id, DF untouched). Session 2 (user
:50001 -> .7:2222, gateway port 1025): SYN without a window scale option,
SYN-ACK with one (wscale 8), ACK, the workload's ACK with window 8192, the
user's 100 bytes at the window's start. Only one side offered scaling, so
neither window is scaled (RFC 7323 §2.2): the workload's 8192 is 8192
bytes, not 8192 << 8, and 100 bytes at ISN+1+20000 (round 2) lie beyond it:
fw_tcp_out_of_window. Session 3 (user
:50020 -> .7:22, gateway port 1026): the workload refuses the SYN with
RST+ACK (acknowledging it: acceptable, RFC 9293 §3.10.7.3), forwarded; the
user's next SYN from that port (round 1) starts over: SYN-ACK, ACK forwarded.
Session 4 (user :50030 -> .7:22, gateway port 1027): both SYNs offer
scaling (7, 8): the SYN-ACK's window (8192) is not scaled, the workload's
next ACK's (512) is: 512 << 8 = 131072 bytes. 100 bytes at ISN+1+100000
(round 2, out of order but inside) are forwarded, 100 bytes at
ISN+1+200000 are not: fw_tcp_out_of_window.

Dropped in the session's rounds, the window state unchanged by them:
- round 1, user: data at seq ISN+1+16+2^30, far beyond every window the
  workload advertised: fw_tcp_out_of_window.
- round 1, user: SYN+FIN on session 1 (flags no TCP sends): fw_tcp_invalid.
- round 1, user: a RST at that far sequence number (outside the window, RFC
  5961 §3): fw_tcp_out_of_window; the session lives on.
- round 1, workload: an ACK acknowledging 100000 bytes the user never sent
  (RFC 9293 §3.10.7.4: SEG.ACK > SND.NXT is not acceptable):
  fw_tcp_out_of_window.
First packets (round 0), no session made, no gateway port taken:
- user :50002 -> .7:80 (mapping "web", no rule for port 80): the policy's
  default drop, fw_denied.
- 198.51.100.99 -> .7:22: outside the rule's source range, fw_denied.
- 203.0.113.11: a bare ACK, and a SYN+FIN, to .7:22: a first packet to a
  published resource that is not a bare SYN never opens a session; the
  mapping's check comes before the firewall's, so both count as
  nat_tcp_not_syn (not fw_tcp_not_syn / fw_tcp_invalid).
- the workload's ACK 10.0.0.5:22 -> 203.0.113.10:50000 (the user's port of
  session 1, but sent to the user's address instead of to the gateway): it
  is no reply of session 1 (whose reply key is 10.0.0.5:22 -> 10.0.0.254:1024),
  so it would start a new flow, through source NAT, toward the uplink; a
  new TCP flow must start with a SYN: fw_tcp_not_syn, before any policy.
- the workload's ACK to the gateway address at a port no session has
  (10.0.0.254:1999): traffic to the appliance itself (zone management, no
  session; of TCP only SYNs meet a policy to management, the rest is left
  to the kernel's connection tracking), and with no exception path:
  local_unsupported."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pcapgen import *  # noqa: E402,F403
from scapy.all import TCP  # noqa: E402

OUT = out_dir(__file__)
UP, VDC = "02:00:00:00:00:01", "02:00:00:00:00:07"
ROUTER = "02:00:00:aa:00:fe"  # 198.51.100.254, the default route of domain 0
W5 = "02:00:00:07:00:05"
PUB, GW, INNER = "198.51.100.7", "10.0.0.254", "10.0.0.5"
USER, USER2, OUTSIDER = "203.0.113.10", "203.0.113.11", "198.51.100.99"

R = [dict(up=[], vdc=[]) for _ in range(5)]
expect = {"up": [], "vdc": []}
ip_id = 3100


def nid():
    global ip_id
    ip_id += 1
    return ip_id


def from_user(src, sport, dport, flags, seq=0, ack=0, data=b"", mac=ROUTER, **tcp):
    p = (Ether(src=mac, dst=UP) / IP(src=src, dst=PUB, id=nid(), flags="DF") /
         TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **tcp))
    return build(p / Raw(data) if data else p)


def from_workload(dst, sport, dport, flags, seq=0, ack=0, data=b"", **tcp):
    p = (Ether(src=W5, dst=VDC) / IP(src=INNER, dst=dst, id=nid(), flags="DF") /
         TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **tcp))
    return build(p / Raw(data) if data else p)


def inbound(k, p, gw_port, inner_port=22):
    """Round k: a user's packet of a session, to the workload from the gateway."""
    R[k]["up"].append(p)
    expect["vdc"].append(translated(p, VDC, W5, src=GW, dst=INNER, sport=gw_port,
                                    dport=inner_port))


def outbound(k, p, user_port, public_port=22, user=USER):
    """Round k: the workload's packet of a session, to the user from the public address."""
    R[k]["vdc"].append(p)
    expect["up"].append(translated(p, UP, ROUTER, src=PUB, dst=user, sport=public_port,
                                   dport=user_port))


def dropped(k, port, p):
    R[k][port].append(p)


C_ISN, S_ISN = 1000, 5000
C_DATA, S_DATA = b"SSH-2.0-client\r\n", b"SSH-2.0-server\r\n"
C1, S1 = C_ISN + 1, S_ISN + 1  # first data byte of each side
C2, S2 = C1 + len(C_DATA), S1 + len(S_DATA)  # their FINs

# --- round 0: SYNs (the uplink), SYN-ACKs (the VDC) ---
inbound(0, from_user(USER, 50000, 22, "S", seq=C_ISN,
                     options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]), 1024)
inbound(0, from_user(USER, 50001, 2222, "S", seq=7000, window=8192), 1025)
dropped(0, "up", from_user(USER, 50002, 80, "S", seq=100))                       # fw_denied
dropped(0, "up", from_user(OUTSIDER, 50003, 22, "S", seq=200,
                           mac="02:00:00:aa:00:63"))                            # fw_denied
dropped(0, "up", from_user(USER2, 50010, 22, "A", seq=300, ack=400))            # nat_tcp_not_syn
dropped(0, "up", from_user(USER2, 50011, 22, "SF", seq=500))                    # nat_tcp_not_syn
inbound(0, from_user(USER, 50020, 22, "S", seq=60000), 1026)
inbound(0, from_user(USER, 50030, 22, "S", seq=30000, options=[("WScale", 7)]), 1027)
outbound(0, from_workload(GW, 22, 1024, "SA", seq=S_ISN, ack=C1,
                          options=[("MSS", 1400), ("SAckOK", b""), ("WScale", 8)]), 50000)
outbound(0, from_workload(GW, 22, 1025, "SA", seq=9000, ack=7001, window=8192,
                          options=[("WScale", 8)]), 50001, public_port=2222)
outbound(0, from_workload(GW, 22, 1026, "RA", seq=0, ack=60001), 50020)        # refused
outbound(0, from_workload(GW, 22, 1027, "SA", seq=40000, ack=30001, window=8192,
                          options=[("WScale", 8)]), 50030)
dropped(0, "vdc", from_workload(USER, 22, 50000, "A", seq=S1, ack=C1))          # fw_tcp_not_syn
dropped(0, "vdc", from_workload(GW, 22, 1999, "A", seq=S1, ack=C1))             # local_unsupported

# --- round 1: the handshake's ACK and data both ways ---
inbound(1, from_user(USER, 50000, 22, "A", seq=C1, ack=S1), 1024)
inbound(1, from_user(USER, 50000, 22, "PA", seq=C1, ack=S1, data=C_DATA), 1024)
dropped(1, "up", from_user(USER, 50000, 22, "PA", seq=C2 + 2**30, ack=S1,
                           data=b"far ahead"))                                  # out of window
dropped(1, "up", from_user(USER, 50000, 22, "SF", seq=C2))                      # invalid
dropped(1, "up", from_user(USER, 50000, 22, "R", seq=C2 + 2**30))               # out of window
inbound(1, from_user(USER, 50001, 2222, "A", seq=7001, ack=9001), 1025)
inbound(1, from_user(USER, 50020, 22, "S", seq=70000), 1026)                    # after the RST
inbound(1, from_user(USER, 50030, 22, "A", seq=30001, ack=40001), 1027)
outbound(1, from_workload(GW, 22, 1024, "SA", seq=S_ISN, ack=C1,
                          options=[("MSS", 1400), ("SAckOK", b""), ("WScale", 8)]), 50000)
outbound(1, from_workload(GW, 22, 1024, "PA", seq=S1, ack=C2, data=S_DATA), 50000)
dropped(1, "vdc", from_workload(GW, 22, 1024, "A", seq=S2, ack=C2 + 100000))    # out of window
outbound(1, from_workload(GW, 22, 1026, "SA", seq=80000, ack=70001), 50020)
outbound(1, from_workload(GW, 22, 1025, "A", seq=9001, ack=7001, window=8192), 50001,
         public_port=2222)
outbound(1, from_workload(GW, 22, 1027, "A", seq=40001, ack=30001, window=512), 50030)

# --- round 2: a retransmission, a keep-alive, FINs ---
inbound(2, from_user(USER, 50000, 22, "PA", seq=C1, ack=S2, data=C_DATA), 1024)
inbound(2, from_user(USER, 50000, 22, "A", seq=C2 - 1, ack=S2), 1024)
inbound(2, from_user(USER, 50000, 22, "FA", seq=C2, ack=S2), 1024)
inbound(2, from_user(USER, 50020, 22, "A", seq=70001, ack=80001), 1026)
inbound(2, from_user(USER, 50001, 2222, "PA", seq=7001, ack=9001, data=b"x" * 100), 1025)
dropped(2, "up", from_user(USER, 50001, 2222, "PA", seq=7001 + 20000, ack=9001,
                           data=b"y" * 100))                                  # out of window
inbound(2, from_user(USER, 50030, 22, "PA", seq=30001 + 100000, ack=40001, data=b"z" * 100),
        1027)
dropped(2, "up", from_user(USER, 50030, 22, "PA", seq=30001 + 200000, ack=40001,
                           data=b"w" * 100))                                  # out of window
outbound(2, from_workload(GW, 22, 1024, "FA", seq=S2, ack=C2 + 1), 50000)

# --- round 3: the last ACK, then the same ports again (a new connection) ---
inbound(3, from_user(USER, 50000, 22, "A", seq=C2 + 1, ack=S2 + 1), 1024)
inbound(3, from_user(USER, 50000, 22, "S", seq=777777,
                     options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]), 1024)
outbound(3, from_workload(GW, 22, 1024, "SA", seq=888888, ack=777778,
                          options=[("MSS", 1400), ("SAckOK", b""), ("WScale", 8)]), 50000)

# --- round 4: its ACK ---
inbound(4, from_user(USER, 50000, 22, "A", seq=777778, ack=888889), 1024)

send = rounds(R)
for port in ("up", "vdc"):
    write(OUT, f"send-{port}.pcap", send[port])
    write(OUT, f"expect-{port}.pcap", expect[port])

if len(sys.argv) == 1:
    print("eth_not_for_us:", count_fillers(send))
