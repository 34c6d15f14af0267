#!/usr/bin/python3
"""Runs pcap cases against a real tether-dataplane with net_pcap ports.

    /usr/bin/python3 tests/pcap/run_case.py [--bin DIR] [--keep] CASE_DIR...

For each case folder (see README.md): checks that gen.py still produces the
committed pcaps, starts the dataplane with one net_pcap port per configured
port (rx = send-<port>.pcap, tx = out-<port>.pcap in a temporary folder),
waits until every sent packet was received and the counters stop moving,
stops it with SIGTERM (exit 0 means no crash and no leaked mbuf), then
compares the counters with case.json and each out-<port>.pcap with
expect-<port>.pcap field by field. Exit status 0 when every case passes.
"""
import argparse
import functools
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

print = functools.partial(print, flush=True)  # noqa: A001  (ordered with child output)
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
START_TIMEOUT = 20.0
RUN_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0  # the three together stay below ctest's 120 s
DEFAULT_SETTLE_MS = 500
CASE_KEYS = {"$comment", "description", "drops", "events", "unordered", "ignore", "settle_ms",
             "expected_failure"}


class CaseFailure(Exception):
    pass


class Mismatch(CaseFailure):
    """The dataplane ran and stopped cleanly but its counters or output differ."""


# --- the dataplane API (docs/dataplane-api.md): 4-byte big-endian length + JSON ---

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from tether_api import ApiClient  # noqa: E402  (tests/tether_api.py)


def Api(path):  # noqa: N802
    return ApiClient(path, client="pcap-runner", timeout=10)


# --- pcaps ---

def read_frames(path):
    """Raw frames of a pcap (bytes), timestamps dropped."""
    from scapy.utils import RawPcapReader
    if not path.exists():
        return []
    r = RawPcapReader(str(path))
    try:
        return [bytes(data) for data, _meta in r]
    finally:
        r.close()


def write_empty_pcap(path):
    # pcap global header: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, Ethernet
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))


def flatten(frame):
    """A frame as an ordered {"Layer.field": (value, text)} map. Repeated layer
    names get a #n suffix; conditional fields absent from the frame are absent."""
    from scapy.all import Ether
    from scapy.packet import NoPayload
    out = {}
    seen = {}
    layer = Ether(frame)
    while layer is not None and not isinstance(layer, NoPayload):
        name = layer.__class__.__name__
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}#{seen[name]}"
        for f in layer.fields_desc:
            if f.name not in layer.fields:
                continue
            v = layer.fields[f.name]
            try:
                text = f.i2repr(layer, v)
            except Exception:  # a field scapy cannot print still compares
                text = repr(v)
            out[f"{key}.{f.name}"] = (repr(v), text)
        layer = layer.payload
    return out


def field_diff(expected, actual, ignore):
    """Differences between two frames as lines, [] when equal on every field
    not ignored. `ignore` holds "Layer.field" names (any occurrence)."""
    e, a = flatten(expected), flatten(actual)

    def ignored(key):
        layer, _, field = key.partition(".")
        return f"{layer.split('#')[0]}.{field}" in ignore

    lines = []
    for k in list(e) + [k for k in a if k not in e]:
        if ignored(k):
            continue
        ev, av = e.get(k), a.get(k)
        if ev is None:
            lines.append(f"    {k}: unexpected field = {av[1]}")
        elif av is None:
            lines.append(f"    {k}: missing (expected {ev[1]})")
        elif ev[0] != av[0]:
            lines.append(f"    {k}: expected {_short(ev[1])}, got {_short(av[1])}")
    if not lines and not ignore and expected != actual:
        lines.append(f"    bytes differ ({len(expected)} vs {len(actual)} bytes) "
                     "though every field compares equal")
    return lines


def _short(text, limit=120):
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def summary(frame):
    from scapy.all import Ether
    return Ether(frame).summary()


def checksum_problems(frame):
    """Checksums in a frame the dataplane sent that scapy computes otherwise.
    Checks the outer IPv4 header and, for unfragmented packets, ICMP/UDP/TCP
    (a quoted packet inside an ICMP error is not checked: it may be cut)."""
    from scapy.all import ICMP, IP, TCP, UDP, Ether, raw
    p = Ether(frame)
    if IP not in p:
        return []
    problems = []
    ip = p[IP]
    hdr = raw(ip)[: ip.ihl * 4]
    fresh = IP(hdr)
    del fresh.chksum
    want = IP(raw(fresh)).chksum
    if want != ip.chksum:
        problems.append(f"IP.chksum {ip.chksum:#06x}, recomputed {want:#06x}")
    if ip.flags.MF or ip.frag:
        return problems
    for proto in (ICMP, UDP, TCP):
        if proto in p and p[proto].underlayer is ip:
            seg = p[proto]
            if proto is UDP and seg.chksum == 0:
                break  # no checksum
            copy = IP(raw(ip)[: ip.len])
            del copy[proto].chksum
            want = IP(raw(copy))[proto].chksum
            if want != seg.chksum:
                problems.append(f"{proto.__name__}.chksum {seg.chksum:#06x}, recomputed {want:#06x}")
            break
    return problems


