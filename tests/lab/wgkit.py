"""wgkit: real WireGuard peers (wireguard-go + wg) around tether-dataplane.

Library (imported by the lab tests):
  - keys: `genkey()` / `genpsk()` through `wg genkey|pubkey|genpsk`;
  - `WgGo`: a wireguard-go interface in a namespace (`wireguard-go -f IF`,
    spawned by the Lab so that teardown stops it), configured with `wg set`
    and read back with `wg show IF dump`;
  - `WgTopology`: the gateway namespace running tether-dataplane with an
    `uplink` port on a bridged underlay segment (namespace `wan`) shared by
    one or more WireGuard sites, and LAN ports each with one host behind;
  - the wire formats the tests forge: MAC1/MAC2 of handshake messages,
    XChaCha20-Poly1305 to open cookie replies (RFC draft HChaCha20 +
    cryptography's ChaCha20Poly1305), data message headers.

Command line (run INSIDE a namespace: `ip netns exec NS /usr/bin/python3
wgkit.py ...`; each prints JSON lines, like nettool.py):
  capture --iface IF --src IP --dport P [--type 4] --count N --timeout S --out PCAP
      prints {"listening": true} once the socket is open, then saves up to N
      WireGuard messages of that type sent from IP to UDP port P (scapy) and
      prints {"captured": n, "counters": [...], "receiver_index": i}.
  replay --iface IF --pcap PCAP [--forge N --counter-advance K --flip OFFSET]
      re-sends the captured frames as they are (checksums recomputed), or N
      forged copies of the first one: counter = highest captured + K + i, one
      byte of the encrypted part (OFFSET bytes past the 16-byte header)
      flipped; prints {"sent": n, "counters": [...]}.
  flood --to IP --port P --public-key B64 --count N [--rate R] [--linger S]
        [--mac2-probes K]
      sends N handshake initiations with a valid MAC1 for that public key and
      random everything else (R per second, 0 = as fast as possible), counts
      the replies; decrypts every cookie reply (proving its key and AAD) and,
      for the first K cookies, sends a probe initiation carrying a valid MAC2
      made with that cookie; prints {"sent", "cookie_replies", "cookies_valid",
      "probes_sent", "probe_cookie_replies", "other_replies", ...}.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

PY = "/usr/bin/python3"
WGKIT = HERE / "wgkit.py"
# wireguard-go's control sockets: one directory for every namespace.
UAPI_DIR = Path("/var/run/wireguard")
WG_PORT = 51820

MSG_INITIATION, MSG_RESPONSE, MSG_COOKIE_REPLY, MSG_DATA = 1, 2, 3, 4
INITIATION_LEN, RESPONSE_LEN, COOKIE_REPLY_LEN, DATA_HEADER_LEN = 148, 92, 64, 16
LABEL_MAC1, LABEL_COOKIE = b"mac1----", b"cookie--"


# -- keys --------------------------------------------------------------------

@dataclass(frozen=True)
class Keypair:
    private: str  # base64, as `wg genkey` prints it
    public: str   # base64, as `wg pubkey` prints it


def _wg(*args, input=None) -> str:
    """`wg ARGS` (key commands need no namespace); returns its stripped stdout."""
    p = subprocess.run(["wg", *map(str, args)], capture_output=True, text=True, input=input,
                       timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: wg {' '.join(map(str, args))}: {p.stderr}")
    return p.stdout.strip()


def pubkey(private: str) -> str:
    return _wg("pubkey", input=private + "\n")


def genkey() -> Keypair:
    private = _wg("genkey")
    return Keypair(private, pubkey(private))


def genpsk() -> str:
    return _wg("genpsk")


def key_bytes(b64: str) -> bytes:
    raw = base64.b64decode(b64)
    if len(raw) != 32:
        raise ValueError(f"{b64!r} is not a 32-byte WireGuard key")
    return raw


# -- wire formats --------------------------------------------------------------

def blake2s_hash(*parts: bytes) -> bytes:
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def mac(key: bytes, data: bytes) -> bytes:
    """WireGuard's MAC: keyed BLAKE2s with a 16-byte digest."""
    return hashlib.blake2s(data, key=key, digest_size=16).digest()


