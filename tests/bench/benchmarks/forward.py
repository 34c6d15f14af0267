"""forward: Mpps of the full IPv4 pipeline on one worker lcore (parse,
validate, route, TTL, checksum, neighbor rewrite) beside dpdk-testpmd
io-forward on the same device and the same packets.

One port, hairpinned: every route points back out of the port it came in on.
The device is net_pcap replaying a file of 64-byte frames forever
(infinite_rx=1) and dropping what is sent (no tx_pcap). Both sides pay the
device's per-packet copy; README.md says how big it is.

Destinations: ROUTES /24 routes, three quarters via one of GATEWAYS gateways
(neighbor slot resolved when the generation is built), one quarter on-link
(next hop = destination, looked up in the neighbor hash per burst), each with
a static neighbor; DESTS_PER_ROUTE hosts in each, interleaved in the file so
consecutive packets hit different routes."""
import ipaddress

from benchlib.dataplane import Dataplane
from benchlib.measure import Samples, per_round, ratio, sample_rates
from benchlib.packets import ipv4_udp, write_pcap
from benchlib.testpmd import Testpmd

NAME = "forward"

PORT_MAC = "02:00:00:00:00:01"
PEER_MAC = "02:00:00:00:00:02"  # the frames' source
PORT_ADDR = "10.0.0.1/16"
SRC_IP = "10.0.0.2"
ROUTES = 256
ONLINK_ROUTES = 64
GATEWAYS = 16
DESTS_PER_ROUTE = 8
PKT_SIZE = 64  # frame bytes without FCS


def topology():
    """(routes, neighbors, destinations) of the benchmark's routing table."""
    gateways = [f"10.0.255.{i + 1}" for i in range(GATEWAYS)]
    neighbors = [{"port": "bench", "ip": gw, "mac": f"02:00:00:01:00:{i + 1:02x}"}
                 for i, gw in enumerate(gateways)]
    routes, prefixes = [], []
    for r in range(ROUTES):
        if r < ROUTES - ONLINK_ROUTES:
            net = ipaddress.IPv4Network(f"198.18.{r}.0/24")
            routes.append({"prefix": str(net), "via": gateways[r % GATEWAYS]})
        else:
            net = ipaddress.IPv4Network(f"198.19.{r - (ROUTES - ONLINK_ROUTES)}.0/24")
            routes.append({"prefix": str(net), "port": "bench"})
        prefixes.append((net, "via" not in routes[-1]))
    dests = []
    for h in range(DESTS_PER_ROUTE):  # interleaved: route changes every packet
        for r, (net, onlink) in enumerate(prefixes):
            ip = str(net.network_address + 1 + h)
            dests.append(ip)
            if onlink:
                neighbors.append({"port": "bench", "ip": ip,
                                  "mac": f"02:00:00:02:{r:02x}:{h + 1:02x}"})
    return routes, neighbors, dests


def measure_ref(ctx, device, n):
    """testpmd io-forward, one forwarding lcore, on the same device and file."""
    with Testpmd(["-l", f"{ctx.service_lcore},{ctx.worker_lcore}", "--main-lcore",
                  str(ctx.service_lcore), *ctx.eal_args, "--vdev", device],
                 ["--forward-mode=io", "--port-topology=loop", "--nb-cores=1"]) as tp:
        return sample_rates(lambda: tp.port_stats(0)["tx_packets"], ctx.warmup, n, ctx.seconds,
                            tp.proc.pid, ctx.worker_lcore)


def measure_ours(ctx, config, n):
    """tether-dataplane; returns the samples and what looked wrong."""
    with Dataplane(ctx.bin("tether-dataplane"), config, ctx.workdir, "forward") as dp:
        def port_tx():
            return next(p for p in dp.counters()["ports"] if p["name"] == "bench")["tx_packets"]
        samples = sample_rates(port_tx, ctx.warmup, n, ctx.seconds, dp.proc.pid,
                               ctx.worker_lcore)
        end = dp.counters()
    warnings = []
    if dp.exit_code != 0:
        warnings.append(f"tether-dataplane exited {dp.exit_code}")
    drops = {k: v for k, v in end["drops"].items() if v}
    if drops:
        warnings.append(f"drops {drops}")
    punted = {k: v for k, v in end["events"].items() if v and k.startswith("punted")}
    if punted:
        warnings.append(f"punted {punted}")
    worker = [lc for lc in end["lcores"] if lc["role"] == "worker"]
    if [lc["lcore"] for lc in worker] != [ctx.worker_lcore]:
        warnings.append(f"workers {[lc['lcore'] for lc in worker]}")
    elif worker[0]["rx_packets"] - worker[0]["tx_packets"] > 64:  # one burst may be in flight
        warnings.append(f"worker rx {worker[0]['rx_packets']} != tx {worker[0]['tx_packets']}")
    return samples, warnings


def run(ctx):
    routes, neighbors, dests = topology()
    pcap = f"{ctx.workdir}/forward.pcap"
    write_pcap(pcap, [ipv4_udp(PORT_MAC, PEER_MAC, SRC_IP, d, PKT_SIZE) for d in dests])
    device = f"net_pcap0,rx_pcap={pcap},infinite_rx=1"
    config = {
        "eal_args": ctx.eal_args,
        "lcores": {"service": ctx.service_lcore, "workers": [ctx.worker_lcore]},
        "ports": [{"name": "bench", "device": device, "mac": PORT_MAC,
                   "addresses": [PORT_ADDR]}],
        "routes": routes,
        "neighbors": neighbors,
    }
    # Alternate the two sides in rounds so that both see the same machine.
    ref, ours, warnings = Samples(), Samples(), []
    for n in per_round(ctx.samples, ctx.rounds):
        ref.extend(measure_ref(ctx, device, n))
        s, w = measure_ours(ctx, config, n)
        ours.extend(s)
        warnings += [x for x in w if x not in warnings]

    if min(ours.cpu_share() or 1, ref.cpu_share() or 1) < 0.9:
        warnings.append("the forwarding lcore shared its CPU with other processes "
                        "(see cpu_share); compare ratio_cpu")
    value, ref_value = ours.mpps(), ref.mpps()
    figure = {
        "bench": NAME, "value": value, "unit": "Mpps",
        "ref": "io-forward", "ref_value": ref_value, "ratio": ratio(value, ref_value),
        "lcore": ctx.worker_lcore, "pkt_size": PKT_SIZE, "device": "net_pcap infinite_rx",
        "destinations": len(dests), "routes": ROUTES, "onlink_routes": ONLINK_ROUTES,
        "gateways": GATEWAYS, "neighbors": len(neighbors),
        "samples": ctx.samples, "seconds": ctx.seconds, "rounds": ctx.rounds,
        "median-of-N": ctx.samples,
        "ns_per_pkt": round(1e3 / value, 1) if value else None,
        "ref_ns_per_pkt": round(1e3 / ref_value, 1) if ref_value else None,
        "cpu_share": ours.cpu_share(), "ref_cpu_share": ref.cpu_share(),
        "ratio_cpu": ratio(ours.mpps_per_cpu(), ref.mpps_per_cpu()),
        "value_samples": ours.list(), "ref_samples": ref.list(),
    }
    if warnings:
        figure["warning"] = "; ".join(warnings)
    return [figure]
