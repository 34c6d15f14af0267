"""labkit: namespaces, processes and traffic for Tether's namespace lab.

A `Lab` owns everything a test creates -- network namespaces, veth pairs
(created directly inside their namespaces), processes, a tmp dir -- and
removes all of it in `close()`, whatever state the test left it in.
`gateway_topology` builds hosts around a gateway namespace; `tcp_transfer`
and `udp_burst` move checked data between them. Tether's own processes
and its API client live in appliance.py.

Names: namespaces are `tlt-<pid>-<n>-<role>` so that a later run can tell
stale ones (their pid is gone) from those of a lab running beside it;
interface names are `t<pid hex><n hex><suffix>`, at most 15 characters.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PY = "/usr/bin/python3"
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NETTOOL = HERE / "nettool.py"
NS_PREFIX = "tlt"
_counter = itertools.count()


def bin_dir() -> Path:
    return Path(os.environ.get("TETHER_BIN") or REPO / "build" / "bin")


def binary(name: str) -> Path:
    return bin_dir() / name


class CommandError(RuntimeError):
    pass


def run(args, check=True, timeout=60, input=None) -> subprocess.CompletedProcess:
    """Runs a command, capturing its output; raises CommandError with it on failure."""
    args = [str(a) for a in args]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise CommandError(f"timed out after {timeout}s: {' '.join(args)}\n"
                           f"stdout: {e.stdout}\nstderr: {e.stderr}") from None
    if check and p.returncode != 0:
        raise CommandError(f"exit {p.returncode}: {' '.join(args)}\n"
                           f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls `predicate` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random_file(path, size: int) -> str:
    """Writes `size` random bytes to `path`; returns their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(x) for x in out.split()]