def compare_port(port, expected, actual, unordered, ignore):
    """Failure lines for one port's output."""
    lines = []
    for i, f in enumerate(actual):
        for prob in checksum_problems(f):
            lines.append(f"  {port}: sent packet {i} ({summary(f)}): {prob}")
    if unordered:
        left = list(range(len(actual)))
        missing = []
        for i, e in enumerate(expected):
            hit = next((j for j in left if not field_diff(e, actual[j], ignore)), None)
            if hit is None:
                missing.append(i)
            else:
                left.remove(hit)
        for i in missing:
            lines.append(f"  {port}: expected packet {i} not sent: {summary(expected[i])}")
            if left:  # show how the nearest candidate differs
                best = min(left, key=lambda j: len(field_diff(expected[i], actual[j], ignore)))
                lines.append(f"    closest sent packet {best}:")
                lines += field_diff(expected[i], actual[best], ignore)
        for j in left:
            lines.append(f"  {port}: unexpected packet {j}: {summary(actual[j])}")
        return lines
    for i in range(max(len(expected), len(actual))):
        if i >= len(actual):
            lines.append(f"  {port}: packet {i} missing: expected {summary(expected[i])}")
        elif i >= len(expected):
            lines.append(f"  {port}: packet {i} unexpected: {summary(actual[i])}")
        else:
            d = field_diff(expected[i], actual[i], ignore)
            if d:
                lines.append(f"  {port}: packet {i} differs (expected {summary(expected[i])}):")
                lines += d
    if len(expected) != len(actual):
        lines.append(f"  {port}: expected {len(expected)} packets, got {len(actual)}")
    return lines


def compare_counters(case, counters):
    lines = []
    for group in ("drops", "events"):
        want = case.get(group, {})
        have = counters[group]
        for name in want:
            if name not in have:
                lines.append(f"  case.json {group}.{name}: no such counter")
        for name, value in have.items():
            w = want.get(name, 0)
            lo, hi = (w, w) if isinstance(w, int) else (w[0], w[1])
            if not lo <= value <= hi:
                lines.append(f"  {group}.{name}: expected {w}, got {value}")
    return lines


# --- running one case ---

