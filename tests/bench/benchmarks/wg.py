"""wg: WireGuard on one lcore, each figure beside raw OpenSSL measured in the
same process (wg_bench, tests/bench/wg_bench.cc):

- wg-encap-SIZE: Gbps of inner IPv4 packets of SIZE bytes through the worker
  pipeline to a peer's allowed prefix (route, encrypt, outer route and
  neighbor, TX), beside ChaCha20-Poly1305 sealing SIZE bytes (EVP, one
  context, a fresh nonce each call).
- wg-decap-SIZE: Gbps of inner bytes out of data messages to the listen port
  (decrypt, replay window, cryptokey routing, inner route, TX), beside
  ChaCha20-Poly1305 opening SIZE bytes.
- wg-handshake: handshakes per second, initiation in through the pipeline,
  Service::poll_once consuming it and deriving keys, response out, beside
  X25519 derivations per second (EVP_PKEY_derive, fixed peer key). A
  responder does 3 X25519 and 1 key generation per handshake.

`run wg` runs them all in one process; `run wg-encap-1420` just that one.
In smoke mode the figures share the smoke run's warm-up and sample time
(each gets 1/n of it), so that the module takes about as long as one figure."""
import json
import os
import statistics
import subprocess

from benchlib.env import child_affinity
from benchlib.measure import per_round, ratio

NAME = "wg"
FIGURES = ["wg-encap-1420", "wg-decap-1420", "wg-encap-64", "wg-decap-64", "wg-handshake"]
PEERS = 1024  # handshake figure: initiators, so none nears 50 initiations/s


def _median(xs):
    return statistics.median(xs) if xs else None


def _figure(ctx, raw, exit_info, warmup, seconds):
    name = raw["figure"]
    ours, ref = raw["value_samples"], raw["ref_samples"]
    shares, ref_shares = raw["cpu_shares"], raw["ref_cpu_shares"]
    per_cpu = _median([r / s for r, s in zip(ours, shares) if s])
    ref_per_cpu = _median([r / s for r, s in zip(ref, ref_shares) if s])
    warnings = list(raw["warnings"])
    if exit_info.get("missing_mbufs"):
        warnings.append(f"{exit_info['missing_mbufs']} mbufs not back in the pool at exit")
    if min(_median(shares) or 1, _median(ref_shares) or 1) < 0.9:
        warnings.append("the measuring lcore shared its CPU with other processes "
                        "(see cpu_share); compare ratio_cpu")
    fig = {"bench": name}
    if name == "wg-handshake":
        value, ref_value = round(_median(ours), 1), round(_median(ref), 1)
        fig.update({
            "value": value, "unit": "handshakes/s",
            "ref": "openssl-x25519-derive", "ref_value": ref_value, "ref_unit": "ops/s",
            "ratio": ratio(value, ref_value), "lcore": raw["lcore"],
            "peers": raw["peers"], "handshakes": raw["handshakes"],
            "timer_messages": raw["timer_messages"],
            "x25519_per_handshake": raw["x25519_per_handshake"],
            "x25519_keygen_per_handshake": raw["x25519_keygen_per_handshake"],
            "us_per_handshake": round(1e6 / value, 1) if value else None,
            "ref_us_per_op": round(1e6 / ref_value, 1) if ref_value else None,
        })
        scale, digits = 1, 1
    else:
        op = "seal" if name.startswith("wg-encap") else "open"
        size = raw["inner_size"]
        value, ref_value = round(_median(ours) / 1e9, 3), round(_median(ref) / 1e9, 3)
        mpps = value * 1e3 / (size * 8)
        fig.update({
            "value": value, "unit": "Gbps",
            "ref": f"openssl-chacha20poly1305-{op}-{size}", "ref_value": ref_value,
            "ratio": ratio(value, ref_value), "lcore": raw["lcore"],
            "pkt_size": size, "inner_size": size, "padded": raw["padded"],
            "outer_frame": raw["outer_frame"], "device": "net_null",
            "mpps": round(mpps, 3), "ns_per_pkt": round(1e3 / mpps, 1) if mpps else None,
            "ref_ns_per_op": round(size * 8 / ref_value, 1) if ref_value else None,
            "packets": raw["packets"], "batch": raw["batch"], "burst": raw["burst"],
        })
        scale, digits = 1e9, 3
    fig.update({
        "verified": raw["verified"], "openssl": raw["openssl"],
        "samples": ctx.samples, "seconds": seconds, "warmup": warmup, "rounds": ctx.rounds,
        "median-of-N": len(ours),
        "cpu_share": round(_median(shares), 3), "ref_cpu_share": round(_median(ref_shares), 3),
        "ratio_cpu": ratio(per_cpu, ref_per_cpu),
        "value_samples": [round(x / scale, digits) for x in ours],
        "ref_samples": [round(x / scale, digits) for x in ref],
    })
    if warnings:
        fig["warning"] = "; ".join(warnings)
    return fig


def run(ctx):
    wanted = [f for f in FIGURES if ctx.figures is None or f in ctx.figures]
    share = len(wanted) if ctx.smoke else 1
    warmup, seconds = round(ctx.warmup / share, 4), round(ctx.seconds / share, 4)
    cmd = [ctx.bin("wg_bench"), "--figures", ",".join(wanted),
           "--warmup", str(warmup), "--seconds", str(seconds),
           "--rounds", ",".join(str(n) for n in per_round(ctx.samples, ctx.rounds)),
           "--main-lcore", str(ctx.worker_lcore), "--other-lcore", str(ctx.service_lcore),
           "--peers", str(PEERS), "--", *ctx.eal_args]
    log_path = os.path.join(ctx.workdir, "wg_bench.log")
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                              preexec_fn=child_affinity, timeout=3600)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        raise RuntimeError(f"wg_bench exited {proc.returncode}:\n{tail}")
    exit_info = next((line["exit"] for line in lines if "exit" in line), {})
    return [_figure(ctx, raw, exit_info, warmup, seconds) for raw in lines if "figure" in raw]