def delete_netns(name: str):
    """Kills what still runs in namespace `name` (only labs create these) and deletes it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = netns_pids(name)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids:
            try:
                wait_until(lambda: not netns_pids(name), 5, f"processes in {name} to exit")
            except TimeoutError:
                continue
        break
    run(["ip", "netns", "del", name], check=False)


def remove_stale_labs():
    """Removes namespaces and tmp dirs of earlier lab runs whose process is gone."""
    pattern = re.compile(rf"^{NS_PREFIX}-(\d+)-\d+-")
    for name in list_netns():
        m = pattern.match(name)
        if m and not pid_alive(int(m.group(1))):
            delete_netns(name)
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(f"{NS_PREFIX}-*-*-*"):
        m = pattern.match(d.name + "-")
        if d.is_dir() and m and not pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


class Proc:
    """A process the lab started; its stdout and stderr go to one log file."""

    def __init__(self, name: str, args, log: Path, env=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.log = log
        self._logf = open(log, "ab")
        self.popen = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._logf,
                                      stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.pid = self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines=40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def send_signal(self, sig):
        if self.running():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout: float = 30):
        """Sends `sig`, waits up to `timeout`, then SIGKILLs; returns the exit status
        (negative: killed by that signal; None if even SIGKILL did not end it)."""
        if self.running():
            self.send_signal(sig)
            if self.wait(timeout) is None:
                self.send_signal(signal.SIGKILL)
                self.wait(10)
        self._logf.close()
        return self.returncode


class Netns:
    def __init__(self, name: str):
        self.name = name

    def cmd(self, *args) -> list[str]:
        return ["ip", "netns", "exec", self.name, *[str(a) for a in args]]

    def run(self, *args, check=True, timeout=60, input=None) -> subprocess.CompletedProcess:
        return run(self.cmd(*args), check=check, timeout=timeout, input=input)

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name, *args], check=check)

    def sysctl(self, key: str, value):
        self.run("sysctl", "-qw", f"{key}={value}")

    def ping(self, dest: str, count=3, ttl=None, deadline=20, interval=0.2):
        """ping -c COUNT -w DEADLINE: exit 0 only if COUNT replies came in time."""
        args = ["ping", "-n", "-c", count, "-i", interval, "-w", deadline]
        if ttl is not None:
            args += ["-t", ttl]
        return self.run(*args, dest, check=False, timeout=deadline + 15)

    def tcp_listening(self, port: int) -> bool:
        out = self.run("ss", "-Htln", f"sport = :{port}", check=False).stdout
        return bool(out.strip())

    def __repr__(self):
        return f"Netns({self.name})"


class Lab:
    """Owns every namespace, process and file a test creates; `close()` removes them."""

    def __init__(self):
        self.n = next(_counter)
        self.tag = f"{NS_PREFIX}-{os.getpid()}-{self.n}"
        self.short = f"{os.getpid():x}{self.n:x}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.namespaces: list[Netns] = []
        self.procs: list[Proc] = []
        self._finalizers = []  # (what, callable), run last-in first-out
        self._closed = False
        self.failed = False  # set by the fixture when the test failed: logs get printed

    # -- names -------------------------------------------------------------
    def ifname(self, suffix: str) -> str:
        name = f"t{self.short}{suffix}"
        if len(name) > 15:
            raise ValueError(f"interface name {name} is longer than 15 characters")
        return name

    def path(self, name: str) -> Path:
        return self.dir / name

    # -- resources ---------------------------------------------------------
    def netns(self, role: str) -> Netns:
        ns = Netns(f"{self.tag}-{role}")
        run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        # No IPv6 chatter (router solicitations, MLD) on the wires under test.
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        return ns

    def veth(self, a: Netns, a_name: str, b: Netns, b_name: str):
        """A veth pair created straight into two namespaces; both ends up."""
        run(["ip", "link", "add", a_name, "netns", a.name, "type", "veth",
             "peer", "name", b_name, "netns", b.name])
        a.ip("link", "set", a_name, "up")
        b.ip("link", "set", b_name, "up")

    def spawn(self, name: str, args, ns: Netns | None = None, env=None) -> Proc:
        args = ns.cmd(*args) if ns else list(args)
        p = Proc(name, args, self.dir / f"{name}.log", env=env)
        self.procs.append(p)
        return p

    def on_close(self, what: str, fn):
        self._finalizers.append((what, fn))

    # -- teardown ----------------------------------------------------------
    def close(self):
        """Tears everything down; raises afterwards if a finalizer (e.g. an exit-status
        check) failed, so the test reports it."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for what, fn in reversed(self._finalizers):
            try:
                fn()
            except Exception as e:  # keep tearing down, report at the end
                errors.append(f"{what}: {e}")
        for p in reversed(self.procs):
            p.stop(signal.SIGKILL, timeout=5)  # whatever the test left running
        for ns in reversed(self.namespaces):
            delete_netns(ns.name)
        if errors:
            self.failed = True
        if self.failed:
            self.dump_logs()
        if self.failed and os.environ.get("TETHER_LAB_KEEP"):
            print(f"labkit: kept {self.dir} for inspection")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise AssertionError("lab teardown: " + "; ".join(errors))

    def dump_logs(self, lines=25):
        """Prints the end of every process log (pytest shows it with a failure)."""
        for p in self.procs:
            print(f"----- {p.name} (pid {p.pid}, exit {p.returncode}): {' '.join(p.args)}")
            print(p.tail(lines))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- topology ---------------------------------------------------------------

class Host:
    """A namespace with one interface `eth0` towards the gateway."""

    def __init__(self, ns: Netns, address: str, gateway: str, gw_iface: str):
        self.ns = ns
        self.address = address            # "10.0.1.2/24"
        self.ip = address.split("/")[0]   # "10.0.1.2"
        self.gateway = gateway            # "10.0.1.1"
        self.gw_iface = gw_iface          # the veth end in the gateway namespace

    def __repr__(self):
        return f"Host({self.ns.name}, {self.address})"


def gateway_topology(lab: Lab, hosts: dict[str, tuple[str, str]]):
    """Namespace `gw` plus one namespace per host, each host linked to `gw` by a veth.

    hosts: {role: (host address/len, gateway address)}. The gateway ends are up
    without addresses (the dataplane owns them). Returns (gw Netns, {role: Host}).
    """
    gw = lab.netns("gw")
    out = {}
    for i, (role, (address, gateway)) in enumerate(hosts.items()):
        ns = lab.netns(role)
        gw_iface = lab.ifname(f"g{i}")
        lab.veth(gw, gw_iface, ns, "eth0")
        ns.ip("addr", "add", address, "dev", "eth0")
        ns.ip("route", "add", "default", "via", gateway)
        # veth hands checksum-partial packets to packet sockets: the dataplane
        # would forward them with a bad TCP/UDP checksum.
        ns.run("ethtool", "-K", "eth0", "tx", "off")
        out[role] = Host(ns, address, gateway, gw_iface)
    return gw, out