def check_generated(case_dir, work):
    """gen.py is the source of truth: the committed pcaps must be what it writes."""
    gen_out = work / "gen"
    gen_out.mkdir()
    r = subprocess.run([sys.executable, str(case_dir / "gen.py"), str(gen_out)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise CaseFailure(f"gen.py failed:\n{r.stdout}{r.stderr}")
    made = {p.name for p in gen_out.glob("*.pcap")}
    committed = {p.name for p in case_dir.glob("*.pcap")}
    stale = sorted(n for n in made | committed
                   if n not in made or n not in committed or
                   (gen_out / n).read_bytes() != (case_dir / n).read_bytes())
    if stale:
        raise CaseFailure(f"pcaps differ from what gen.py writes: {', '.join(stale)} "
                          f"(run /usr/bin/python3 {case_dir / 'gen.py'})")


def ensure_hugepages():
    info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    free = int(info["HugePages_Free"].split()[0])
    if free >= 64:
        return
    script = REPO / "scripts" / "hugepages"
    if os.geteuid() == 0 and script.exists():
        subprocess.run([str(script)], check=False, capture_output=True)
        info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
        free = int(info["HugePages_Free"].split()[0])
    if free < 64:
        raise CaseFailure(f"only {free} free hugepages; run scripts/hugepages as root")


def runtime_config(case_dir, work, config):
    cfg = json.loads(json.dumps(config))
    cfg["api_socket"] = str(work / "api.sock")
    cfg.setdefault("eal_args", ["--in-memory", "--no-pci", "--no-telemetry"])
    sends = {}
    for i, port in enumerate(cfg["ports"]):
        name = port["name"]
        if "device" in port:
            raise CaseFailure(f"config.json port {name} has a device; the runner sets it")
        if "mac" not in port:
            raise CaseFailure(f"config.json port {name} needs a fixed mac")
        send = case_dir / f"send-{name}.pcap"
        if not send.exists():
            send = work / f"send-{name}.pcap"
            write_empty_pcap(send)
        for path in (send, work):
            if "," in str(path):
                raise CaseFailure(f"path {path} contains a comma (device argument separator)")
        port["device"] = f"net_pcap{i},rx_pcap={send},tx_pcap={work / f'out-{name}.pcap'}"
        sends[name] = len(read_frames(send))
    (work / "config.json").write_text(json.dumps(cfg, indent=2))
    return cfg, sends


def wait_for(pred, timeout, what, proc, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CaseFailure(f"dataplane exited ({proc.returncode}) while waiting for {what}:\n"
                              + log.read_text()[-3000:])
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise CaseFailure(f"timed out waiting for {what}")


def stable_counters(api, sends, settle_ms, proc, log):
    """Counters once every sent packet was received and nothing moved for settle_ms."""
    def all_received():
        c = api.call("counters.get")
        rx = {p["name"]: p["rx_packets"] for p in c["ports"]}
        return all(rx.get(n, 0) >= k for n, k in sends.items())

    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        wait_for(all_received, RUN_TIMEOUT, "every sent packet to be received", proc, log)
    except CaseFailure as e:
        c = api.call("counters.get")
        raise CaseFailure(f"{e}: sent {sends}, port counters {c['ports']}")
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        c = api.call("counters.get")
        c.pop("mbufs", None)  # per-lcore caches make "available" wander
        if c != last:
            last, since = c, time.monotonic()
        elif time.monotonic() - since >= settle_ms / 1000:
            return c
        if proc.poll() is not None:
            raise CaseFailure(f"dataplane exited ({proc.returncode}):\n" + log.read_text()[-3000:])
        time.sleep(0.05)
    raise CaseFailure("counters never settled")


def stop(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise CaseFailure(f"dataplane did not stop within {STOP_TIMEOUT}s of SIGTERM")
    if rc != 0:
        why = "mbufs leaked" if rc == 3 else f"signal {-rc}" if rc < 0 else "error"
        raise CaseFailure(f"dataplane exited {rc} ({why}):\n" + log.read_text()[-3000:])


def run_case(case_dir, bindir, keep, verbose):
    case_dir = case_dir.resolve()
    case = json.loads((case_dir / "case.json").read_text())
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CaseFailure(f"case.json: unknown keys {sorted(unknown)}")
    config = json.loads((case_dir / "config.json").read_text())
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"tether-pcap-{case_dir.name[:20]}-"))
    ok = False
    try:
        check_generated(case_dir, work)
        ensure_hugepages()
        cfg, sends = runtime_config(case_dir, work, config)
        log = work / "dataplane.log"
        with open(log, "w") as logf:
            proc = subprocess.Popen([str(bindir / "tether-dataplane"), "-c", str(work / "config.json")],
                                    stdout=logf, stderr=subprocess.STDOUT)
        api = None
        try:
            wait_for(lambda: "tether-dataplane: ready" in log.read_text(), START_TIMEOUT,
                     "the ready line", proc, log)
            api = Api(work / "api.sock")
            counters = stable_counters(api, sends, case.get("settle_ms", DEFAULT_SETTLE_MS),
                                       proc, log)
            api.close()
            api = None
        except OSError as e:  # the API socket broke: the dataplane probably died
            if api:
                api.close()
            time.sleep(0.5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise CaseFailure(f"API: {e}; dataplane exit {proc.returncode}:\n"
                              + log.read_text()[-3000:])
        except BaseException:
            if api:
                api.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        stop(proc, log)

        failures = compare_counters(case, counters)
        ignore = set(case.get("ignore", []))
        unordered = set(case.get("unordered", []))
        for port in cfg["ports"]:
            name = port["name"]
            expected = read_frames(case_dir / f"expect-{name}.pcap")
            actual = read_frames(work / f"out-{name}.pcap")
            failures += compare_port(name, expected, actual, name in unordered, ignore)
        if verbose or failures:
            print(f"  counters: drops {_nonzero(counters['drops'])}, "
                  f"events {_nonzero(counters['events'])}")
        if failures:
            ok = bool(case.get("expected_failure"))  # nothing to inspect: the case says why
            raise Mismatch("\n".join(failures))
        ok = True
    finally:
        if ok and not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  work folder kept: {work}")


def _nonzero(d):
    return {k: v for k, v in d.items() if v}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", type=pathlib.Path, help="case folders")
    ap.add_argument("--bin", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("TETHER_BIN", REPO / "build" / "bin")),
                    help="folder with tether-dataplane (default: $TETHER_BIN or build/bin)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder of passing cases")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the counters")
    args = ap.parse_args()
    if not (args.bin / "tether-dataplane").exists():
        sys.exit(f"no tether-dataplane in {args.bin} (set --bin or TETHER_BIN)")
    failed = []
    for case_dir in args.cases:
        name = case_dir.resolve().name
        print(f"case {name}")
        t0 = time.monotonic()
        xfail = json.loads((case_dir / "case.json").read_text()).get("expected_failure")
        try:
            run_case(case_dir, args.bin, args.keep, args.verbose)
            if xfail:
                print(f"  XPASS: passes though case.json says expected_failure ({xfail}); "
                      "remove the mark")
                failed.append(name)
            else:
                print(f"  PASS ({time.monotonic() - t0:.1f}s)")
        except CaseFailure as e:
            if xfail and isinstance(e, Mismatch):
                print(f"  XFAIL ({xfail}):\n{e}")
            else:
                print(f"  FAIL: {e}")
                failed.append(name)
    if failed:
        print(f"{len(failed)} of {len(args.cases)} failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
