"""fw: the stateful firewall on one worker lcore (fw_bench, tests/bench/fw_bench.cc):

- fw-100, fw-1k, fw-10k: Mpps of 64-byte established packets (10k flows,
  half TCP with window tracking, half UDP; each packet of a flow drawn at
  random) from the uplink to the lan zone under an uplink->lan policy of that
  many rules, beside `forward`: the same harness, ports, routes and packets
  with the session stage off (no zone, no policy, no NAT). Goal: ratio >= 0.8
  at 10k rules.
- fw-new-10k: new sessions per second, every packet the first UDP datagram of
  a flow of its own, classified against the 10k rules (accepted by the last
  one), beside the same `forward` (ratio = sessions/s over packets/s).
- fw-swap-10k: ms of one config.apply (Dataplane::apply_changes) replacing the
  10k-rule policy by 10k other rules while the worker lcore forwards the
  established flows, which the new policy still accepts; `lost` = their
  packets pushed from the call until every session re-checked itself that
  the worker did not send (goal 0). Reference: fw::Classifier::compile of the
  same rules alone (fw-compile-10k).

Each round runs `fw_bench --side forward` (the reference) and then
`fw_bench --side fw` (every figure asked for, in one process), so that the
two sides alternate as in `forward`. In smoke mode the rate figures share the
smoke run's warm-up and sample time and the swap is done once, without the
warm-up pair (a swap there and back) that precedes the samples in full mode."""

from benchlib.sides import Collected, median, run_side
from benchlib.measure import per_round, ratio

NAME = "fw"
FIGURES = ["fw-100", "fw-1k", "fw-10k", "fw-new-10k", "fw-swap-10k"]
RULES = {"fw-100": 100, "fw-1k": 1000, "fw-10k": 10000}
FLOWS = 10000  # established flows, half TCP and half UDP
NEW_BATCH = 262144  # fw-new-10k: sessions made between two emptyings of the table
MAX_SESSIONS = 1250000  # as nat: a batch, the established flows, and room (about 200 B each)


def _bench(ctx, side, figures, warmup, seconds, samples, tag):
    """One fw_bench process; its JSON lines by figure name, and its exit info."""
    args = ["--warmup", str(warmup), "--seconds", str(seconds), "--samples", str(samples),
            "--main-lcore", str(ctx.service_lcore), "--worker-lcore", str(ctx.worker_lcore),
            "--flows", str(FLOWS), "--max-sessions", str(MAX_SESSIONS),
            "--new-batch", str(NEW_BATCH)]
    if figures:
        args += ["--figures", ",".join(figures)]
    if ctx.smoke:  # one swap, no warm-up pair: the smoke run only checks it works
        args += ["--swap-samples", "1", "--swap-warmup", "0"]
    return run_side(ctx, "fw_bench", side, args, tag)


def _missing(exits):
    missing = sum(e.get("missing_mbufs", 0) for e in exits)
    return [f"{missing} mbufs not back in the pool at exit"] if missing else []


