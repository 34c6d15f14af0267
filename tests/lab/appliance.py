"""appliance: Tether's own processes in the lab, and the dataplane API.

`ApiClient` speaks the dataplane API (docs/dataplane-api.md): a 4-byte
big-endian length + one JSON object each way, `hello` first. `Dataplane`
writes a config, starts tether-dataplane inside a namespace on
net_af_packet ports and waits for its ready line; `ControlPlane` drives the
tether-controlplane CLI and runs its daemon. Both register with their Lab:
on teardown they get SIGTERM and must exit 0 (for the dataplane that also
means every mbuf came back).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tether_api import ApiClient, ApiError  # noqa: E402,F401
from labkit import Lab, Netns, Proc, bin_dir, binary, run, wait_until


# -- the dataplane API: tests/tether_api.py ------------------------------------

def port_counters(counters: dict, port: str) -> dict:
    for p in counters["ports"]:
        if p["name"] == port:
            return p
    raise KeyError(f"no port {port} in counters")


def counter_delta(before: dict, after: dict) -> dict:
    """Per-port and per-drop/event differences between two counters.get results."""
    d = {"ports": {}, "drops": {}, "events": {}}
    for p in after["ports"]:
        b = port_counters(before, p["name"])
        d["ports"][p["name"]] = {k: v - b.get(k, 0) for k, v in p.items()
                                 if isinstance(v, int)}
    for section in ("drops", "events"):
        for k, v in after.get(section, {}).items():
            d[section][k] = v - before.get(section, {}).get(k, 0)
    return d


# -- processes ---------------------------------------------------------------

class Dataplane:
    """tether-dataplane inside a namespace, on net_af_packet ports.

    ports: [{"name": .., "iface": .., "addresses": [..], "domain": n (optional)}].
    extra: top-level sections merged into the generated config (e.g.
    {"wireguard": {...}, "testing": {...}}); `config` can also be edited before
    `start()`. On lab teardown it is stopped with SIGTERM and must exit 0 (clean
    shutdown, every mbuf back).
    """

    READY = re.compile(r"tether-dataplane: ready \(generation (\d+), API (.+)\)")

    def __init__(self, lab: Lab, ns: Netns, ports, routes=(), neighbors=(), exception=True,
                 mbufs=None, name="dataplane", extra=None):
        self.lab, self.ns, self.name = lab, ns, name
        self.socket = lab.path(f"{name}.sock")
        self.config_path = lab.path(f"{name}.json")
        self.tap = lab.ifname("x") if exception else None
        cfg = {
            "api_socket": str(self.socket),
            "eal_args": ["--in-memory", "--no-pci", "--no-telemetry"],
            "ports": [
                {"name": p["name"], "device": f"net_af_packet{i},iface={p['iface']}",
                 "addresses": list(p.get("addresses", [])),
                 **({"domain": p["domain"]} if "domain" in p else {})}
                for i, p in enumerate(ports)
            ],
            "routes": list(routes),
            "neighbors": list(neighbors),
        }
        if mbufs:
            cfg["mbufs"] = mbufs
        if exception:
            cfg["exception"] = {"device": f"net_tap0,iface={self.tap}"}
        if extra:
            cfg.update(extra)
        self.config = cfg
        self.proc: Proc | None = None
        self.starts = 0
        self.ready_generation = None
        self.exit_status = None
        lab.on_close(f"{name} clean exit", self._teardown)

    def start(self, timeout: float = 90):
        self.config_path.write_text(json.dumps(self.config, indent=2))
        exe = binary("tether-dataplane")
        if not exe.exists():
            raise FileNotFoundError(f"{exe} not found: build first (TETHER_BIN={bin_dir()})")
        self.exit_status = None
        self.starts += 1
        self.proc = self.lab.spawn(f"{self.name}-{self.starts}", [exe, "-c", self.config_path],
                                   ns=self.ns)

        def ready():
            m = self.READY.search(self.proc.output())
            if m:
                return m
            if not self.proc.running():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before "
                                   f"ready:\n{self.proc.tail()}")
            return None

        m = wait_until(ready, timeout, f"{self.name} to print ready")
        self.ready_generation = int(m.group(1))
        return self

    def api(self, client="tether-lab") -> ApiClient:
        return ApiClient(self.socket, client=client)

    def call(self, method, params=None):
        with self.api() as c:
            return c.call(method, params)

    def counters(self) -> dict:
        return self.call("counters.get")

    def generation(self) -> int:
        return self.call("generation.get")["generation"]

    def routes(self, domain=None) -> list[dict]:
        return self.call("routes.list", None if domain is None else {"domain": domain})["routes"]

    def running(self) -> bool:
        return self.proc is not None and self.proc.running()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; returns the exit status (0: clean, every mbuf returned)."""
        if self.proc is None:
            return self.exit_status
        self.exit_status = self.proc.stop(signal.SIGTERM, timeout=timeout)
        return self.exit_status

    def assert_clean_exit(self):
        assert self.exit_status == 0, (
            f"{self.name} exited with {self.exit_status} (0 = clean, 3 = leaked mbufs, "
            f"negative = killed by that signal):\n{self.proc.tail()}")

    def _teardown(self):
        if self.proc is None:
            return
        if self.proc.running():
            self.stop()
            self.assert_clean_exit()
        # stopped by the test: it checked the status itself


