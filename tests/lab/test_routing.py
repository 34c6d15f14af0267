"""Routing through the gateway: two hosts in different namespaces and subnets
reach each other only through tether-dataplane.

    h1 10.0.1.2/24 --veth-- [gw: tether-dataplane 10.0.1.1 | 10.0.2.1] --veth-- h2 10.0.2.2/24

Every test gets its own topology (conftest.two_hosts); the dataplane must exit
0 (no leaked mbufs) when the lab is torn down.
"""

import re

import pytest

import labkit
from appliance import counter_delta

MB = 1 << 20


def assert_ping(ns, dest, count=5):
    r = ns.ping(dest, count=count)
    assert r.returncode == 0, f"{ns.name}: ping {dest} failed:\n{r.stdout}{r.stderr}"
    return r.stdout


def test_ping_both_ways(two_hosts):
    t = two_hosts
    out = assert_ping(t.h1.ns, t.h2.ip)
    # One routed hop: the hosts' TTL 64 arrives as 63.
    assert re.search(rf"from {t.h2.ip}: icmp_seq=\d+ ttl=63", out), out
    out = assert_ping(t.h2.ns, t.h1.ip)
    assert re.search(rf"from {t.h1.ip}: icmp_seq=\d+ ttl=63", out), out
    # Both neighbours were learned by the dataplane, not by some other path.
    neighbors = {(n["port"], n["ip"]) for n in t.dp.call("neighbors.list")["neighbors"]}
    assert {("h1", t.h1.ip), ("h2", t.h2.ip)} <= neighbors


def test_ping_gateway_addresses(two_hosts):
    t = two_hosts
    before = t.dp.counters()
    assert_ping(t.h1.ns, "10.0.1.1", count=3)
    assert_ping(t.h2.ns, "10.0.2.1", count=3)
    # The gateway's far address answers too (routed to itself).
    assert_ping(t.h1.ns, "10.0.2.1", count=3)
    d = counter_delta(before, t.dp.counters())
    assert d["events"]["icmp_echo_replies"] >= 9, d["events"]


def test_ttl_exceeded(two_hosts):
    t = two_hosts
    assert_ping(t.h1.ns, t.h2.ip, count=1)  # neighbours resolved
    before = t.dp.counters()
    for src, dst, gw in ((t.h1, t.h2, "10.0.1.1"), (t.h2, t.h1, "10.0.2.1")):
        # -c 1 -t 1: no echo reply can come (exit 1); the gateway's ICMP error must.
        out = labkit.wait_until(
            lambda: (lambda r: r.stdout if "Time to live exceeded" in r.stdout else None)(
                src.ns.ping(dst.ip, count=1, ttl=1, deadline=3)),
            30, f"Time to live exceeded from {gw}")
        assert re.search(rf"From {re.escape(gw)} icmp_seq=\d+ Time to live exceeded", out), out
    d = counter_delta(before, t.dp.counters())
    assert d["drops"]["ttl_exceeded"] >= 2, d["drops"]
    assert d["events"]["icmp_errors_sent"] >= 2, d["events"]


@pytest.mark.xfail(reason="net_af_packet: DPDK's af_packet PMD joins a PACKET_FANOUT group with "
                   "PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles fragments before the "
                   "dataplane sees them and truncates datagrams over ~1982 bytes to the ring's "
                   "frame size; they are dropped as ipv4_truncated", strict=False)
def test_fragmented_datagrams_cross_the_gateway(two_hosts):
    t = two_hosts
    r = t.h1.ns.run("ping", "-n", "-c", "2", "-s", "2000", "-i", "0.2", "-w", "6", t.h2.ip,
                    check=False, timeout=30)
    assert r.returncode == 0, r.stdout + str(
        {k: v for k, v in t.dp.counters()["drops"].items() if v})


def test_tcp_50mb_sha256(two_hosts):
    t = two_hosts
    size = 50 * MB
    before = t.dp.counters()
    transfer = labkit.tcp_transfer(t.lab, t.h1, t.h2.ns, t.h2.ip, size, port=5001, timeout=300)
    rx_rc, tx_rc, got_sha = transfer.finish()
    assert (rx_rc, tx_rc) == (0, 0), f"socat: receiver {rx_rc}, sender {tx_rc}"
    assert transfer.received_bytes() == size
    assert got_sha == transfer.sent_sha
    d = counter_delta(before, t.dp.counters())
    # Every byte crossed the dataplane: in on h1's port, out on h2's.
    assert d["ports"]["h1"]["rx_bytes"] >= size, d["ports"]
    assert d["ports"]["h2"]["tx_bytes"] >= size, d["ports"]
    assert d["drops"]["no_route"] == 0 and d["drops"]["ipv4_bad_checksum"] == 0, d["drops"]


