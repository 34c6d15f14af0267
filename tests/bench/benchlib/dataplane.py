"""tether-dataplane under test: started from a config, read through its API
(docs/dataplane-api.md: 4-byte big-endian length + JSON), stopped with SIGTERM."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchlib.env import child_affinity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tether_api import ApiClient  # noqa: E402  (tests/tether_api.py)


class Dataplane:
    """with Dataplane(binary, config, workdir) as dp: dp.api.call("counters.get")"""

    def __init__(self, binary, config, workdir, name="dataplane", ready_timeout=30):
        self.workdir = workdir
        self.config_path = os.path.join(workdir, f"{name}.json")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.socket = config.setdefault("api_socket", os.path.join(workdir, f"{name}.sock"))
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.proc = None
        self.api = None
        self.exit_code = None

    def __enter__(self):
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.binary, "-c", self.config_path], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=child_affinity)
        log.close()
        try:
            deadline = time.monotonic() + self.ready_timeout
            while "tether-dataplane: ready" not in self.log():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tether-dataplane exited {self.proc.returncode}:\n"
                                       + self.log_tail())
                if time.monotonic() > deadline:
                    raise RuntimeError("tether-dataplane not ready in time:\n" + self.log_tail())
                time.sleep(0.02)
            self.api = ApiClient(self.socket)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n=20):
        return "\n".join(self.log().splitlines()[-n:])

    def counters(self):
        return self.api.call("counters.get")

    def __exit__(self, *exc):
        if self.api:
            self.api.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode if self.proc else None
        return False