def mac1_key(public_key_b64: str) -> bytes:
    return blake2s_hash(LABEL_MAC1, key_bytes(public_key_b64))


def cookie_key(public_key_b64: str) -> bytes:
    return blake2s_hash(LABEL_COOKIE, key_bytes(public_key_b64))


def forged_initiation(mac1k: bytes, sender_index: int, cookie: bytes | None = None) -> bytes:
    """A type-1 message with random ephemeral/static/timestamp, a valid MAC1
    for the responder whose mac1 key is `mac1k`, and MAC2 made with `cookie`
    (zeros without one)."""
    body = struct.pack("<B3xI", MSG_INITIATION, sender_index) + os.urandom(32 + 48 + 28)
    m1 = mac(mac1k, body)                      # over the first 116 bytes
    m2 = mac(cookie, body + m1) if cookie else bytes(16)  # over the first 132
    return body + m1 + m2


def _rotl32(v: int, c: int) -> int:
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    x = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574,
         *struct.unpack("<8I", key), *struct.unpack("<4I", nonce16)]

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & 0xFFFFFFFF; x[d] = _rotl32(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & 0xFFFFFFFF; x[b] = _rotl32(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & 0xFFFFFFFF; x[d] = _rotl32(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & 0xFFFFFFFF; x[b] = _rotl32(x[b] ^ x[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *x[0:4], *x[12:16])


def xchacha20poly1305_open(key: bytes, nonce24: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Raises cryptography.exceptions.InvalidTag if it does not authenticate."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).decrypt(bytes(4) + nonce24[16:], sealed, aad)


def open_cookie_reply(msg: bytes, ck: bytes, mac1_sent: bytes) -> bytes:
    """The 16-byte cookie of a type-3 message answering a message whose MAC1 was
    `mac1_sent` (the AAD)."""
    if len(msg) != COOKIE_REPLY_LEN or msg[0] != MSG_COOKIE_REPLY:
        raise ValueError("not a cookie reply")
    return xchacha20poly1305_open(ck, msg[8:32], msg[32:64], mac1_sent)


def data_header(payload: bytes):
    """(receiver index, counter) of a type-4 message."""
    _type, receiver, counter = struct.unpack("<B3xIQ", payload[:DATA_HEADER_LEN])
    return receiver, counter


# -- wireguard-go ----------------------------------------------------------------

def _peer_dump(fields: list[str]) -> dict:
    public, psk, endpoint, allowed, latest, rx, tx, keepalive = fields[:8]
    return {
        "public_key": public,
        "preshared_key": None if psk == "(none)" else psk,
        "endpoint": None if endpoint == "(none)" else endpoint,
        "allowed": [] if allowed == "(none)" else allowed.split(","),
        "latest_handshake": int(latest),  # unix seconds, 0 = never
        "rx_bytes": int(rx),
        "tx_bytes": int(tx),
        "persistent_keepalive": 0 if keepalive == "off" else int(keepalive),
    }


class WgGo:
    """A wireguard-go interface inside namespace `ns`, configured with `wg`.

    The control socket is /var/run/wireguard/IFNAME.sock (shared by every
    namespace, hence the lab-unique interface name). Stopped with SIGTERM on
    lab teardown (wireguard-go then removes its interface and socket).
    """

    def __init__(self, lab, ns, name: str, keys: Keypair | None = None,
                 listen_port: int = WG_PORT, address: str | None = None, mtu: int = 1420,
                 suffix: str = "w0", log_level: str = "debug"):
        self.lab, self.ns, self.name = lab, ns, name
        self.keys = keys or genkey()
        self.listen_port = listen_port
        self.address = address  # "192.168.50.2/24"
        self.mtu = mtu
        self.ifname = lab.ifname(suffix)
        self.log_level = log_level
        self.proc = None
        self.key_file = lab.path(f"{name}.key")

    @property
    def public_key(self) -> str:
        return self.keys.public

    @property
    def socket_path(self) -> Path:
        return UAPI_DIR / f"{self.ifname}.sock"

    def start(self, timeout: float = 20):
        from labkit import wait_until
        env = dict(os.environ, LOG_LEVEL=self.log_level, WG_PROCESS_FOREGROUND="1")
        self.proc = self.lab.spawn(f"wireguard-go-{self.name}",
                                   ["wireguard-go", "-f", self.ifname], ns=self.ns, env=env)
        self.lab.on_close(f"wireguard-go {self.name}", self._teardown)

        def up():
            if not self.proc.running():
                raise RuntimeError(f"wireguard-go {self.name} exited with "
                                   f"{self.proc.returncode}:\n{self.proc.tail()}")
            return self.socket_path.exists() and self.ns.ip(
                "link", "show", self.ifname, check=False).returncode == 0

        wait_until(up, timeout, f"wireguard-go {self.ifname} in {self.ns.name}")
        self.key_file.write_text(self.keys.private + "\n")
        os.chmod(self.key_file, 0o600)
        self.wg("set", self.ifname, "private-key", self.key_file,
                "listen-port", self.listen_port)
        self.ns.ip("link", "set", self.ifname, "mtu", self.mtu)
        if self.address:
            self.ns.ip("addr", "add", self.address, "dev", self.ifname)
        self.ns.ip("link", "set", self.ifname, "up")
        return self

    def wg(self, *args):
        return self.ns.run("wg", *args)

    def set_peer(self, public_key: str, endpoint: str | None = None, allowed=(),
                 keepalive: int | None = None, psk: str | None = None):
        args = ["set", self.ifname, "peer", public_key]
        if endpoint:
            args += ["endpoint", endpoint]
        if allowed:
            args += ["allowed-ips", ",".join(allowed)]
        if keepalive is not None:
            args += ["persistent-keepalive", keepalive or "off"]
        if psk:
            psk_file = self.lab.path(f"{self.name}-{public_key[:8].replace('/', '_')}.psk")
            psk_file.write_text(psk + "\n")
            args += ["preshared-key", psk_file]
        self.wg(*args)

    def remove_peer(self, public_key: str):
        self.wg("set", self.ifname, "peer", public_key, "remove")

    def route(self, prefix: str):
        self.ns.ip("route", "replace", prefix, "dev", self.ifname)

    def dump(self) -> dict:
        """`wg show IF dump`: {"listen_port": p, "peers": {public key: {...}}}."""
        lines = self.wg("show", self.ifname, "dump").stdout.strip().splitlines()
        iface = lines[0].split("\t")
        peers = {}
        for line in lines[1:]:
            p = _peer_dump(line.split("\t"))
            peers[p["public_key"]] = p
        return {"public_key": iface[1], "listen_port": int(iface[2]), "peers": peers}

    def peer(self, public_key: str) -> dict:
        return self.dump()["peers"][public_key]

    def latest_handshake(self, public_key: str) -> int:
        return self.peer(public_key)["latest_handshake"]

    def log(self) -> str:
        return self.proc.output() if self.proc else ""

    def stop(self):
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, timeout=10)

    def _teardown(self):
        self.stop()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass


# -- the topology around the gateway -------------------------------------------

@dataclass
class SiteSpec:
    """A WireGuard site on the uplink segment: wireguard-go whose one peer is the gateway."""
    role: str = "site"
    underlay: str = "10.1.0.2/24"      # the site's eth0 on the uplink segment
    tunnel: str = "192.168.50.2/24"    # the site's wireguard-go interface address
    listen_port: int = WG_PORT
    via_gateway: tuple = ("10.2.0.0/24",)   # the site's AllowedIPs for the gateway, routed into wg
    allowed: tuple = ("192.168.50.0/24",)   # the gateway's allowed prefixes for this site
    domain: int = 0
    endpoint_known: bool = True        # the gateway's wg_peer carries the site's endpoint
    keepalive: int = 0                 # the site's persistent keepalive toward the gateway


@dataclass
class LanSpec:
    """A host behind a gateway data port of its own."""
    role: str = "h2"
    address: str = "10.2.0.2/24"
    gateway: str = "10.2.0.1"
    port: str = "lan"
    domain: int = 0


class Site:
    def __init__(self, spec: SiteSpec, ns, wg: WgGo):
        self.spec, self.ns, self.wg = spec, ns, wg
        self.underlay_ip = spec.underlay.split("/")[0]
        self.tunnel_ip = spec.tunnel.split("/")[0]

    @property
    def public_key(self) -> str:
        return self.wg.public_key

    @property
    def endpoint(self) -> str:
        return f"{self.underlay_ip}:{self.spec.listen_port}"

    def move_underlay(self, new: str, rebind: bool = True):
        """Roams: adds `new` ("10.1.0.3/24") to eth0, then deletes the old address.

        wireguard-go's socket is bound to the wildcard, but it remembers the
        local address each peer last reached it on (a "sticky" source, sent with
        IP_PKTINFO): once that address is gone its sends fail with ENETUNREACH
        until a handshake retry clears it, 15 s later (KEEPALIVE_TIMEOUT +
        REKEY_TIMEOUT). `rebind` re-sets the same listen port, which rebinds the
        socket and clears every sticky source at once, like a roaming client
        that notices its network changed."""
        old = f"{self.underlay_ip}/{self.spec.underlay.split('/')[1]}"
        # Deleting a primary address would take the secondaries of its subnet along.
        self.ns.sysctl("net.ipv4.conf.eth0.promote_secondaries", 1)
        self.ns.ip("addr", "add", new, "dev", "eth0")
        self.ns.ip("addr", "del", old, "dev", "eth0")
        self.underlay_ip = new.split("/")[0]
        if rebind:
            self.wg.wg("set", self.wg.ifname, "listen-port", self.spec.listen_port)

    def __repr__(self):
        return f"Site({self.ns.name}, {self.spec.underlay}, wg {self.spec.tunnel})"


class WireGuardUnsupported(AssertionError):
    """tether-dataplane refused the WireGuard configuration."""


class WgTopology:
    """tether-dataplane with WireGuard between sites and LAN hosts.

        site  eth0 10.1.0.2/24 ─┐
        (more sites, flooders) ─┤ wan: bridge ── uplink 10.1.0.1/24 ┐
                                                                    gw: tether-dataplane,
                                                                    wg0 on 10.1.0.1:51820
        h2  eth0 10.2.0.2/24 ─────────────────── lan 10.2.0.1/24 ───┘

    Builds the namespaces and links at construction; `start()` starts the
    dataplane, adds the wg_interface and one wg_peer per site through
    config.apply, and starts and configures each site's wireguard-go.
    """

    UPLINK = "uplink"

    def __init__(self, lab, sites=(SiteSpec(),), lans=(LanSpec(),),
                 uplink: str = "10.1.0.1/24", wg_name: str = "wg0", wg_port: int = WG_PORT,
                 wg_mtu: int | None = None, extra: dict | None = None):
        import appliance
        import labkit
        self.lab = lab
        self.uplink = uplink
        self.wg_address = uplink.split("/")[0]
        self.wg_name, self.wg_port, self.wg_mtu = wg_name, wg_port, wg_mtu
        self.keys = genkey()  # the gateway's wg_interface
        self.gw = lab.netns("gw")
        self.wan = lab.netns("wan")
        self.wan.ip("link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
        self.wan.ip("link", "set", "br0", "up")
        self.uplink_iface = lab.ifname("gu")
        self._bridge_ports = 0
        self._attach(self.gw, self.uplink_iface)
        self.sites: dict[str, Site] = {}
        for i, spec in enumerate(sites):
            ns = self.add_uplink_host(spec.role, spec.underlay)
            wg = WgGo(lab, ns, spec.role, listen_port=spec.listen_port, address=spec.tunnel,
                      suffix=f"w{i}")
            self.sites[spec.role] = Site(spec, ns, wg)
        self.hosts: dict[str, labkit.Host] = {}
        ports = [{"name": self.UPLINK, "iface": self.uplink_iface, "addresses": [uplink]}]
        for i, spec in enumerate(lans):
            ns = lab.netns(spec.role)
            gw_iface = lab.ifname(f"g{i}")
            lab.veth(self.gw, gw_iface, ns, "eth0")
            ns.ip("addr", "add", spec.address, "dev", "eth0")
            ns.ip("route", "add", "default", "via", spec.gateway)
            ns.run("ethtool", "-K", "eth0", "tx", "off")
            self.hosts[spec.role] = labkit.Host(ns, spec.address, spec.gateway, gw_iface)
            plen = spec.address.split("/")[1]
            ports.append({"name": spec.port, "iface": gw_iface,
                          "addresses": [f"{spec.gateway}/{plen}"], "domain": spec.domain})
        self.dp = appliance.Dataplane(lab, self.gw, ports=ports, extra=extra)

    # -- building ------------------------------------------------------------
    def _attach(self, ns, name: str, ns_side_name: str | None = None):
        """A veth from `ns` (named `ns_side_name` or `name`) into the wan bridge."""
        bridge_port = self.lab.ifname(f"b{self._bridge_ports:x}")
        self._bridge_ports += 1
        self.lab.veth(ns, ns_side_name or name, self.wan, bridge_port)
        self.wan.ip("link", "set", bridge_port, "master", "br0")
        return bridge_port

    def add_uplink_host(self, role: str, address: str):
        """A namespace with eth0 on the uplink segment (e.g. a flooder); returns it."""
        ns = self.lab.netns(role)
        self._attach(ns, "eth0")
        ns.ip("addr", "add", address, "dev", "eth0")
        ns.run("ethtool", "-K", "eth0", "tx", "off")
        return ns

    # -- the gateway's WireGuard configuration -----------------------------------
    def interface_change(self, op="add") -> dict:
        c = {"kind": "wg_interface", "op": op, "name": self.wg_name}
        if op != "del":
            c.update({"private_key": self.keys.private, "listen_port": self.wg_port,
                      "address": self.wg_address})
            if self.wg_mtu:
                c["mtu"] = self.wg_mtu
        return c

    def peer_change(self, site: Site | str, op="add", **override) -> dict:
        site = self.site(site)
        c = {"kind": "wg_peer", "op": op, "interface": self.wg_name,
             "public_key": site.public_key}
        if op != "del":
            c.update({"allowed": list(site.spec.allowed), "domain": site.spec.domain})
            if site.spec.endpoint_known:
                c["endpoint"] = site.endpoint
        c.update(override)
        return c

    def apply(self, changes: list[dict]) -> int:
        with self.dp.api() as api:
            return api.call("config.apply", {"origin": "api", "changes": changes})["generation"]

    def start(self):
        """Starts everything; raises WireGuardUnsupported (a clear message) when the
        dataplane refuses WireGuard's config sections or changes."""
        from tether_api import ApiError
        try:
            self.dp.start()
        except RuntimeError as e:
            if any(k in self.dp.config for k in ("wireguard", "testing")) and \
                    "unknown top-level key" in str(e):
                raise WireGuardUnsupported(
                    "tether-dataplane does not accept the WireGuard boot config sections "
                    f"{[k for k in ('wireguard', 'testing') if k in self.dp.config]}: {e}"
                ) from None
            raise
        try:
            self.apply([self.interface_change()] +
                       [self.peer_change(s) for s in self.sites.values()])
        except ApiError as e:
            raise WireGuardUnsupported(
                f"tether-dataplane refused the WireGuard configuration (config.apply of "
                f"wg_interface {self.wg_name} and {len(self.sites)} wg_peer): {e}") from None
        for site in self.sites.values():
            self.start_site(site)
        return self

    def start_site(self, site: Site):
        wg = site.wg
        wg.start()
        wg.set_peer(self.keys.public, endpoint=f"{self.wg_address}:{self.wg_port}",
                    allowed=site.spec.via_gateway,
                    keepalive=site.spec.keepalive or None)
        for prefix in site.spec.via_gateway:
            wg.route(prefix)

    # -- reading the gateway -----------------------------------------------------
    def site(self, site: Site | str) -> Site:
        return self.sites[site] if isinstance(site, str) else site

    def host(self, role: str):
        return self.hosts[role]

    def gw_peers(self) -> list[dict]:
        return self.dp.call("wg.peers.list", {"interface": self.wg_name})["peers"]

    def gw_peer(self, site: Site | str) -> dict | None:
        key = self.site(site).public_key
        for p in self.gw_peers():
            if p["public_key"] == key:
                return p
        return None

    def wg_counters(self) -> dict:
        """{"drops": {wg_*: n}, "events": {wg_*: n}} of counters.get."""
        c = self.dp.counters()
        return {s: {k: v for k, v in c.get(s, {}).items() if k.startswith("wg_")}
                for s in ("drops", "events")}


# -- traffic tools run inside namespaces -------------------------------------------

class Capture:
    """`wgkit.py capture` running in a namespace (see the module doc)."""

    def __init__(self, lab, ns, iface: str, src: str, dport: int, count: int,
                 msg_type: int = MSG_DATA, timeout: float = 30, name: str = "capture"):
        from labkit import wait_until
        self.pcap = lab.path(f"{name}.pcap")
        self.proc = lab.spawn(name, [PY, WGKIT, "capture", "--iface", iface, "--src", src,
                                     "--dport", dport, "--type", msg_type, "--count", count,
                                     "--timeout", timeout, "--out", self.pcap], ns=ns)
        self.timeout = timeout
        wait_until(lambda: '"listening"' in self.proc.output() or not self.proc.running(),
                   30, f"{name} to listen")
        if not self.proc.running() and '"listening"' not in self.proc.output():
            raise RuntimeError(f"{name} exited: {self.proc.tail()}")

    def finish(self) -> dict:
        if self.proc.wait(self.timeout + 30) is None:
            self.proc.stop(signal.SIGKILL, 5)
            raise AssertionError(f"capture did not finish: {self.proc.tail()}")
        return json_lines(self.proc.output())[-1]


def replay(ns, iface: str, pcap, forge: int = 0, counter_advance: int = 1 << 20,
           flip: int = 5) -> dict:
    args = [PY, WGKIT, "replay", "--iface", iface, "--pcap", pcap]
    if forge:
        args += ["--forge", forge, "--counter-advance", counter_advance, "--flip", flip]
    return json_lines(ns.run(*args, timeout=60).stdout)[-1]


def flood(lab, ns, to: str, public_key: str, count: int, rate: float, port: int = WG_PORT,
          linger: float = 2.0, mac2_probes: int = 0, name: str = "flood"):
    """Starts `wgkit.py flood` in `ns`; returns its Proc (json_lines(proc.output()))."""
    return lab.spawn(name, [PY, WGKIT, "flood", "--to", to, "--port", port,
                            "--public-key", public_key, "--count", count, "--rate", rate,
                            "--linger", linger, "--mac2-probes", mac2_probes], ns=ns)


def json_lines(text: str) -> list[dict]:
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


# -- command line (inside a namespace) ----------------------------------------------

def _scapy():
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy.all as scapy
    scapy.conf.verb = 0
    return scapy


def cmd_capture(a):
    sc = _scapy()

    def wanted(pkt):
        if not (pkt.haslayer(sc.IP) and pkt.haslayer(sc.UDP)):
            return False
        if pkt[sc.IP].src != a.src or pkt[sc.UDP].dport != a.dport:
            return False
        payload = bytes(pkt[sc.UDP].payload)
        return len(payload) >= 4 and payload[0] == a.type

    got = sc.sniff(iface=a.iface, lfilter=wanted, count=a.count, timeout=a.timeout,
                   started_callback=lambda: print(json.dumps({"listening": True}), flush=True))
    sc.wrpcap(a.out, got)
    out = {"captured": len(got)}
    if a.type == MSG_DATA and got:
        hdrs = [data_header(bytes(p[sc.UDP].payload)) for p in got]
        out["receiver_index"] = hdrs[0][0]
        out["receiver_indexes"] = sorted({h[0] for h in hdrs})
        out["counters"] = [h[1] for h in hdrs]
        out["lengths"] = [len(bytes(p[sc.UDP].payload)) for p in got]
    print(json.dumps(out), flush=True)


def cmd_replay(a):
    sc = _scapy()
    frames = list(sc.rdpcap(a.pcap))
    if not frames:
        raise SystemExit("nothing captured to replay")
    out = []
    if a.forge:
        top = max(data_header(bytes(p[sc.UDP].payload))[1] for p in frames)
        for i in range(a.forge):
            p = frames[0].copy()
            payload = bytearray(bytes(p[sc.UDP].payload))
            struct.pack_into("<Q", payload, 8, top + a.counter_advance + i)
            payload[DATA_HEADER_LEN + a.flip] ^= 0x01
            p[sc.UDP].remove_payload()
            p[sc.UDP].add_payload(sc.Raw(bytes(payload)))
            out.append(p)
    else:
        out = [p.copy() for p in frames]
    counters = []
    for p in out:
        del p[sc.IP].chksum
        del p[sc.IP].len
        del p[sc.UDP].chksum
        del p[sc.UDP].len
        counters.append(data_header(bytes(p[sc.UDP].payload))[1])
    sc.sendp(out, iface=a.iface, inter=a.gap)
    print(json.dumps({"sent": len(out), "counters": counters}), flush=True)


def cmd_flood(a):
    from cryptography.exceptions import InvalidTag
    mk, ck = mac1_key(a.public_key), cookie_key(a.public_key)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", a.bind_port))
    s.connect((a.to, a.port))
    s.setblocking(False)
    sent_mac1 = {}       # sender index -> MAC1 sent (the AAD of its cookie reply)
    probes = set()       # sender indexes of the MAC2-carrying probes
    st = {"sent": 0, "send_errors": 0, "cookie_replies": 0, "cookies_valid": 0,
          "cookies_invalid": 0, "unknown_index": 0, "other_replies": 0, "probes_sent": 0,
          "probe_cookie_replies": 0, "first_cookie_after": None}
    t0 = time.monotonic()

    def send(cookie=None):
        idx = int.from_bytes(os.urandom(4), "little")
        msg = forged_initiation(mk, idx, cookie)
        try:
            s.send(msg)
        except (BlockingIOError, OSError):
            st["send_errors"] += 1
            return None
        sent_mac1[idx] = msg[116:132]
        return idx

    def drain():
        while True:
            try:
                msg = s.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:  # ICMP port unreachable
                st["other_replies"] += 1
                continue
            if len(msg) != COOKIE_REPLY_LEN or msg[0] != MSG_COOKIE_REPLY:
                st["other_replies"] += 1
                continue
            st["cookie_replies"] += 1
            if st["first_cookie_after"] is None:
                st["first_cookie_after"] = round(time.monotonic() - t0, 3)
            (idx,) = struct.unpack_from("<I", msg, 4)
            if idx not in sent_mac1:
                st["unknown_index"] += 1
                continue
            if idx in probes:
                st["probe_cookie_replies"] += 1
            try:
                cookie = open_cookie_reply(msg, ck, sent_mac1[idx])
            except InvalidTag:
                st["cookies_invalid"] += 1
                continue
            st["cookies_valid"] += 1
            if st["probes_sent"] < a.mac2_probes:
                p = send(cookie)
                if p is not None:
                    probes.add(p)
                    st["probes_sent"] += 1

    for i in range(a.count):
        if a.rate > 0:
            delay = t0 + i / a.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if send() is not None:
            st["sent"] += 1
        if i % 16 == 0:
            drain()
        if a.progress and i % max(1, int(a.rate or 1000)) == 0:
            print(json.dumps({"progress": i, **st}), flush=True)
    st["send_done_after"] = round(time.monotonic() - t0, 3)
    end = time.monotonic() + a.linger
    while time.monotonic() < end:
        drain()
        time.sleep(0.01)
    drain()
    st["elapsed"] = round(time.monotonic() - t0, 3)
    print(json.dumps(st), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--iface", required=True)
    c.add_argument("--src", required=True)
    c.add_argument("--dport", type=int, default=WG_PORT)
    c.add_argument("--type", type=int, default=MSG_DATA)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--timeout", type=float, default=30)
    c.add_argument("--out", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--iface", required=True)
    r.add_argument("--pcap", required=True)
    r.add_argument("--forge", type=int, default=0)
    r.add_argument("--counter-advance", type=int, default=1 << 20)
    r.add_argument("--flip", type=int, default=5)
    r.add_argument("--gap", type=float, default=0.002)
    f = sub.add_parser("flood")
    f.add_argument("--to", required=True)
    f.add_argument("--port", type=int, default=WG_PORT)
    f.add_argument("--bind-port", type=int, default=0)
    f.add_argument("--public-key", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--rate", type=float, default=0)
    f.add_argument("--linger", type=float, default=2.0)
    f.add_argument("--mac2-probes", type=int, default=0)
    f.add_argument("--progress", action="store_true")
    a = p.parse_args()
    {"capture": cmd_capture, "replay": cmd_replay, "flood": cmd_flood}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
