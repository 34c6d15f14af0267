"""Benchmarks whose binary measures one side of a round per process
(nat_bench, fw_bench): running a side, and collecting its lines over rounds."""
import json
import os
import statistics
import subprocess

from benchlib.env import child_affinity


def median(xs):
    return statistics.median(xs) if xs else None


def run_side(ctx, binary, side, args, tag):
    """One `binary --side side ARGS -- EAL` process; its JSON lines by figure
    name, and its exit info. Its stderr goes to a log in the work dir, whose
    end is in the error when it fails."""
    cmd = [ctx.bin(binary), "--side", side, *args, "--", *ctx.eal_args]
    log_path = os.path.join(ctx.workdir, f"{binary}-{side}-{tag}.log")
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                              preexec_fn=child_affinity, timeout=3600)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        raise RuntimeError(f"{binary} --side {side} exited {proc.returncode}:\n{tail}")
    exit_info = next((line["exit"] for line in lines if "exit" in line), {})
    return {line["figure"]: line for line in lines if "figure" in line}, exit_info


class Collected:
    """One figure's raw lines over all rounds, one per round."""

    def __init__(self):
        self.rounds = []

    def add(self, raw):
        self.rounds.append(raw)

    def cat(self, key):
        return [x for r in self.rounds for x in r.get(key, [])]

    def warnings(self):
        out = []
        for r in self.rounds:
            out += [w for w in r.get("warnings", []) if w not in out]
        return out

    def last(self, key):
        return self.rounds[-1].get(key) if self.rounds else None

    def total(self, key):
        return sum(r.get(key, 0) for r in self.rounds)