# -- traffic -----------------------------------------------------------------

def tcp_transfer(lab: Lab, src: Host | Netns, dst: Netns, dst_ip: str, size: int,
                 port: int = 5001, timeout: float = 300, hold: Path | None = None,
                 hold_rate: int = 256 << 10) -> "TcpTransfer":
    """Starts sending `size` random bytes from `src` to a socat listener in `dst`
    at dst_ip:port; `finish()` waits for it. The sender is socat, or with `hold`
    nettool's tcp-send, which trickles at `hold_rate` bytes/s while that file exists.
    """
    src_ns = src.ns if isinstance(src, Host) else src
    data = lab.path(f"tcp-{port}.in")
    out = lab.path(f"tcp-{port}.out")
    sent_sha = write_random_file(data, size)
    rx = lab.spawn(f"tcp-rx-{port}",
                   ["socat", "-u", f"TCP-LISTEN:{port},bind={dst_ip},reuseaddr",
                    f"CREATE:{out}"], ns=dst)
    wait_until(lambda: dst.tcp_listening(port) or not rx.running(), 20, "the TCP listener")
    if not rx.running():
        raise RuntimeError(f"TCP receiver exited: {rx.tail()}")
    if hold is None:
        args = ["socat", "-u", f"OPEN:{data}", f"TCP:{dst_ip}:{port},connect-timeout=20"]
    else:
        args = [PY, NETTOOL, "tcp-send", "--to", dst_ip, "--port", port, "--file", data,
                "--hold", hold, "--hold-rate", hold_rate]
    tx = lab.spawn(f"tcp-tx-{port}", args, ns=src_ns)
    return TcpTransfer(data, out, sent_sha, rx, tx, timeout)


class TcpTransfer:
    def __init__(self, data, out, sent_sha, rx: Proc, tx: Proc, timeout):
        self.data, self.out, self.sent_sha = data, out, sent_sha
        self.rx, self.tx, self.timeout = rx, tx, timeout

    def received_bytes(self) -> int:
        try:
            return self.out.stat().st_size
        except FileNotFoundError:
            return 0

    def finish(self):
        """Waits for both ends; returns (rx status, tx status, sha256 received)."""
        t0 = time.monotonic()
        tx_rc = self.tx.wait(self.timeout)
        rx_rc = self.rx.wait(max(10, self.timeout - (time.monotonic() - t0)))
        if tx_rc is None or rx_rc is None:
            got = self.received_bytes()
            self.tx.stop(signal.SIGKILL, 5)
            self.rx.stop(signal.SIGKILL, 5)
            raise AssertionError(f"TCP transfer did not finish in {self.timeout}s "
                                 f"({got} bytes received)\nsender: {self.tx.tail()}\n"
                                 f"receiver: {self.rx.tail()}")
        self.tx.stop()
        self.rx.stop()
        return rx_rc, tx_rc, sha256_file(self.out)


def udp_burst(lab: Lab, src: Host, dst: Host, count: int, size: int = 512, port: int = 5002,
              batch: int = 32, gap_ms: float = 4.0, timeout: float = 120):
    """Sends `count` numbered datagrams from `src` to `dst`; returns (sender's JSON,
    receiver's JSON) from nettool."""
    rx = lab.spawn(f"udp-rx-{port}",
                   [PY, NETTOOL, "udp-recv", "--bind", dst.ip, "--port", port,
                    "--expect", count, "--idle", 5, "--timeout", timeout], ns=dst.ns)
    wait_until(lambda: '"listening"' in rx.output() or not rx.running(), 20,
               "the UDP receiver")
    tx = src.ns.run(PY, NETTOOL, "udp-send", "--to", dst.ip, "--port", port, "--count", count,
                    "--size", size, "--batch", batch, "--gap-ms", gap_ms, timeout=timeout)
    if rx.wait(timeout) is None:
        rx.stop(signal.SIGKILL, 5)
        raise AssertionError(f"UDP receiver did not finish: {rx.tail()}")
    lines = [json.loads(l) for l in rx.output().splitlines() if l.startswith("{")]
    return json.loads(tx.stdout.strip().splitlines()[-1]), lines[-1]