def _rate_figure(ctx, name, ours, ref, exits, warmup, seconds):
    rates, shares = ours.cat("value_samples"), ours.cat("cpu_shares")
    ref_rates, ref_shares = ref.cat("value_samples"), ref.cat("cpu_shares")
    per_cpu = median([r / s for r, s in zip(rates, shares) if s])
    ref_per_cpu = median([r / s for r, s in zip(ref_rates, ref_shares) if s])
    warnings = ours.warnings() + [f"forward: {w}" for w in ref.warnings()] + _missing(exits)
    if min(median(shares) or 1, median(ref_shares) or 1) < 0.9:
        warnings.append("the measuring lcore shared its CPU with other processes "
                        "(see cpu_share); compare ratio_cpu")
    ref_mpps = round(median(ref_rates) / 1e6, 3)
    fig = {"bench": name}
    if name == "fw-new-10k":
        value = round(median(rates))
        fig.update({
            "value": value, "unit": "sessions/s",
            "ref": "forward", "ref_value": ref_mpps, "ref_unit": "Mpps",
            "ratio": ratio(median(rates), median(ref_rates)),
            "classified_per_s": value,
            "ns_per_session": round(1e9 / value, 1) if value else None,
            "acl_classify_ns": median([r["acl_classify_ns"] for r in ours.rounds]),
            "batch_sessions": ours.last("batch_sessions"),
            "sessions_made": ours.total("sessions_made"),
            "accepted_by_last_rule": ours.total("accepted_by_last_rule"),
            "expiries": ours.total("expiries"),
            "max_live": max(r.get("max_live", 0) for r in ours.rounds),
            "how": "first packets (UDP, a new five-tuple each) uplink -> lan, each classified "
                   "against the 10k rules and accepted by the last one, a session made; "
                   "classified_per_s = value (one classification per first packet, checked: "
                   "sessions made = packets = sessions of the last rule). The table starts "
                   "empty and is swept empty (clock advanced past every timeout, "
                   "Service::poll_once) every batch_sessions, not timed. acl_classify_ns: "
                   "rte_acl alone per key, bursts of 32",
        })
        value_samples = [round(x) for x in rates]
    else:
        value = round(median(rates) / 1e6, 3)
        fig.update({
            "value": value, "unit": "Mpps",
            "ref": "forward", "ref_value": ref_mpps, "ratio": ratio(value, ref_mpps),
            "flows": ours.last("flows"), "tcp_flows": ours.last("tcp_flows"),
            "udp_flows": ours.last("udp_flows"), "live": ours.last("live"),
            "ns_per_pkt": round(1e3 / value, 1) if value else None,
            "establish_s": [r.get("establish_s") for r in ours.rounds],
            "how": "established packets (TCP ACK with window tracking, or UDP), each of a flow "
                   "drawn at random among all flows, uplink -> lan zone, one routing domain; "
                   "the sessions were made by their first packets under this policy",
        })
        value_samples = [round(x / 1e6, 3) for x in rates]
    fig.update({
        "rules": ours.last("rules"), "acl_rules": ours.last("acl_rules"),
        "acl_memory": ours.last("acl_memory"),
        "apply_ms": [round(r.get("apply_ms", 0), 1) for r in ours.rounds],
        "lcore": ours.last("lcore"), "pkt_size": 64, "device": "net_null (pre-built mbufs)",
        "table_capacity": ours.last("table_capacity"),
        "packets": ours.total("packets"),
        "batch": ours.last("batch"), "burst": ours.last("burst"),
        "verified": ours.total("verified"),
        "ref_how": "fw_bench --side forward: the same ports, routes, neighbors, 64-byte "
                   "packets of the same flows and harness, no zone or policy (session stage off)",
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


def _swap_figure(ctx, ours, exits):
    ms, ref_ms = ours.cat("value_samples"), ours.cat("ref_samples")
    lost = [int(x) for x in ours.cat("lost_samples")]
    warnings = ours.warnings() + _missing(exits)
    if sum(lost):
        warnings.append(f"{sum(lost)} packets lost during the swaps (goal 0)")
    drops = {}
    for r in ours.rounds:
        for k, v in r.get("drops_during", {}).items():
            drops[k] = drops.get(k, 0) + v
    value, ref_value = round(median(ms), 1), round(median(ref_ms), 1)
    fig = {
        "bench": "fw-swap-10k", "value": value, "unit": "ms",
        "ref": "fw-compile-10k", "ref_value": ref_value,
        "ratio": ratio(median(ms), median(ref_ms)),
        "lost": sum(lost), "lost_samples": lost,
        "pushed_during": [int(x) for x in ours.cat("pushed_during")],
        "pushed_after": [int(x) for x in ours.cat("pushed_after")],
        "rechecked": [int(x) for x in ours.cat("rechecked")],
        "revoked": [int(x) for x in ours.cat("revoked")],
        "drops_during": drops,
        "mpps_before": ours.cat("mpps_before"), "mpps_during": ours.cat("mpps_during"),
        "mpps_after": ours.cat("mpps_after"),
        "rules": ours.last("rules"), "acl_rules": ours.cat("acl_rules"),
        "flows": ours.last("flows"), "settle_bursts": ours.last("settle_bursts"),
        "lcore": ours.last("lcore"), "api_lcore": ours.last("api_lcore"),
        "how": "one Dataplane::apply_changes (fw_policy update: 10k rules, every filler rule "
               "new, the accepting rules kept) on the API thread, timed from call to return "
               "(compile, generation build, publish, RCU synchronize), the worker lcore "
               "forwarding the established flows meanwhile. lost = packets pushed from the "
               "call until settle_bursts bursts after the return (every flow seen several "
               "times: every session re-checked) minus packets the worker sent: each burst "
               "is flushed before the next, so the worker's TX counter moves by exactly what "
               "it sent of that burst",
        "ref_how": "fw::Classifier::compile of the same 10k rules on the API thread, alone "
                   "(no traffic), in the same process",
        "samples": ctx.samples, "rounds": ctx.rounds, "median-of-N": len(ms),
        "value_samples": [round(x, 1) for x in ms], "ref_samples": [round(x, 1) for x in ref_ms],
    }
    if warnings:
        fig["warning"] = "; ".join(warnings)
    return fig


def run(ctx):
    wanted = [f for f in FIGURES if ctx.figures is None or f in ctx.figures]
    rate_figs = [f for f in wanted if f != "fw-swap-10k"]
    share = max(1, len(rate_figs)) if ctx.smoke else 1
    warmup, seconds = round(ctx.warmup / share, 4), round(ctx.seconds / share, 4)
    ref, ours, exits = Collected(), {f: Collected() for f in wanted}, []
    for r, n in enumerate(per_round(ctx.samples, ctx.rounds)):
        if rate_figs:
            lines, ex = _bench(ctx, "forward", None, warmup, seconds, n, r)
            ref.add(lines["forward"])
            exits.append(ex)
        lines, ex = _bench(ctx, "fw", wanted, warmup, seconds, n, r)
        exits.append(ex)
        for f in wanted:
            if f not in lines:
                raise RuntimeError(f"fw_bench printed no {f}")
            ours[f].add(lines[f])
    figures = [_rate_figure(ctx, f, ours[f], ref, exits, warmup, seconds) for f in rate_figs]
    if "fw-swap-10k" in wanted:
        figures.append(_swap_figure(ctx, ours["fw-swap-10k"], exits))
    return figures
