"""The host firewall: the gateway's own kernel side, reached through the
exception path's TAP, guarded by nftables (table `inet tether_host`, applied by
tether-dataplane through libnftables inside the `gw` namespace).

    h1 10.0.1.2 --veth-- [gw: tether-dataplane 10.0.1.1 | 10.0.2.1] --veth-- h2 10.0.2.2
                          TAP -> kernel of gw: socat listening on :8443

TCP to the gateway's own addresses is punted through the TAP to the kernel, so
a policy guarding the TAP decides who reaches the listener: h1 is the admin
range, h2 is not. ICMP echo to the gateway's addresses never reaches the kernel
(the service thread answers it), so ping is no measure of the policy here.

Every test gets its own topology (conftest.two_hosts or TwoHosts); the
dataplane must exit 0 when the lab is torn down. Policies go through the API
(host_firewall.set/get) or the boot configuration ("host_firewall").
"""

import json
import re
import shutil
import time

import pytest

import labkit
from appliance import ApiError, counter_delta
from conftest import TwoHosts

PORT = 8443

# Opens N TCP connections at once (non-blocking connects), waits WAIT seconds
# (under the 1 s SYN retransmission, so a dropped SYN is not retried within
# the window) and prints how many completed. Run inside a host's namespace.
CONNECT_BURST = r"""
import json, select, socket, sys, time
dst, port, n, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((dst, port))
    except BlockingIOError:
        pass
    socks.append(s)
pending, connected, failed = set(socks), 0, 0
deadline = time.monotonic() + wait
while pending:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    _, writable, _ = select.select([], list(pending), [], left)
    for s in writable:
        pending.discard(s)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            connected += 1
        else:
            failed += 1
print(json.dumps({"connected": connected, "failed": failed, "pending": len(pending)}))
"""


def start_listener(t, port=PORT):
    """A management service in the gateway's namespace, on every address."""
    p = t.lab.spawn(f"mgmt-{port}",
                    ["socat", "-u", f"TCP-LISTEN:{port},fork,reuseaddr,backlog=64", "/dev/null"],
                    ns=t.gw)
    labkit.wait_until(lambda: t.gw.tcp_listening(port) or not p.running(), 20,
                      "the management listener")
    assert p.running(), p.tail()
    return p


def connect(host, dst, port=PORT, timeout=2):
    """One TCP connection attempt; returns the CompletedProcess (returncode 0: connected)."""
    return host.ns.run("socat", "-u", "/dev/null", f"TCP:{dst}:{port},connect-timeout={timeout}",
                       check=False, timeout=timeout + 30)


def assert_connects(host, dst, port=PORT):
    r = connect(host, dst, port)
    assert r.returncode == 0, f"{host}: TCP to {dst}:{port} failed:\n{r.stderr}"


def assert_dropped(host, dst, port=PORT):
    """The SYN vanished: a timeout, not a refusal (which would mean it got through)."""
    r = connect(host, dst, port)
    assert r.returncode != 0, f"{host}: TCP to {dst}:{port} connected through the policy"
    assert "timed out" in r.stderr, f"{host}: TCP to {dst}:{port}: expected a timeout:\n{r.stderr}"


