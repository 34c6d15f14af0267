"""Python client of the dataplane API (docs/dataplane-api.md): a 4-byte
big-endian length, then JSON; hello first. Shared by the lab, the pcap runner
and the benchmarks; run with /usr/bin/python3."""
from __future__ import annotations

import json
import socket
import struct
import time


class ApiError(RuntimeError):
    def __init__(self, method, error):
        self.code = error.get("code")
        self.message = error.get("message")
        super().__init__(f"{method}: {self.code}: {self.message}")


class ApiClient:
    """One connection to the dataplane API; hello is sent on connect."""

    def __init__(self, path, client="tether-lab", timeout=15.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # With a timeout the socket is non-blocking inside: a full listen backlog
        # gives EAGAIN where a blocking connect would wait. Wait, too.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        self._id = 0
        self.hello = self.call("hello", {"version": 1, "client": client})

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the dataplane closed the API connection")
            buf += chunk
        return bytes(buf)

    def request(self, method: str, params=None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg).encode()
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        (n,) = struct.unpack(">I", self._recv_exact(4))
        reply = json.loads(self._recv_exact(n))
        if reply.get("id") != self._id:
            raise RuntimeError(f"{method}: reply id {reply.get('id')} != request id {self._id}")
        return reply

    def call(self, method: str, params=None):
        reply = self.request(method, params)
        if not reply.get("ok"):
            raise ApiError(method, reply.get("error") or {})
        return reply["result"]

    # conveniences
    def generation(self) -> int:
        return self.call("generation.get")["generation"]

    def counters(self) -> dict:
        return self.call("counters.get")

    def routes(self, domain=None) -> list[dict]:
        return self.call("routes.list", None if domain is None else {"domain": domain})["routes"]

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


