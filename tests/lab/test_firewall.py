"""The stateful firewall in the data plane, end to end: two VDCs behind
WireGuard sites (wireguard-go) cannot reach each other through the gateway;
an interconnect policy for one port lets them, on that port only; removing
it cuts new and established flows at once; a rule update keeps the flows it
still accepts.

    user  eth0 10.1.0.50/24 ─┐
    sitea eth0 10.1.0.2/24 ──┤ wan bridge ── uplink 10.1.0.1/24 ┐ gw: tether-dataplane,
    siteb eth0 10.1.0.3/24 ──┘                                  │ wg0 on 10.1.0.1:51820
      each site: wireguard-go, peer gw: AllowedIPs 0.0.0.0/0    │ peer sitea: 10.0.0.0/24, domain 7
      lan0 10.0.0.1/24 ─── vdca|vdcb eth0 10.0.0.5/24           │ peer siteb: 10.0.0.0/24, domain 8
                                                                │ nat_gateway 7, 8: 10.0.0.254
                                                                │ nat_snat 7, 8: 10.1.0.1

Both VDCs use the same addresses (10.0.0.5 behind 10.0.0.1); their domains
are separate routing tables. VDC B's workload is published on the uplink's
address: tcp 10.1.0.1:443 -> 10.0.0.5:8443 ("b-https") and 10.1.0.1:80 ->
10.0.0.5:8080 ("b-http"). The only path from VDC A to VDC B is that
published address: A's workload connects to 10.1.0.1, which has no route in
domain 7 (only the site's 10.0.0.0/24 and the gateway's own 10.0.0.254), so
the gateway hairpins it (nat_datapath.cc `plan`): DNAT to B's workload in
domain 8, SNAT to domain 8's nat_gateway. The firewall classifies that flow
from zone vdc-7 to zone vdc-8: without a policy it is dropped (fw_isolation);
a policy's rules match the port after DNAT (8443, not 443). Users on the
uplink (zone uplink) reach both ports through the built-in accept.

Every test builds its own namespaces (test_nat's `start_vdcs`: WgTopology
plus the VDC LANs) and the `lab` fixture removes them, pass or fail. Needs
wireguard-go and wireguard-tools; about 20 s.

The traffic endpoints are this file's command line, run inside namespaces
(`ip netns exec NS /usr/bin/python3 test_firewall.py CMD ...`, JSON lines):
  serve --bind IP --ports P[,P...] --ident ID
      TCP on every port; a connection's first line picks what it gets:
        "hello MSG"          answers "ID PORT PEER_IP:PEER_PORT MSG", then waits
                             for the client to close;
        "echo"               echoes every byte back until the client closes;
        "exchange UP DOWN"   receives UP bytes while sending DOWN random bytes;
                             logs the sha256 of both.
      Logs every connection (the peer it saw) as a JSON line.
  probe --to IP --ports P[,P...] [--timeout S] [--msg M]
      one "hello" connection per port, all at once; prints one line per port:
      {"port", "ok", "reply", "local", "error", "took"} (ok: the answer came).
  exchange --to IP --port P --up N --down M [--hold F --rate BPS]
      "exchange N M": sends N random bytes (at most BPS bytes/s while F
      exists), receives what the server sends; prints {"sent": n} every
      512 KiB, then {"sent_bytes", "sent_sha", "recv_bytes", "recv_sha"}.
  stream --to IP --port P [--interval S] [--duration S] [--stop-file F]
      an "echo" connection that sends a numbered line every S seconds until F
      exists; prints {"connected", "local"}, then {"t", "echo": n} for every
      line echoed, then {"sent", "echoed"}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

PY = "/usr/bin/python3"
THIS = Path(__file__).resolve()
CHUNK = 64 << 10


# ==== the traffic endpoints (command line, inside namespaces) ===================

def _out(obj):
    print(json.dumps(obj), flush=True)


def _read_line(conn, limit=4096):
    """(first line, the bytes that came after it) of a connection."""
    buf = b""
    while b"\n" not in buf and len(buf) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line.decode(errors="replace"), rest


def _send_random(conn, size, hold=None, rate=0, progress=False):
    """Sends `size` random bytes; returns their sha256."""
    h = hashlib.sha256()
    sent = 0
    mark = 512 << 10
    while sent < size:
        held = hold and rate and os.path.exists(hold)
        n = min(size - sent, min(CHUNK, max(1024, rate // 20)) if held else CHUNK)
        data = os.urandom(n)
        conn.sendall(data)
        h.update(data)
        sent += n
        if progress and sent >= mark:
            _out({"sent": sent})
            mark = (sent // (512 << 10) + 1) * (512 << 10)
        if held:
            time.sleep(n / rate)
    return h.hexdigest()


def _recv_all(conn, first=b""):
    """Receives until EOF; returns (bytes, sha256)."""
    h = hashlib.sha256(first)
    total = len(first)
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        total += len(chunk)
    return total, h.hexdigest()


def cmd_serve(a):
    lock = threading.Lock()

    def log(obj):
        with lock:
            _out(obj)

    def conn_main(conn, peer, port):
        peer_s = f"{peer[0]}:{peer[1]}"
        try:
            conn.settimeout(120)
            line, rest = _read_line(conn)
            words = line.split()
            mode = words[0] if words else ""
            if mode == "hello":
                msg = line[len("hello "):]
                log({"port": port, "peer": peer_s, "mode": mode, "data": msg})
                conn.sendall(f"{a.ident} {port} {peer_s} {msg}\n".encode())
                while conn.recv(4096):  # until the client closes
                    pass
            elif mode == "echo":
                log({"port": port, "peer": peer_s, "mode": mode})
                if rest:
                    conn.sendall(rest)
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    conn.sendall(chunk)
            elif mode == "exchange":
                up, down = int(words[1]), int(words[2])
                log({"port": port, "peer": peer_s, "mode": mode, "up": up, "down": down})
                result = {}

                def sender():
                    try:
                        result["sent_sha"] = _send_random(conn, down)
                        result["sent_bytes"] = down
                        conn.shutdown(socket.SHUT_WR)
                    except OSError as e:
                        result["send_error"] = str(e)

                th = threading.Thread(target=sender, daemon=True)
                th.start()
                result["recv_bytes"], result["recv_sha"] = _recv_all(conn, rest)
                th.join(120)
                log({"port": port, "peer": peer_s, "mode": "exchanged", **result})
            else:
                log({"port": port, "peer": peer_s, "mode": "unknown", "data": line})
        except OSError as e:
            log({"port": port, "peer": peer_s, "error": str(e)})
        finally:
            conn.close()

    def listener(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a.bind, port))
        s.listen(64)
        return s

    def accept_loop(s, port):
        while True:
            conn, peer = s.accept()
            threading.Thread(target=conn_main, args=(conn, peer, port), daemon=True).start()

    socks = [(listener(int(p)), int(p)) for p in a.ports.split(",")]
    log({"listening": True})
    for s, port in socks[1:]:
        threading.Thread(target=accept_loop, args=(s, port), daemon=True).start()
    accept_loop(*socks[0])


def cmd_probe(a):
    results = {}

    def one(port):
        t0 = time.monotonic()
        r = {"port": port, "ok": False, "reply": None, "local": None, "error": None}
        try:
            s = socket.create_connection((a.to, port), timeout=a.timeout)
            local = s.getsockname()
            r["local"] = f"{local[0]}:{local[1]}"
            s.settimeout(a.timeout)
            s.sendall(f"hello {a.msg}\n".encode())
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            s.close()
            r["reply"] = buf.decode(errors="replace").strip()
            r["ok"] = bool(r["reply"])
            if not r["ok"]:
                r["error"] = "closed without an answer"
        except socket.timeout:
            r["error"] = "timed out"
        except OSError as e:
            r["error"] = f"{type(e).__name__}: {e}"
        r["took"] = round(time.monotonic() - t0, 3)
        results[port] = r

    ports = [int(p) for p in a.ports.split(",")]
    threads = [threading.Thread(target=one, args=(p,)) for p in ports]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for p in ports:
        _out(results[p])


def cmd_exchange(a):
    s = socket.create_connection((a.to, a.port), timeout=10)
    s.settimeout(120)
    local = s.getsockname()
    _out({"connected": True, "local": f"{local[0]}:{local[1]}"})
    s.sendall(f"exchange {a.up} {a.down}\n".encode())
    got = {}

    def reader():
        try:
            got["recv_bytes"], got["recv_sha"] = _recv_all(s)
        except OSError as e:
            got["recv_error"] = str(e)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    sent_sha = _send_random(s, a.up, hold=a.hold, rate=a.rate, progress=True)
    s.shutdown(socket.SHUT_WR)
    th.join(120)
    s.close()
    _out({"sent_bytes": a.up, "sent_sha": sent_sha, **got})


def cmd_stream(a):
    s = socket.create_connection((a.to, a.port), timeout=10)
    s.settimeout(None)
    local = s.getsockname()
    _out({"connected": True, "local": f"{local[0]}:{local[1]}"})
    s.sendall(b"echo\n")
    t0 = time.monotonic()
    echoed = [0]

    def reader():
        buf = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    echoed[0] += 1
                    _out({"t": round(time.monotonic() - t0, 3), "echo": int(line)})
        except (OSError, ValueError) as e:
            _out({"recv_error": str(e)})

    threading.Thread(target=reader, daemon=True).start()
    seq = 0
    while time.monotonic() - t0 < a.duration and not (a.stop_file and
                                                       os.path.exists(a.stop_file)):
        s.sendall(f"{seq}\n".encode())
        seq += 1
        time.sleep(a.interval)
    _out({"sent": seq, "echoed": echoed[0]})
    s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--ports", required=True)
    s.add_argument("--ident", required=True)
    r = sub.add_parser("probe")
    r.add_argument("--to", required=True)
    r.add_argument("--ports", required=True)
    r.add_argument("--timeout", type=float, default=2.0)
    r.add_argument("--msg", default="hello")
    x = sub.add_parser("exchange")
    x.add_argument("--to", required=True)
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--up", type=int, required=True)
    x.add_argument("--down", type=int, default=0)
    x.add_argument("--hold")
    x.add_argument("--rate", type=int, default=0)
    t = sub.add_parser("stream")
    t.add_argument("--to", required=True)
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--interval", type=float, default=0.05)
    t.add_argument("--duration", type=float, default=60)
    t.add_argument("--stop-file")
    a = p.parse_args()
    {"serve": cmd_serve, "probe": cmd_probe, "exchange": cmd_exchange,
     "stream": cmd_stream}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())


# ==== the tests ====================================================================

import ipaddress  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402

import labkit  # noqa: E402
import wgkit  # noqa: E402
from appliance import counter_delta  # noqa: E402
from test_nat import (MB, NAT_GW, PUBLIC, WORKLOAD, apply, mapping, sessions,  # noqa: E402
                      start_vdcs)
from test_nat import state as nat_state  # noqa: E402

A_DOMAIN, B_DOMAIN = 7, 8
A_ZONE, B_ZONE = f"vdc-{A_DOMAIN}", f"vdc-{B_DOMAIN}"
HTTPS_PUBLIC, HTTPS_INNER = 443, 8443   # b-https: the policy names the inner port
HTTP_PUBLIC, HTTP_INNER = 80, 8080      # b-http: never allowed from VDC A
RULE_NAME = "interconnect-https"
RULE = {"name": RULE_NAME, "protocol": "tcp", "dport": str(HTTPS_INNER), "action": "accept",
        "log": True}
NO_CONNECT = 2.0   # seconds a probe that must fail waits for its connection


def policy_change(op: str, rules=(RULE,)) -> dict:
    c = {"kind": "fw_policy", "op": op, "from": A_ZONE, "to": B_ZONE}
    if op != "del":
        c.update({"default": "drop", "rules": list(rules)})
    return c


class Interconnect:
    """The two VDCs of the module doc, B published on the uplink, a user there;
    attributes: lab, t (WgTopology), a, b (test_nat.Vdc), user, svc (B's service)."""

    def __init__(self, lab):
        self.lab = lab
        self.t, (self.a, self.b) = start_vdcs(lab, 2)
        assert (self.a.domain, self.b.domain) == (A_DOMAIN, B_DOMAIN)
        apply(self.t, [
            {"kind": "nat_snat", "op": "add", "domain": A_DOMAIN, "public": PUBLIC},
            {"kind": "nat_snat", "op": "add", "domain": B_DOMAIN, "public": PUBLIC},
            mapping("b-https", "tcp", HTTPS_PUBLIC, B_DOMAIN, inner_port=HTTPS_INNER),
            mapping("b-http", "tcp", HTTP_PUBLIC, B_DOMAIN, inner_port=HTTP_INNER),
        ])
        # The published address has no route in VDC A's domain: hairpinned.
        public = ipaddress.ip_address(PUBLIC)
        covering = [r for r in self.t.dp.routes(A_DOMAIN)
                    if public in ipaddress.ip_network(r["prefix"])]
        assert not covering, f"domain {A_DOMAIN} routes the published address: {covering}"
        self.user = self.t.add_uplink_host("user", "10.1.0.50/24")
        self.svc = spawn(lab, "serve-b", ["serve", "--bind", WORKLOAD, "--ports",
                                          f"{HTTPS_INNER},{HTTP_INNER}", "--ident", "vdc-b"],
                         self.b.lan)

    def state(self) -> str:
        return nat_state(self.t) + "\n" + fw_state(self.t)

    def probe(self, ns, ports, msg, timeout=NO_CONNECT) -> dict[int, dict]:
        r = ns.run(PY, THIS, "probe", "--to", PUBLIC, "--ports", ",".join(map(str, ports)),
                   "--timeout", timeout, "--msg", msg, timeout=timeout * 2 + 30)
        return {x["port"]: x for x in wgkit.json_lines(r.stdout)}

    def exchanged(self) -> list[dict]:
        """B's log of finished exchanges, once one is there (the client may end
        before the server has read its last bytes)."""
        def done():
            return [e for e in lines(self.svc) if e.get("mode") == "exchanged"]
        return labkit.wait_until(done, 20, "B's end of the exchange")

    def policy(self) -> dict:
        (p,) = self.t.dp.call("fw.policies.list", {"from": A_ZONE, "to": B_ZONE})["policies"]
        return p

    def sessions_from_a(self, mapping_name="b-https") -> list[dict]:
        return [s for s in sessions(self.t, protocol="tcp", mapping=mapping_name)
                if s["orig"]["domain"] == A_DOMAIN]


def spawn(lab, name, args, ns, ready='"listening"'):
    """Starts one of this file's commands; waits for its ready line if `ready`."""
    p = lab.spawn(name, [PY, THIS, *args], ns=ns)
    if ready:
        labkit.wait_until(lambda: ready in p.output() or not p.running(), 20, f"{name} to start")
        if ready not in p.output():
            raise RuntimeError(f"{name} exited: {p.tail()}")
    return p


def lines(proc) -> list[dict]:
    return wgkit.json_lines(proc.output())


def fw_counters(c: dict) -> dict:
    return {k: v for s in ("drops", "events") for k, v in c.get(s, {}).items()
            if k.startswith("fw_") or k == "nat_hairpinned"}


def fw_delta(before: dict, after: dict) -> dict:
    d = counter_delta(before, after)
    return {k: v for s in ("drops", "events") for k, v in d[s].items()
            if k.startswith("fw_") or k.startswith("nat_")}


def fw_state(t) -> str:
    """What the gateway's firewall thinks, for assertion messages."""
    out = []
    try:
        out.append("fw counters: " + str({k: v for k, v in fw_counters(t.dp.counters()).items()
                                          if v}))
        pl = t.dp.call("fw.policies.list")
        for p in pl["policies"]:
            rules = p["rules"]
            shown = rules if len(rules) <= 4 else rules[:2] + [f"... {len(rules) - 3} more"] \
                + rules[-1:]
            out.append(f"policy {p['from']}->{p['to']} default {p['default']} "
                       f"(default counters {p.get('default_counters')}): {json.dumps(shown)}")
        out.append(f"built-in: {json.dumps(pl['builtin'])}, tag {pl['tag']}")
        out.append("fw log: " + json.dumps(t.dp.call("fw.log.list", {"limit": 10})["lines"]))
    except Exception as e:  # the dataplane may be what broke
        out.append(f"gateway API (firewall): {e}")
    return "\n".join(out)


# -- fixtures --------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def firewall_tools():
    missing = [t for t in ("wireguard-go", "wg") if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup", pytrace=False)


@pytest.fixture
def ic(lab):
    return Interconnect(lab)


# -- tests -----------------------------------------------------------------------

def test_vdcs_behind_tunnels_are_isolated_without_a_policy(ic):
    t = ic.t
    before = t.dp.counters()
    iso0 = t.dp.call("fw.policies.list")["builtin"]["isolation"]

    got = ic.probe(ic.a.lan, [HTTPS_PUBLIC, HTTP_PUBLIC], "from-a")
    for port, r in got.items():
        assert not r["ok"], f"VDC A reached VDC B on {PUBLIC}:{port}: {r}\n{ic.state()}"
        assert r["error"] == "timed out", f"{port}: expected a silent drop: {r}"
    d = fw_delta(before, t.dp.counters())
    # Every SYN (and its retransmission) is a first packet between vdc-7 and vdc-8.
    assert d.get("fw_isolation", 0) >= 2, f"{d}\n{ic.state()}"
    assert d.get("fw_denied", 0) == 0, d
    assert d.get("nat_sessions_created", 0) == 0, f"isolated flows made sessions: {d}"
    assert not sessions(t, domain=A_DOMAIN), ic.state()
    iso1 = t.dp.call("fw.policies.list")["builtin"]["isolation"]
    assert iso1["packets"] - iso0["packets"] >= 2, (iso0, iso1)
    assert iso1["sessions"] == iso0["sessions"] == 0, (iso0, iso1)

    # The path itself works: a user on the uplink reaches both published ports.
    got = ic.probe(ic.user, [HTTPS_PUBLIC, HTTP_PUBLIC], "from-user", timeout=10)
    for port, inner in ((HTTPS_PUBLIC, HTTPS_INNER), (HTTP_PUBLIC, HTTP_INNER)):
        r = got[port]
        assert r["ok"], f"the user cannot reach {PUBLIC}:{port}: {r}\n{ic.state()}"
        assert r["reply"].startswith(f"vdc-b {inner} {NAT_GW}:"), r
        assert r["reply"].endswith("from-user"), r
    seen = [x for x in lines(ic.svc) if x.get("mode") == "hello"]
    assert sorted(x["port"] for x in seen) == [HTTP_INNER, HTTPS_INNER], seen
    assert all(x["data"] == "from-user" for x in seen), f"VDC A got through: {seen}"
    for s in sessions(t, protocol="tcp"):
        assert s["firewall"]["from"] == "uplink" and s["firewall"]["to"] == B_ZONE, s
        assert s["firewall"]["rule"] == "built-in accept", s


def test_interconnect_policy_opens_one_port(ic):
    t = ic.t
    apply(t, [policy_change("add")])
    before = t.dp.counters()

    # 443 (inner 8443) passes, 80 (inner 8080) does not: the policy's dport
    # is the port after DNAT.
    got = ic.probe(ic.a.lan, [HTTPS_PUBLIC, HTTP_PUBLIC], "from-a")
    ok, denied = got[HTTPS_PUBLIC], got[HTTP_PUBLIC]
    assert ok["ok"], f"VDC A cannot reach B through the interconnect: {ok}\n{ic.state()}"
    assert ok["reply"].startswith(f"vdc-b {HTTPS_INNER} {NAT_GW}:"), ok
    assert ok["local"].startswith(f"{WORKLOAD}:"), ok
    a_port = int(ok["local"].split(":")[1])
    assert not denied["ok"] and denied["error"] == "timed out", (
        f"VDC A reached B on {PUBLIC}:{HTTP_PUBLIC}, which the policy does not allow: "
        f"{denied}\n{ic.state()}")

    # Data both ways on the allowed port, intact.
    size = 2 * MB
    x = spawn(ic.lab, "exchange", ["exchange", "--to", PUBLIC, "--port", HTTPS_PUBLIC,
                                   "--up", size, "--down", size], ic.a.lan, ready=None)
    assert x.wait(60) is not None, f"the exchange did not finish: {x.tail()}\n{ic.state()}"
    assert x.returncode == 0, f"exchange exited with {x.returncode}: {x.tail()}\n{ic.state()}"
    client = lines(x)[-1]
    (server,) = ic.exchanged()
    assert client["recv_bytes"] == size and server["recv_bytes"] == size, (client, server)
    assert server["recv_sha"] == client["sent_sha"], "A -> B arrived changed"
    assert client["recv_sha"] == server["sent_sha"], "B -> A arrived changed"
    assert server["peer"].startswith(f"{NAT_GW}:"), server

    d = fw_delta(before, t.dp.counters())
    assert d.get("fw_denied", 0) >= 1, f"{d}\n{ic.state()}"
    assert d.get("fw_isolation", 0) == 0, f"the policy's pair still counts as isolated: {d}"
    assert d.get("nat_hairpinned", 0) == 2, d
    assert d.get("fw_logged", 0) >= 2, d

    p = ic.policy()
    assert p["default"] == "drop" and len(p["rules"]) == 1, p
    rule = p["rules"][0]
    assert rule["name"] == RULE_NAME and rule["dport"] == str(HTTPS_INNER), rule
    assert rule["counters"]["sessions"] == 2, rule
    assert rule["counters"]["packets"] > 0, rule
    assert rule["counters"]["bytes"] >= 2 * size, rule
    assert p["default_counters"]["packets"] >= 1 and p["default_counters"]["sessions"] == 0, p

    mine = [s for s in ic.sessions_from_a() if s["orig"]["sport"] == a_port]
    assert len(mine) == 1, f"{ic.sessions_from_a()}\n{ic.state()}"
    s = mine[0]
    assert s["orig"] == {"domain": A_DOMAIN, "protocol": "tcp", "src": WORKLOAD, "dst": PUBLIC,
                         "sport": a_port, "dport": HTTPS_PUBLIC}, s
    assert (s["reply"]["domain"], s["reply"]["src"], s["reply"]["sport"], s["reply"]["dst"]) \
        == (B_DOMAIN, WORKLOAD, HTTPS_INNER, NAT_GW), s
    fw = s["firewall"]
    assert fw["rule"] == RULE_NAME and fw["rule_id"] == rule["id"], s
    assert (fw["from"], fw["to"]) == (A_ZONE, B_ZONE), s
    assert fw["checked"] and not fw["revoked"], s
    assert not ic.sessions_from_a("b-http"), "a denied flow got a session"
    # The same session found by the rule that accepted it and by its zones.
    by_rule = t.dp.call("sessions.list", {"rule": RULE_NAME})["sessions"]
    # (The rule accepted two sessions: the probe's and this exchange's.)
    assert a_port in [x["orig"]["sport"] for x in by_rule] and len(by_rule) == 2, by_rule
    assert all(x["firewall"]["rule"] == RULE_NAME for x in by_rule), by_rule
    by_zone = t.dp.call("sessions.list", {"zone": A_ZONE})["sessions"]
    assert a_port in [x["orig"]["sport"] for x in by_zone], by_zone
    assert t.dp.call("sessions.list", {"rule": "no-such-rule"})["sessions"] == []

    def logged():
        return [x for x in t.dp.call("fw.log.list")["lines"]
                if f'rule "{RULE_NAME}"' in x and f"{WORKLOAD}:{a_port} " in x]
    (line,) = labkit.wait_until(logged, 5, f"a fw.log.list line of the flow from port {a_port}")
    assert " fw accept tcp " in line and f"{A_ZONE}->{B_ZONE}" in line, line
    labkit.wait_until(lambda: f'rule "{RULE_NAME}"' in t.dp.proc.output(), 5,
                      "the log line in the dataplane's log")


def test_removing_the_policy_cuts_new_and_established_flows(ic):
    t = ic.t
    apply(t, [policy_change("add")])
    stop = ic.lab.path("stream.stop")
    st = spawn(ic.lab, "stream", ["stream", "--to", PUBLIC, "--port", HTTPS_PUBLIC,
                                  "--interval", 0.05, "--duration", 40, "--stop-file", stop],
               ic.a.lan, ready='"connected"')

    def echoes():
        return [x for x in lines(st) if "echo" in x]
    labkit.wait_until(lambda: len(echoes()) >= 10, 15, f"10 echoes\n{ic.state()}")
    sport = int(lines(st)[0]["local"].split(":")[1])
    (s0,) = [s for s in ic.sessions_from_a() if s["orig"]["sport"] == sport]
    assert s0["firewall"]["rule"] == RULE_NAME and s0["tcp_state"] == "established", s0
    before = t.dp.counters()

    apply(t, [policy_change("del")])
    n_cut = len(echoes())
    # A new connection, at once: refused by isolation again (no session, no
    # wait for anything to time out).
    probe = ic.lab.spawn("probe-after-del", [PY, THIS, "probe", "--to", PUBLIC, "--ports",
                                             HTTPS_PUBLIC, "--timeout", NO_CONNECT, "--msg",
                                             "after-del"], ns=ic.a.lan)
    # Meanwhile the stream's session is revoked on its next packet, then ended
    # by the sweeper.
    seen_revoked = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mine = [s for s in ic.sessions_from_a() if s["orig"]["sport"] == sport]
        if mine and mine[0]["firewall"]["revoked"]:
            seen_revoked = mine[0]
        if not mine:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the revoked session was not ended in 5 s\n{ic.state()}")
    assert probe.wait(NO_CONNECT + 20) is not None, probe.tail()
    (r,) = lines(probe)
    assert not r["ok"] and r["error"] == "timed out", (
        f"a new connection right after the policy was deleted: {r}\n{ic.state()}")
    time.sleep(0.5)
    n_after = len(echoes())
    assert n_after - n_cut <= 2, (
        f"the established connection still passes: {n_after - n_cut} echoes after the "
        f"policy was deleted\n{ic.state()}")
    d = fw_delta(before, t.dp.counters())
    assert d.get("fw_sessions_revoked", 0) == 1, f"{d}\n{ic.state()}"
    assert d.get("fw_revoked", 0) >= 1, f"{d}\n{ic.state()}"
    assert d.get("fw_rechecked", 0) >= 1, d
    assert d.get("fw_isolation", 0) >= 1, f"the new SYN: {d}"
    if seen_revoked is not None:  # caught before the sweeper ended it
        assert seen_revoked["firewall"]["rule_id"] == s0["firewall"]["rule_id"], seen_revoked
        assert not seen_revoked["firewall"]["checked"], seen_revoked
    assert not t.dp.call("fw.policies.list")["policies"]

    stop.touch()
    assert st.wait(10) is not None, st.tail()
    summary = lines(st)[-1]
    assert summary["sent"] > summary["echoed"] + 10, summary

    # Back again: new connections pass at once.
    apply(t, [policy_change("add")])
    got = ic.probe(ic.a.lan, [HTTPS_PUBLIC, HTTP_PUBLIC], "after-readd")
    assert got[HTTPS_PUBLIC]["ok"], f"{got}\n{ic.state()}"
    assert got[HTTPS_PUBLIC]["reply"].startswith(f"vdc-b {HTTPS_INNER} {NAT_GW}:"), got
    assert not got[HTTP_PUBLIC]["ok"], got
    assert ic.policy()["rules"][0]["counters"]["sessions"] >= 1, ic.policy()


def test_rule_update_keeps_established_flows(ic):
    t = ic.t
    apply(t, [policy_change("add")])
    size = 20 * MB
    hold = ic.lab.path("xfer.hold")
    hold.touch()
    x = spawn(ic.lab, "exchange", ["exchange", "--to", PUBLIC, "--port", HTTPS_PUBLIC,
                                   "--up", size, "--down", 64 << 10, "--hold", hold,
                                   "--rate", 4 * MB], ic.a.lan, ready='"connected"')

    def sent():
        return max([e["sent"] for e in lines(x) if "sent" in e and "sent_sha" not in e] or [0])
    labkit.wait_until(lambda: sent() >= 2 * MB or not x.running(), 20,
                      f"2 MB sent\n{ic.state()}")
    assert x.running(), f"the transfer ended early: {x.tail()}"
    sport = int(lines(x)[0]["local"].split(":")[1])
    (s0,) = [s for s in ic.sessions_from_a() if s["orig"]["sport"] == sport]
    assert s0["firewall"]["rule"] == RULE_NAME, s0
    before = t.dp.counters()
    tag0 = t.dp.call("fw.policies.list")["tag"]

    # 2000 rules that do not match the flow, before the one that accepts it.
    extra = []
    for i in range(2000):
        r = {"name": f"unrelated-{i}", "action": "drop" if i % 2 else "accept"}
        if i % 3 == 0:
            r.update({"protocol": "tcp", "dport": str(20000 + i)})
        elif i % 3 == 1:
            r.update({"protocol": "udp", "dport": str(HTTPS_INNER)})
        else:
            r.update({"protocol": "tcp", "src": f"172.{16 + i // 256}.{i % 256}.0/24"})
        extra.append(r)
    t0 = time.monotonic()
    apply(t, [policy_change("update", rules=extra + [RULE])])
    took = time.monotonic() - t0
    at_update = sent()
    assert x.running(), f"the transfer ended during the update: {x.tail()}\n{ic.state()}"
    labkit.wait_until(lambda: sent() >= at_update + 2 * MB or not x.running(), 20,
                      f"2 MB more after the update\n{ic.state()}")
    assert x.running(), f"the transfer ended after the update: {x.tail()}\n{ic.state()}"
    hold.unlink()  # full speed to the end
    assert x.wait(60) is not None, f"the transfer did not finish: {x.tail()}\n{ic.state()}"
    assert x.returncode == 0, f"exchange exited with {x.returncode}: {x.tail()}\n{ic.state()}"
    client = lines(x)[-1]
    (server,) = ic.exchanged()
    assert server["recv_bytes"] == size, f"{server}\n{ic.state()}"
    assert server["recv_sha"] == client["sent_sha"], "the transfer arrived changed"
    assert client["recv_sha"] == server["sent_sha"], "the answer arrived changed"
    print(f"update of {len(extra) + 1} rules applied in {took:.2f} s, {at_update} bytes in")

    d = fw_delta(before, t.dp.counters())
    assert d.get("fw_rechecked", 0) >= 1, f"{d}\n{ic.state()}"
    for k in ("fw_revoked", "fw_sessions_revoked", "fw_tcp_out_of_window", "fw_tcp_invalid"):
        assert d.get(k, 0) == 0, f"{k}: {d}\n{ic.state()}"
    p = ic.policy()
    assert len(p["rules"]) == 2001 and p["rules"][-1]["name"] == RULE_NAME, len(p["rules"])
    assert p["changed_tag"] > tag0, (p["changed_tag"], tag0)
    rule = p["rules"][-1]
    # The same rule (same name): its counters and its id survived the update.
    assert rule["id"] == s0["firewall"]["rule_id"], (rule["id"], s0)
    assert rule["counters"]["sessions"] == 1, rule
    assert rule["counters"]["bytes"] >= size, rule
    assert all(r["counters"]["packets"] == 0 for r in p["rules"][:-1]), "an unrelated rule matched"
    (s1,) = [s for s in ic.sessions_from_a() if s["orig"]["sport"] == sport]
    assert s1["firewall"]["rule"] == RULE_NAME and s1["firewall"]["checked"], s1
    assert not s1["firewall"]["revoked"], s1