def connect_burst(host, dst, n, port=PORT, wait=0.8) -> dict:
    r = host.ns.run(labkit.PY, "-c", CONNECT_BURST, dst, port, n, wait, timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def without_counters(ruleset: str) -> str:
    # The final drop counts h2's attempts: everything else must stay the same.
    return re.sub(r"counter packets \d+ bytes \d+", "counter", ruleset)


def admin_only_h1(t, **more) -> dict:
    return {"interfaces": [t.dp.tap], "admin": ["10.0.1.2/32"], "services": [f"tcp/{PORT}"],
            **more}


def test_only_the_admin_range_reaches_the_management_port(two_hosts):
    t = two_hosts
    start_listener(t)
    # No policy yet: the kernel's listener is open to both.
    assert_connects(t.h1, "10.0.1.1")
    assert_connects(t.h2, "10.0.2.1")
    assert t.dp.call("host_firewall.get")["ruleset"] == ""

    res = t.dp.call("host_firewall.set", admin_only_h1(t))
    policy, ruleset = res["policy"], res["ruleset"]
    assert policy["interfaces"] == [t.dp.tap]
    assert policy["admin"] == ["10.0.1.2/32"]
    assert policy["services"] == [f"tcp/{PORT}"]
    # The kernel's own account of it: libnftables' listing.
    assert "table inet " in ruleset, ruleset
    for want in (f'"{t.dp.tap}"', "10.0.1.2", f"tcp . {PORT}", "ct state new",
                 "limit rate 20/second burst 40 packets", "drop"):
        assert want in ruleset, f"{want} not in:\n{ruleset}"
    got = t.dp.call("host_firewall.get")
    assert got["policy"] == policy
    assert without_counters(got["ruleset"]) == without_counters(ruleset)

    assert_connects(t.h1, "10.0.1.1")
    assert_dropped(t.h2, "10.0.2.1")
    # h1 is admitted by its source, whichever gateway address it targets.
    assert_connects(t.h1, "10.0.2.1")
    # Forwarding between the hosts is the dataplane's, not the kernel's: untouched.
    r = t.h2.ns.ping(t.h1.ip, count=2)
    assert r.returncode == 0, r.stdout
    # So is ping to the gateway's own addresses: the service thread answers it.
    before = t.dp.counters()
    r = t.h2.ns.ping("10.0.2.1", count=2)
    assert r.returncode == 0, r.stdout
    assert counter_delta(before, t.dp.counters())["events"]["icmp_echo_replies"] >= 2

    # Policy off: no interfaces, no table; h2 is back.
    res = t.dp.call("host_firewall.set", {"interfaces": []})
    assert res["policy"]["interfaces"] == [] and res["ruleset"] == "", res
    assert_connects(t.h2, "10.0.2.1")


def test_a_refused_policy_leaves_the_previous_in_force(two_hosts):
    t = two_hosts
    start_listener(t)
    good = t.dp.call("host_firewall.set", admin_only_h1(t, extra=["udp dport 51820 accept"]))
    assert_connects(t.h1, "10.0.1.1")
    assert_dropped(t.h2, "10.0.2.1")

    # h2's range added, and a rule nftables cannot make sense of: the whole
    # transaction is refused with libnftables' own words.
    broken = admin_only_h1(t, extra=["udp dport 51820 accept", "tcp dport nonsense accept"])
    broken["admin"].append("10.0.2.0/24")
    with pytest.raises(ApiError) as e:
        t.dp.call("host_firewall.set", broken)
    assert e.value.code == "invalid_argument", e.value
    assert "Could not resolve service" in e.value.message, e.value.message
    assert "nonsense" in e.value.message, e.value.message

    now = t.dp.call("host_firewall.get")
    assert now["policy"] == good["policy"]
    assert "10.0.2.0/24" not in now["ruleset"], now["ruleset"]
    assert without_counters(now["ruleset"]) == without_counters(good["ruleset"])
    assert_connects(t.h1, "10.0.1.1")
    assert_dropped(t.h2, "10.0.2.1")

    # Refused before libnftables: one entry that would be two commands, an
    # unknown key, a port 0.
    for params, words in (
            (admin_only_h1(t, extra=["accept; flush ruleset"]), "extra rule 1"),
            (admin_only_h1(t, bogus=1), "bogus"),
            (admin_only_h1(t, services=["tcp/0"]), "tcp/0")):
        with pytest.raises(ApiError) as e:
            t.dp.call("host_firewall.set", params)
        assert e.value.code == "invalid_argument", e.value
        assert words in e.value.message, e.value.message
    assert t.dp.call("host_firewall.get")["policy"] == good["policy"]
    assert_dropped(t.h2, "10.0.2.1")


def test_new_connections_are_rate_limited(two_hosts):
    t = two_hosts
    start_listener(t)
    n = 20
    # Without a policy the whole burst gets through: the measure works.
    free = connect_burst(t.h1, "10.0.1.1", n)
    assert free["connected"] >= 15, free
    # Let those connections finish closing first: a segment of theirs that
    # arrives after the policy is in place is picked up mid-stream by
    # connection tracking as "new" and would take the limit's tokens.
    time.sleep(1.5)

    t.dp.call("host_firewall.set", admin_only_h1(t, new_per_second=2, burst=2))
    limited = connect_burst(t.h1, "10.0.1.1", n)
    # About the burst gets through; the rest of the SYNs are dropped (no RST:
    # they stay pending). Tolerant of a slow machine's timing.
    assert 1 <= limited["connected"] <= 10, limited
    assert limited["pending"] >= n - 10, limited
    # The bucket refills: a single connection a little later is admitted.
    labkit.wait_until(lambda: connect(t.h1, "10.0.1.1").returncode == 0, 10,
                      "a connection after the burst")


def test_policy_from_the_boot_configuration(lab):
    if shutil.which("nft") is None:
        pytest.skip("nft is missing (scripts/setup installs nftables)")
    t = TwoHosts(lab)
    t.dp.config["host_firewall"] = admin_only_h1(t, allow_ping=False, new_per_second=50,
                                                 burst=100)
    t.dp.start()
    start_listener(t)
    got = t.dp.call("host_firewall.get")
    assert got["policy"]["interfaces"] == [t.dp.tap]
    assert got["policy"]["allow_ping"] is False
    assert "limit rate 50/second burst 100 packets" in got["ruleset"], got["ruleset"]
    assert "icmp" not in got["ruleset"], got["ruleset"]
    assert_connects(t.h1, "10.0.1.1")
    assert_dropped(t.h2, "10.0.2.1")

    rc = t.dp.stop()
    t.dp.assert_clean_exit()
    assert rc == 0
    # On exit the dataplane takes its tables with it: nothing guards the TAP's
    # name any more (a dataplane started later must not find a stale policy).
    tables = t.gw.run("nft", "list", "tables").stdout
    assert "inet" not in tables, tables
