"""nat: NAT on one worker lcore (nat_bench, tests/bench/nat_bench.cc):

- nat-1k, nat-100k, nat-1m: Mpps of 64-byte established packets from the
  uplink to published addresses, each packet's session drawn at random among
  all N established sessions (session lookup, translation, route in the VDC's
  domain, neighbor, TX), beside `forward`: the same pipeline, ports, routes,
  packets and harness without NAT (the packets go straight to the workloads'
  addresses). Goal: >= 20 Mpps at 1M.
- nat-new: new sessions per second (first packets: a SYN or a UDP datagram
  from a distinct client each, port allocation included), beside the same
  `forward` (ratio = sessions/s over forwarded packets/s). The table starts
  empty and is emptied every 262144 sessions, outside the timing.
- nat-rewrite-10k: ms of one config.apply of 10k nat_rewrite changes moving
  the 10k mappings of a domain (one established session each) while the
  worker lcore forwards established packets of those sessions; `lost` =
  packets pushed during the apply that did not come out toward the old or
  the new inner address (goal 0). Reference: the same apply on another
  domain's 10k mappings without sessions or traffic (nat-rewrite-10k-idle).

Sessions come from real first packets through the pipeline (SYN, SYN-ACK
from the workload, ACK; or one UDP datagram), never from direct inserts.

Each round runs `nat_bench --side forward` (the reference) and then
`nat_bench --side nat` (every NAT figure asked for, in one process: the table
grows 1k -> 100k -> 1M, then is emptied for nat-new, then holds the rewrite
domain's 10k sessions), so the two sides alternate as in `forward`. In smoke
mode the rate figures share the smoke run's warm-up and sample time (each
gets 1/n of it) and the rewrite is done once, without the warm-up pair
(a rewrite there and back) that precedes the samples in full mode."""

from benchlib.sides import Collected, median, run_side
from benchlib.measure import per_round, ratio

NAME = "nat"
FIGURES = ["nat-1k", "nat-100k", "nat-1m", "nat-new", "nat-rewrite-10k"]
SIZES = {"nat-1k": 1000, "nat-100k": 100000, "nat-1m": 1000000}
VDCS = 16  # VDC domains: a port pool has 64512 ports per (gateway, protocol)
MAX_SESSIONS = 1250000  # 1M + 25 %: about 200 B a session of hugepages
NEW_BATCH = 262144  # nat-new: sessions made between two emptyings of the table
REWRITE_MAPPINGS = 10000
FORWARD_FLOWS = 1000000  # the reference draws its packets from as many flows


def _bench(ctx, side, figures, warmup, seconds, samples, tag):
    """One nat_bench process; its JSON lines by figure name, and its exit info."""
    args = ["--warmup", str(warmup), "--seconds", str(seconds), "--samples", str(samples),
            "--main-lcore", str(ctx.service_lcore), "--worker-lcore", str(ctx.worker_lcore),
            "--vdcs", str(VDCS), "--max-sessions", str(MAX_SESSIONS),
            "--new-batch", str(NEW_BATCH), "--rewrite-mappings", str(REWRITE_MAPPINGS),
            "--flows", str(FORWARD_FLOWS)]
    if figures:
        args += ["--figures", ",".join(figures)]
    if ctx.smoke:  # one rewrite, no warm-up pair: the smoke run only checks it works
        args += ["--rewrite-samples", "1", "--rewrite-warmup", "0"]
    return run_side(ctx, "nat_bench", side, args, tag)


