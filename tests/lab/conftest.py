"""Fixtures of Tether's namespace lab (the pieces: labkit.py, appliance.py).

- `lab`: a fresh Lab per test; everything it made is removed afterwards,
  pass or fail. When a test fails, the end of every process log (dataplane,
  control plane, socat...) is printed with the failure; TETHER_LAB_KEEP=1
  also keeps that lab's tmp dir (configs, logs, registry).
- `two_hosts`: h1 (10.0.1.2/24) and h2 (10.0.2.2/24) in their own
  namespaces, joined only through tether-dataplane running in a `gw`
  namespace (10.0.1.1/24 and 10.0.2.1/24, exception path on a TAP).

Needs root, hugepages (reserved once per session through scripts/hugepages)
and the binaries in $TETHER_BIN (default: <repo>/build/bin). Every test runs
under an alarm (TETHER_LAB_TEST_TIMEOUT, default 400 s) so a hang still tears
down its lab.
"""

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import appliance  # noqa: E402
import labkit  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def lab_session():
    if os.geteuid() != 0:
        pytest.skip("the namespace lab needs root (ip netns, veth, hugepages)")
    for tool in ("ip", "ethtool", "socat", "ping", "ss"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(":")):
            pytest.fail(f"{tool} is missing: run scripts/setup")
    exe = labkit.binary("tether-dataplane")
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build first (or set TETHER_BIN)")
    labkit.run([labkit.REPO / "scripts" / "hugepages"], timeout=120)
    labkit.remove_stale_labs()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = int(os.environ.get("TETHER_LAB_TEST_TIMEOUT", "400"))

    def expired(signum, frame):
        raise TimeoutError(f"test exceeded TETHER_LAB_TEST_TIMEOUT={limit}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def lab(request):
    with labkit.Lab() as lab:
        yield lab
        rep = getattr(request.node, "rep_call", None)
        lab.failed = rep is None or rep.failed


class TwoHosts:
    """The routing topology; attributes: lab, gw, h1, h2, dp."""

    def __init__(self, lab: labkit.Lab):
        self.lab = lab
        self.gw, hosts = labkit.gateway_topology(lab, {
            "h1": ("10.0.1.2/24", "10.0.1.1"),
            "h2": ("10.0.2.2/24", "10.0.2.1"),
        })
        self.h1, self.h2 = hosts["h1"], hosts["h2"]
        self.dp = appliance.Dataplane(lab, self.gw, ports=[
            {"name": "h1", "iface": self.h1.gw_iface, "addresses": ["10.0.1.1/24"]},
            {"name": "h2", "iface": self.h2.gw_iface, "addresses": ["10.0.2.1/24"]},
        ])


@pytest.fixture
def two_hosts(lab):
    t = TwoHosts(lab)
    t.dp.start()
    return t
