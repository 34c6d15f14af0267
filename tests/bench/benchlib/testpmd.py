"""dpdk-testpmd as the reference forwarder, driven through its interactive
prompt on a pipe: the runner asks "show port stats" when it takes a sample,
exactly as it asks tether-dataplane for counters.get."""
import queue
import re
import subprocess
import threading
import time

from benchlib.env import child_affinity

TESTPMD = "/usr/bin/dpdk-testpmd"


class Testpmd:
    def __init__(self, eal_args, testpmd_args, start_timeout=30):
        # stdbuf: testpmd's stdout is a pipe, keep it line-buffered.
        self.cmd = ["stdbuf", "-oL", TESTPMD, *eal_args, "--", "-i", "--auto-start",
                    *testpmd_args]
        self.start_timeout = start_timeout
        self.lines = queue.Queue()
        self.output = []
        self.proc = None
        self.exit_code = None

    def _reader(self):
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def _until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"testpmd: no '{pattern}' in time:\n" + self.tail())
            if line is None:
                raise RuntimeError(f"testpmd exited before '{pattern}':\n" + self.tail())
            m = re.search(pattern, line)
            if m:
                return m

    def tail(self, n=25):
        return "".join(self.output[-n:])

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     preexec_fn=child_affinity)
        threading.Thread(target=self._reader, daemon=True).start()
        try:
            self._until(r"Start automatic packet forwarding|testpmd>", self.start_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def port_stats(self, port=0):
        """{"rx_packets", "tx_packets", "rx_missed", "tx_errors"} of one port, now."""
        self._send(f"show port stats {port}")
        rx = self._until(r"RX-packets:\s+(\d+)\s+RX-missed:\s+(\d+)", 10)
        tx = self._until(r"TX-packets:\s+(\d+)\s+TX-errors:\s+(\d+)", 10)
        return {"rx_packets": int(rx[1]), "rx_missed": int(rx[2]),
                "tx_packets": int(tx[1]), "tx_errors": int(tx[2])}

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode if self.proc else None
        return False