class ControlPlane:
    """tether-controlplane: the registry CLI, and the daemon (`run`) as a process."""

    def __init__(self, lab: Lab, dataplane_socket, db=None, interval_ms=1000, ns: Netns = None,
                 name="controlplane"):
        self.lab, self.ns, self.name = lab, ns, name
        self.db = Path(db) if db else lab.path(f"{name}.db")
        self.dataplane_socket = dataplane_socket
        self.interval_ms = interval_ms
        self.proc: Proc | None = None
        self.starts = 0
        self.exit_status = None
        lab.on_close(f"{name} clean exit", self._teardown)

    @staticmethod
    def available() -> bool:
        return binary("tether-controlplane").exists()

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        """`tether-controlplane SUB... --db DB ARGS` (the subcommand words come first)."""
        words = []
        rest = list(args)
        while rest and not str(rest[0]).startswith("-") and len(words) < 2:
            words.append(rest.pop(0))
        return run([binary("tether-controlplane"), *words, "--db", self.db, *rest], check=check)

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self, timeout: float = 60):
        """Starts the daemon and waits for its first reconcile pass."""
        self.starts += 1
        self.exit_status = None
        self.proc = self.lab.spawn(
            f"{self.name}-{self.starts}",
            [binary("tether-controlplane"), "run", "--db", self.db, "--dataplane-socket",
             self.dataplane_socket, "--interval-ms", self.interval_ms, "--log-level", "debug"],
            ns=self.ns)
        self.wait_reconciled(0, timeout)
        return self

    def log(self) -> str:
        return self.proc.output() if self.proc else ""

    def wait_reconciled(self, after: int, timeout: float = 60) -> str:
        """Waits for a reconcile pass logged after byte offset `after` of the current log;
        returns the line."""
        def passed():
            if not self.proc.running():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.proc.tail()}")
            m = re.search(r"^.*reconcile state=.*$", self.log()[after:], re.M)
            return m.group(0) if m else None

        return wait_until(passed, timeout, f"{self.name} to finish a reconcile pass")

    def kill(self):
        """SIGKILL: a crash, no goodbye."""
        self.proc.stop(signal.SIGKILL, timeout=10)

    def stop(self, timeout: float = 30) -> int:
        self.exit_status = self.proc.stop(signal.SIGTERM, timeout=timeout)
        return self.exit_status

    def _teardown(self):
        if self.proc is not None and self.proc.running():
            rc = self.stop()
            assert rc == 0, f"{self.name} exited with {rc} on SIGTERM:\n{self.proc.tail()}"
