"""nettool: small traffic endpoints the lab runs inside namespaces
(`ip netns exec NS /usr/bin/python3 nettool.py ...`). Each prints one JSON
line with what it did, so a test can compare both ends.

  udp-recv --bind IP --port P --expect N [--idle S] [--timeout S]
      prints {"listening": true} once bound, then counts datagrams until N
      arrived, or S seconds passed without one after the first, or --timeout;
      prints {"received": n, "unique": u, "corrupt": c, "bytes": b}.
  udp-send --to IP --port P --count N [--size B] [--batch K] [--gap-ms G]
      sends N numbered datagrams of B bytes, K at a time with G ms between
      batches; prints {"sent": n, "bytes": b}.
  tcp-send --to IP --port P --file F [--hold PATH] [--hold-rate BYTES/S]
      sends the file over one TCP connection; while PATH exists it sends at
      most BYTES/S (so the transfer stays in flight as long as a test needs).
"""

import argparse
import json
import os
import socket
import struct
import sys
import time


def pattern(seq: int, size: int) -> bytes:
    head = struct.pack(">I", seq)
    body = bytes((seq + i) & 0xFF for i in range(size - 4))
    return head + body


def udp_recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((a.bind, a.port))
    print(json.dumps({"listening": True}), flush=True)
    seen, received, corrupt, nbytes = set(), 0, 0, 0
    deadline = time.monotonic() + a.timeout
    last = None
    while received < a.expect:
        now = time.monotonic()
        if now >= deadline or (last is not None and now - last >= a.idle):
            break
        s.settimeout(min(deadline - now, a.idle if last is not None else deadline - now))
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        last = time.monotonic()
        received += 1
        nbytes += len(data)
        if len(data) < 4:
            corrupt += 1
            continue
        (seq,) = struct.unpack(">I", data[:4])
        if data != pattern(seq, len(data)):
            corrupt += 1
        seen.add(seq)
    print(json.dumps({"received": received, "unique": len(seen), "corrupt": corrupt,
                      "bytes": nbytes}), flush=True)


def udp_send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((a.to, a.port))
    sent = nbytes = 0
    for seq in range(a.count):
        payload = pattern(seq, a.size)
        while True:
            try:
                s.send(payload)
                break
            except (BlockingIOError, OSError):
                time.sleep(0.001)  # ENOBUFS: the veth queue is full
        sent += 1
        nbytes += len(payload)
        if (seq + 1) % a.batch == 0:
            time.sleep(a.gap_ms / 1000.0)
    print(json.dumps({"sent": sent, "bytes": nbytes}), flush=True)


def tcp_send(a):
    s = socket.create_connection((a.to, a.port), timeout=30)
    s.settimeout(120)
    sent = 0
    chunk = 64 << 10
    with open(a.file, "rb") as f:
        while True:
            held = a.hold and os.path.exists(a.hold)
            size = min(chunk, max(1024, a.hold_rate // 20)) if held else chunk
            data = f.read(size)
            if not data:
                break
            s.sendall(data)
            sent += len(data)
            if held:
                time.sleep(len(data) / a.hold_rate)
    s.shutdown(socket.SHUT_WR)
    # Wait for the receiver to close: every byte is then in its file.
    s.settimeout(120)
    while s.recv(4096):
        pass
    s.close()
    print(json.dumps({"sent": sent}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("udp-recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--expect", type=int, required=True)
    r.add_argument("--idle", type=float, default=3.0)
    r.add_argument("--timeout", type=float, default=120.0)
    s = sub.add_parser("udp-send")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--size", type=int, default=512)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--gap-ms", type=float, default=2.0)
    t = sub.add_parser("tcp-send")
    t.add_argument("--to", required=True)
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--file", required=True)
    t.add_argument("--hold")
    t.add_argument("--hold-rate", type=int, default=256 << 10)
    a = p.parse_args()
    {"udp-recv": udp_recv, "udp-send": udp_send, "tcp-send": tcp_send}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
