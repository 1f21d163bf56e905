"""Raw loopback TCP ceiling: the most any consumer on this machine can receive, with no protocol at all.

Sender processes push one buffer over and over (``sendall``), receivers ``recv_into`` one reused buffer and
count bytes; nothing is parsed. A consume rate measured through a broker or the null sink is bounded by
this number, so it is the yardstick for "the generator is not the bottleneck".

    python -m perf.bench_loopback [--pairs 1 2] [--seconds 3] [--chunk 1048576]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import time


def _send(port: int, chunk: int, seconds: float) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    buf = os.urandom(chunk)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            s.sendall(buf)
    except OSError:
        pass
    s.close()


def _receive(listener: socket.socket, chunk: int, out) -> None:
    conn, _ = listener.accept()
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    start = time.monotonic()
    while True:
        n = conn.recv_into(view)
        if not n:
            break
        total += n
    out.put((total, time.monotonic() - start))
    conn.close()


def measure(pairs: int, seconds: float, chunk: int) -> float:
    """GB/s received in total over `pairs` sender/receiver process pairs."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = []
    for _ in range(pairs):
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        r = ctx.Process(target=_receive, args=(listener, chunk, out))
        r.start()
        s = ctx.Process(target=_send, args=(port, chunk, seconds))
        s.start()
        listener.close()
        procs += [r, s]
    results = [out.get() for _ in range(pairs)]
    for p in procs:
        p.join()
    return sum(total for total, _ in results) / max(el for _, el in results) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    a = ap.parse_args()
    for pairs in a.pairs:
        print(f"loopback TCP, {pairs} pair(s), {a.chunk} B sends: {measure(pairs, a.seconds, a.chunk):.2f} GB/s")


if __name__ == "__main__":
    main()
