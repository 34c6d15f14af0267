"""Where things are, building what the benchmarks need, hugepages, CPUs."""
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TARGETS = ["tether-dataplane", "tether-dataplane-ctl", "wg_bench", "nat_bench", "fw_bench"]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def build(build_dir):
    """Configures (Release) when needed and builds only the targets benchmarks run."""
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        log(f"configuring {build_dir} (Release)")
        subprocess.run(["cmake", "-S", REPO, "-B", build_dir, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir, *TARGETS], check=True, stdout=subprocess.DEVNULL)
    cache = open(os.path.join(build_dir, "CMakeCache.txt")).read()
    for line in cache.splitlines():
        if line.startswith("CMAKE_BUILD_TYPE:") and not line.endswith(("=Release", "=RelWithDebInfo")):
            log(f"warning: {build_dir} is not an optimised build ({line})")


def hugepages():
    subprocess.run([os.path.join(REPO, "scripts", "hugepages")], check=True,
                   stdout=subprocess.DEVNULL)


ALL_CPUS = sorted(os.sched_getaffinity(0))


def child_affinity():
    """preexec_fn for the processes under test: they place their own lcores,
    from the full CPU set the runner itself was given."""
    os.sched_setaffinity(0, ALL_CPUS)


def pin_runner(cpu):
    """Keeps the runner (sampling, sleeping) off the worker lcore."""
    if cpu in ALL_CPUS:
        os.sched_setaffinity(0, {cpu})
