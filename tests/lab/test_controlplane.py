"""The control plane owns routes: its SQLite registry holds them, its
reconciler puts them into the dataplane (config.apply, origin "api"), and it
can crash and restart while traffic keeps flowing.

    h1 10.0.1.2/24 -- [gw: tether-dataplane 10.0.1.1 | 10.0.2.1] -- h2 10.0.2.2/24
                          tether-controlplane (registry: 10.0.3.0/24 via 10.0.2.2)
                                                                h2 lo: 10.0.3.1/32
"""

import signal

import pytest

import labkit
from appliance import ControlPlane, counter_delta

pytestmark = pytest.mark.skipif(
    not ControlPlane.available(),
    reason=f"tether-controlplane is not built in {labkit.bin_dir()}")

MB = 1 << 20
PREFIX, VIA, TARGET = "10.0.3.0/24", "10.0.2.2", "10.0.3.1"


def api_routes(dp, prefix=PREFIX):
    return [r for r in dp.routes() if r["prefix"] == prefix]


def route_is_api_owned(dp):
    rs = api_routes(dp)
    return rs if rs and rs[0]["origin"] == "api" and rs[0]["via"] == VIA else None


@pytest.fixture
def cp_lab(two_hosts):
    t = two_hosts
    # h2 is the endpoint of the routed prefix: no forwarding needed there.
    t.h2.ns.ip("addr", "add", f"{TARGET}/32", "dev", "lo")
    t.cp = ControlPlane(t.lab, t.dp.socket, ns=t.gw, interval_ms=1000)
    return t


def test_registry_route_survives_controlplane_crashes(cp_lab):
    t = cp_lab
    cp, dp = t.cp, t.dp
    assert t.h1.ns.ping(TARGET, count=1, deadline=3).returncode != 0, "reachable before the route"

    cp.cli("route", "add", PREFIX, "--via", VIA, "--reason", "lab: h2's loopback prefix")
    listed = cp.cli_json("route", "list")
    assert [(r["prefix"], r["via"]) for r in listed] == [(PREFIX, VIA)], listed
    cp.start()
    (route,) = labkit.wait_until(lambda: route_is_api_owned(dp), 30,
                                 f"{PREFIX} in the dataplane")
    assert route["port"] == "h2" and route["kind"] == "static", route
    r = t.h1.ns.ping(TARGET, count=3)
    assert r.returncode == 0, r.stdout
    generation = dp.generation()

    # A paced transfer stays in flight (while the hold file exists) across two
    # control-plane crashes and restarts.
    hold = t.lab.path("hold")
    hold.touch()
    size = 50 * MB
    transfer = labkit.tcp_transfer(t.lab, t.h1, t.h2.ns, TARGET, size, port=5004, timeout=300,
                                   hold=hold, hold_rate=512 << 10)

    def grows(what):
        start = transfer.received_bytes()
        labkit.wait_until(lambda: transfer.received_bytes() >= start + (256 << 10), 60,
                          f"the transfer to make progress {what}")

    grows("before the first crash")
    for attempt in (1, 2):
        cp.kill()
        assert cp.proc.returncode == -signal.SIGKILL
        grows(f"while the control plane is down (crash {attempt})")
        cp.start()
        # Its first pass finds the dataplane already in step with the registry.
        line = cp.wait_reconciled(0)
        assert f"state=in_sync generation={generation} applied=0" in line, line
        assert f"connected to the dataplane at {dp.socket} generation={generation}" in cp.log()
        grows(f"after restart {attempt}")
        assert dp.generation() == generation, (
            f"the registry did not change, yet restart {attempt} moved the generation "
            f"{generation} -> {dp.generation()}:\n{cp.proc.tail()}")
        assert transfer.tx.running(), "the transfer ended before the restarts were done"
    hold.unlink()
    rx_rc, tx_rc, got_sha = transfer.finish()
    assert (rx_rc, tx_rc) == (0, 0), f"receiver {rx_rc}, sender {tx_rc}: {transfer.tx.tail()}"
    assert transfer.received_bytes() == size
    assert got_sha == transfer.sent_sha
    assert dp.generation() == generation
    assert route_is_api_owned(dp)

    # Deleting the route in the registry takes it out of the dataplane.
    before = dp.counters()
    cp.cli("route", "del", PREFIX, "--reason", "lab: done")
    labkit.wait_until(lambda: not api_routes(dp), 30, f"{PREFIX} to leave the dataplane")
    assert dp.generation() > generation
    r = t.h1.ns.ping(TARGET, count=2, deadline=4)
    assert r.returncode != 0, f"{TARGET} still reachable without its route:\n{r.stdout}"
    d = counter_delta(before, dp.counters())
    assert d["drops"]["no_route"] >= 1, d["drops"]
    # The audit trail has both changes.
    actions = [c["action"] for c in cp.cli_json("changes", "list")]
    assert "route.add" in actions and "route.del" in actions, actions


def test_controlplane_reapplies_after_dataplane_restart(cp_lab):
    """A dataplane restart loses the API's routes; the control plane reconnects
    and puts them back."""
    t = cp_lab
    cp, dp = t.cp, t.dp
    cp.cli("route", "add", PREFIX, "--via", VIA)
    cp.start()
    labkit.wait_until(lambda: route_is_api_owned(dp), 30, f"{PREFIX} in the dataplane")
    assert t.h1.ns.ping(TARGET, count=2).returncode == 0

    assert dp.stop() == 0
    dp.assert_clean_exit()
    dp.start()
    labkit.wait_until(lambda: route_is_api_owned(dp), 60,
                      f"{PREFIX} back in the restarted dataplane")
    r = t.h1.ns.ping(TARGET, count=3)
    assert r.returncode == 0, r.stdout


def test_route_added_while_controlplane_down(cp_lab):
    """The registry is the truth: a change made while the daemon is down is
    applied when it starts."""
    t = cp_lab
    cp, dp = t.cp, t.dp
    cp.start()
    assert not api_routes(dp)
    cp.kill()
    cp.cli("route", "add", PREFIX, "--via", VIA)
    assert not api_routes(dp)
    cp.start()
    labkit.wait_until(lambda: route_is_api_owned(dp), 30, f"{PREFIX} in the dataplane")
    assert t.h1.ns.ping(TARGET, count=2).returncode == 0