def _rate_figure(ctx, name, ours, ref, exits, warmup, seconds):
    rates, shares = ours.cat("value_samples"), ours.cat("cpu_shares")
    ref_rates, ref_shares = ref.cat("value_samples"), ref.cat("cpu_shares")
    per_cpu = median([r / s for r, s in zip(rates, shares) if s])
    ref_per_cpu = median([r / s for r, s in zip(ref_rates, ref_shares) if s])
    warnings = ours.warnings() + [f"forward: {w}" for w in ref.warnings()]
    missing = sum(e.get("missing_mbufs", 0) for e in exits)
    if missing:
        warnings.append(f"{missing} mbufs not back in the pool at exit")
    if min(median(shares) or 1, median(ref_shares) or 1) < 0.9:
        warnings.append("the measuring lcore shared its CPU with other processes "
                        "(see cpu_share); compare ratio_cpu")
    ref_mpps = round(median(ref_rates) / 1e6, 3)
    fig = {"bench": name}
    if name == "nat-new":
        value = round(median(rates))
        fig.update({
            "value": value, "unit": "sessions/s",
            "ref": "forward", "ref_value": ref_mpps, "ref_unit": "Mpps",
            "ratio": ratio(median(rates), median(ref_rates)),
            "ns_per_session": round(1e9 / value, 1) if value else None,
            "batch_sessions": ours.last("batch_sessions"),
            "sessions_made": sum(r.get("sessions_made", 0) for r in ours.rounds),
            "expiries": sum(r.get("expiries", 0) for r in ours.rounds),
            "max_live": max(r.get("max_live", 0) for r in ours.rounds),
            "how": "first packets (TCP SYN or UDP) from distinct clients to 16x2 published "
                   "ports; the table starts empty and is swept empty (clock advanced past "
                   "every timeout, Service::poll_once) every batch_sessions, not timed",
        })
        value_samples = [round(x) for x in rates]
    else:
        value = round(median(rates) / 1e6, 3)
        fig.update({
            "value": value, "unit": "Mpps",
            "ref": "forward", "ref_value": ref_mpps, "ratio": ratio(value, ref_mpps),
            "sessions": SIZES[name], "live": ours.last("live"),
            "ns_per_pkt": round(1e3 / value, 1) if value else None,
            "establish_s": [r.get("establish_s") for r in ours.rounds],
            "how": "established packets (TCP ACK or UDP), each of a session drawn at random "
                   "among all sessions, uplink -> published address -> VDC port",
        })
        value_samples = [round(x / 1e6, 3) for x in rates]
    fig.update({
        "lcore": ours.last("lcore"), "pkt_size": 64, "device": "net_null (pre-built mbufs)",
        "vdcs": ours.last("vdcs"), "table_capacity": ours.last("table_capacity"),
        "packets": sum(r.get("packets", 0) for r in ours.rounds),
        "batch": ours.last("batch"), "burst": ours.last("burst"),
        "verified": sum(r.get("verified", 0) for r in ours.rounds),
        "ref_how": "nat_bench --side forward: the same ports, routes, neighbors, 64-byte "
                   "packets and harness, no NAT configured; packets addressed to the workloads",
        "ref_ns_per_pkt": round(1e3 / ref_mpps, 1) if ref_mpps else None,
        "samples": ctx.samples, "seconds": seconds, "warmup": warmup, "rounds": ctx.rounds,
        "median-of-N": len(rates),
        "cpu_share": round(median(shares), 3), "ref_cpu_share": round(median(ref_shares), 3),
        "ratio_cpu": ratio(per_cpu, ref_per_cpu),
        "value_samples": value_samples,
        "ref_samples": [round(x / 1e6, 3) for x in ref_rates],
    })
    if warnings:
        fig["warning"] = "; ".join(warnings)
    return fig


def _rewrite_figure(ctx, ours, exits):
    ms, ref_ms = ours.cat("value_samples"), ours.cat("ref_samples")
    lost = [int(x) for x in ours.cat("lost_samples")]
    warnings = ours.warnings()
    missing = sum(e.get("missing_mbufs", 0) for e in exits)
    if missing:
        warnings.append(f"{missing} mbufs not back in the pool at exit")
    if sum(lost):
        warnings.append(f"{sum(lost)} packets lost during the rewrites (goal 0)")
    value, ref_value = round(median(ms), 1), round(median(ref_ms), 1)
    fig = {
        "bench": "nat-rewrite-10k", "value": value, "unit": "ms",
        "ref": "nat-rewrite-10k-idle", "ref_value": ref_value,
        "ratio": ratio(median(ms), median(ref_ms)),
        "lost": sum(lost), "lost_samples": lost,
        "pushed_during": [int(x) for x in ours.cat("pushed_during")],
        "old_during": [int(x) for x in ours.cat("old_during")],
        "new_during": [int(x) for x in ours.cat("new_during")],
        "rekeyed": [int(x) for x in ours.cat("rekeyed")],
        "mpps_before": ours.cat("mpps_before"), "mpps_during": ours.cat("mpps_during"),
        "mappings": ours.last("mappings"), "sessions": ours.last("sessions"),
        "changes": ours.last("changes"), "all_mappings": ours.last("all_mappings"),
        "table_capacity": ours.last("table_capacity"),
        "lcore": ours.last("lcore"), "api_lcore": ours.last("api_lcore"),
        "how": "one Dataplane::apply_changes of 10k kNatRewrite changes (one per inner address) "
               "on the API thread, the worker lcore forwarding established packets of the "
               "domain's sessions meanwhile; lost = pushed during the apply - out toward the "
               "old or new inner address",
        "ref_how": "the same apply on the idle domain's 10k mappings (no sessions), no traffic",
        "samples": ctx.samples, "rounds": ctx.rounds, "median-of-N": len(ms),
        "value_samples": [round(x, 1) for x in ms], "ref_samples": [round(x, 1) for x in ref_ms],
    }
    if warnings:
        fig["warning"] = "; ".join(warnings)
    return fig


def run(ctx):
    wanted = [f for f in FIGURES if ctx.figures is None or f in ctx.figures]
    rate_figs = [f for f in wanted if f != "nat-rewrite-10k"]
    share = max(1, len(rate_figs)) if ctx.smoke else 1
    warmup, seconds = round(ctx.warmup / share, 4), round(ctx.seconds / share, 4)
    ref, ours, exits = Collected(), {f: Collected() for f in wanted}, []
    for r, n in enumerate(per_round(ctx.samples, ctx.rounds)):
        if rate_figs:
            lines, ex = _bench(ctx, "forward", None, warmup, seconds, n, r)
            ref.add(lines["forward"])
            exits.append(ex)
        lines, ex = _bench(ctx, "nat", wanted, warmup, seconds, n, r)
        exits.append(ex)
        for f in wanted:
            if f not in lines:
                raise RuntimeError(f"nat_bench printed no {f}")
            ours[f].add(lines[f])
    figures = [_rate_figure(ctx, f, ours[f], ref, exits, warmup, seconds) for f in rate_figs]
    if "nat-rewrite-10k" in wanted:
        figures.append(_rewrite_figure(ctx, ours["nat-rewrite-10k"], exits))
    return figures