def test_udp_burst_counted_at_both_ends(two_hosts):
    t = two_hosts
    count, size = 4000, 512
    assert_ping(t.h1.ns, t.h2.ip, count=1)  # neighbours resolved: no ARP queueing
    before = t.dp.counters()
    sent, got = labkit.udp_burst(t.lab, t.h1, t.h2, count=count, size=size)
    after = t.dp.counters()
    d = counter_delta(before, after)
    assert sent["sent"] == count
    assert got["corrupt"] == 0, got
    assert got["unique"] == got["received"], f"duplicated datagrams: {got}"
    # The sender is paced; on a loaded machine a few may still be lost in the
    # kernel, never more than 10%.
    assert got["received"] >= 0.9 * count, f"received {got} of {count}"
    rx_h1 = d["ports"]["h1"]["rx_packets"]
    tx_h2 = d["ports"]["h2"]["tx_packets"]
    # What arrived went through the dataplane; the dataplane saw no more than
    # was sent (plus a little ARP).
    assert got["received"] <= tx_h2 <= rx_h1 <= count + 50, (got, d["ports"])
    # IPv4 20 + UDP 8 + Ethernet 14 on top of each payload.
    assert d["ports"]["h2"]["tx_bytes"] >= got["received"] * (size + 42), d["ports"]
    forwarded_loss = rx_h1 - tx_h2
    dropped = sum(d["drops"].values())
    assert forwarded_loss <= dropped + 50, (
        f"{forwarded_loss} packets entered on h1 and did not leave on h2, but only "
        f"{dropped} drops were counted: {d['drops']}")


def test_tcp_to_gateway_reaches_kernel_listener(two_hosts):
    """The exception path: TCP to the gateway's own address is punted through
    the TAP to a kernel socket in the gateway's namespace."""
    t = two_hosts
    before = t.dp.counters()
    transfer = labkit.tcp_transfer(t.lab, t.h1, t.gw, "10.0.1.1", 4 * MB, port=5003,
                                   timeout=120)
    rx_rc, tx_rc, got_sha = transfer.finish()
    assert (rx_rc, tx_rc) == (0, 0)
    assert got_sha == transfer.sent_sha
    d = counter_delta(before, t.dp.counters())
    assert d["events"]["to_kernel"] > 0 and d["events"]["from_kernel"] > 0, d["events"]


def test_no_path_without_the_gateway(lab):
    """The hosts have no other way to each other: with the dataplane stopped,
    nothing gets through."""
    from conftest import TwoHosts

    t = TwoHosts(lab)
    t.dp.start()
    sink = lab.spawn("tcp-sink", ["socat", "-u", f"TCP-LISTEN:5001,bind={t.h2.ip},fork,reuseaddr",
                                  "/dev/null"], ns=t.h2.ns)
    labkit.wait_until(lambda: t.h2.ns.tcp_listening(5001), 20, "the TCP sink")

    def tcp_connects():
        r = t.h1.ns.run("socat", "-u", "/dev/null", f"TCP:{t.h2.ip}:5001,connect-timeout=3",
                        check=False, timeout=30)
        return r.returncode == 0

    assert_ping(t.h1.ns, t.h2.ip, count=2)
    assert tcp_connects(), "TCP to h2 failed with the gateway up"
    rc = t.dp.stop()
    t.dp.assert_clean_exit()
    assert rc == 0
    r = t.h1.ns.ping(t.h2.ip, count=3, deadline=5)
    assert r.returncode != 0 and " 0 received" in r.stdout, r.stdout
    assert not tcp_connects(), "TCP connected without the gateway"
    assert sink.running()


def test_api_clients_that_vanish_do_not_stop_forwarding(two_hosts):
    """A control plane can crash at any moment, also mid-request: the dataplane
    must keep forwarding (a write to a closed API socket once killed it with
    SIGPIPE)."""
    import socket
    import struct

    t = two_hosts

    def frame(msg):
        body = msg.encode()
        return struct.pack(">I", len(body)) + body

    hello = frame('{"id": 1, "method": "hello", "params": {"version": 1, "client": "gone"}}')
    big = frame('{"id": 2, "method": "counters.get"}')
    for i in range(100):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(t.dp.socket))
        if i % 3 == 0:
            s.sendall(struct.pack(">I", 100) + b"{")  # EOF in the middle of a frame
        else:
            s.sendall(hello + big * (i % 5))          # gone before the replies
        s.close()
    with t.dp.api() as c:
        assert c.generation() == t.dp.ready_generation
    assert t.dp.running(), t.dp.proc.tail()
    assert_ping(t.h1.ns, t.h2.ip, count=3)


def test_silent_addresses_do_not_lock_out_real_hosts(lab):
    """Datagrams to more silent on-link addresses than the neighbor table holds
    fill it; the gateway forgets addresses that never answered (arp.forget_ms)
    so that a real host can still be resolved afterwards."""
    from conftest import TwoHosts
    t = TwoHosts(lab)
    t.dp.config["arp"] = {"max_neighbors": 16, "retry_ms": 100, "retries": 1, "forget_ms": 300}
    t.dp.start()
    flood = ("import socket\n"
             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for i in range(40):\n"
             "    s.sendto(b'anyone?', ('10.0.2.%d' % (100 + i), 9))\n")
    t.h1.ns.run("/usr/bin/python3", "-c", flood)
    labkit.wait_until(lambda: t.dp.counters()["drops"]["neighbor_table_full"] > 0, 30,
                      "the flood to fill the neighbor table")
    # Every slot but h1's (it answered) held a silent address.
    labkit.wait_until(lambda: t.dp.counters()["events"]["neighbors_forgotten"] >= 15, 30,
                      "silent addresses to be forgotten")
    # h2 was never resolved: it needs a slot now, and gets one.
    assert_ping(t.h1.ns, t.h2.ip, count=3)
