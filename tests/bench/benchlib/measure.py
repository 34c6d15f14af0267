"""Rates from counter snapshots, medians, and the one-line JSON figure."""
import json
import os
import statistics
import time


def lcore_thread(pid, cpu):
    """The thread of process `pid` pinned to exactly `cpu` (a DPDK lcore)."""
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        try:
            if os.sched_getaffinity(tid) == {cpu}:
                return tid
        except OSError:
            pass
    return None


def thread_run_seconds(pid, tid):
    """CPU time the scheduler gave one thread (schedstat: ns on the CPU)."""
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


class Samples:
    """Per-interval packet rates and, for each, the share of the interval the
    forwarding thread was actually on its CPU (below 1 when something else
    ran on the worker's CPU: a noisy machine)."""

    def __init__(self, rates=None, shares=None):
        self.rates, self.shares = rates or [], shares or []

    def extend(self, other):
        self.rates += other.rates
        self.shares += other.shares

    def mpps(self):
        return round(statistics.median(self.rates) / 1e6, 3)

    def cpu_share(self):
        return round(statistics.median(self.shares), 3) if self.shares else None

    def mpps_per_cpu(self):
        """Median Mpps per second of CPU the forwarding thread got."""
        if not self.shares:
            return None
        return round(statistics.median(r / s for r, s in zip(self.rates, self.shares)) / 1e6, 3)

    def list(self):
        return [round(r / 1e6, 3) for r in self.rates]


def sample_rates(read_counter, warmup, samples, seconds, pid=None, cpu=None):
    """Packets per second of a monotonically growing counter: after `warmup`
    seconds, `samples` back-to-back intervals of about `seconds` each, timed by
    the runner when each snapshot comes back. With pid and cpu, also the CPU
    share of that process's thread on that CPU."""
    time.sleep(warmup)
    tid = lcore_thread(pid, cpu) if pid else None
    run = (lambda: thread_run_seconds(pid, tid)) if tid else (lambda: 0.0)
    t0, r0, c0 = time.monotonic(), run(), read_counter()
    rates, shares = [], []
    for _ in range(samples):
        time.sleep(seconds)
        t1, r1, c1 = time.monotonic(), run(), read_counter()
        rates.append((c1 - c0) / (t1 - t0))
        if tid:
            shares.append(min(1.0, (r1 - r0) / (t1 - t0)))
        t0, r0, c0 = t1, r1, c1
    return Samples(rates, shares)


def per_round(samples, rounds):
    """How many samples each of `rounds` rounds takes, `samples` in all."""
    rounds = max(1, min(rounds, samples))
    return [samples // rounds + (1 if i < samples % rounds else 0) for i in range(rounds)]


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def emit(figure):
    print(json.dumps(figure), flush=True)
