"""Produce/Fetch codec fast paths against the generic schema-driven codec, single thread, in process.

Each case times the same message both ways: Produce request decode (8 partitions x 16 KiB records),
Fetch response encode (the fast path with file ranges and with in-memory records; the generic encoder
must be handed the record bytes and copies them into its frame), plus the small Produce response and
Fetch request of the same 8 partitions. Each figure is the best CPU-time rate of interleaved rounds.

    python -m perf.bench_codec
    python -m perf.bench_codec --seconds 0.5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Callable

from netio.codec import decode_request, encode_request, encode_response
from netio.codec.fetch import PartitionData, decode_fetch_request, encode_fetch_response
from netio.codec.produce import decode_produce_request, encode_produce_response
from netio.connection import FilePart

PARTITIONS = 8
RECORDS = 16 * 1024
TOPIC = "bench-topic"
ROUNDS = 6


def _batch(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of `fn` take about `seconds`."""
    n = 1
    while True:
        start = time.process_time()
        for _ in range(n):
            fn()
        took = time.process_time() - start
        if took > seconds / 4:
            return max(1, int(n * seconds / took))
        n *= 2


def _rates(generic: Callable[[], object], fast: Callable[[], object], seconds: float,
           rounds: int = ROUNDS) -> tuple[float, float]:
    """Best calls per CPU-second of each function over interleaved rounds.

    CPU time of this process and interleaving keep the ratio honest on a machine that other work shares.
    """
    slice_s = seconds / rounds
    batches = [(fn, _batch(fn, slice_s)) for fn in (generic, fast)]
    best = [0.0, 0.0]
    for _ in range(rounds):
        for i, (fn, n) in enumerate(batches):
            start = time.process_time()
            for _ in range(n):
                fn()
            best[i] = max(best[i], n / max(time.process_time() - start, 1e-9))
    return best[0], best[1]


def _cases(fd: int) -> list[tuple[str, Callable[[], object], Callable[[], object], str]]:
    payload = os.urandom(RECORDS)
    produce = memoryview(encode_request(0, 8, 1, "bench", {
        "transactional_id": None, "acks": -1, "timeout_ms": 30000,
        "topic_data": [{"name": TOPIC, "partition_data": [
            {"index": p, "records": payload} for p in range(PARTITIONS)]}]}))[4:]

    fetch_request = memoryview(encode_request(1, 11, 2, "bench", {
        "replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 52428800, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "rack_id": "",
        "topics": [{"topic": TOPIC, "partitions": [
            {"partition": p, "current_leader_epoch": 0, "fetch_offset": 1000 * p, "log_start_offset": -1,
             "partition_max_bytes": 1048576} for p in range(PARTITIONS)]}],
        "forgotten_topics_data": []}))[4:]

    file_topics = [(TOPIC, [PartitionData(p, 0, 5000, 5000, 0, None, -1, FilePart(fd, p * RECORDS, RECORDS))
                            for p in range(PARTITIONS)])]
    memory_topics = [(TOPIC, [PartitionData(p, 0, 5000, 5000, 0, None, -1, payload) for p in range(PARTITIONS)])]
    fetch_body = {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": [
        {"topic": TOPIC, "partitions": [
            {"partition_index": p, "error_code": 0, "high_watermark": 5000, "last_stable_offset": 5000,
             "log_start_offset": 0, "aborted_transactions": None, "preferred_read_replica": -1,
             "records": payload} for p in range(PARTITIONS)]}]}

    results = [(TOPIC, [(p, 0, 1000 * p, -1, 0, None) for p in range(PARTITIONS)])]
    produce_body = {"throttle_time_ms": 0, "responses": [{"name": TOPIC, "partition_responses": [
        {"index": p, "error_code": 0, "base_offset": 1000 * p, "log_append_time_ms": -1, "log_start_offset": 0,
         "error_message": None} for p in range(PARTITIONS)]}]}

    return [
        ("Produce v8 request decode, 8 x 16 KiB", lambda: decode_request(produce),
         lambda: decode_produce_request(produce), "zero-copy records"),
        ("Fetch v11 response encode, 8 x 16 KiB", lambda: encode_response(1, 11, 2, fetch_body),
         lambda: encode_fetch_response(11, 2, 0, 0, 0, file_topics), "fast: FileParts"),
        ("Fetch v11 response encode, 8 x 16 KiB", lambda: encode_response(1, 11, 2, fetch_body),
         lambda: encode_fetch_response(11, 2, 0, 0, 0, memory_topics), "fast: in-memory records"),
        ("Fetch v11 request decode, 8 partitions", lambda: decode_request(fetch_request),
         lambda: decode_fetch_request(fetch_request), ""),
        ("Produce v8 response encode, 8 partitions", lambda: encode_response(0, 8, 1, produce_body),
         lambda: encode_produce_response(8, 1, results), ""),
    ]


def run(seconds: float) -> list[dict]:
    with tempfile.TemporaryFile() as segment:
        segment.write(os.urandom(PARTITIONS * RECORDS))
        segment.flush()
        out = []
        for name, generic, fast, note in _cases(segment.fileno()):
            generic_rate, fast_rate = _rates(generic, fast, seconds)
            out.append({"case": name, "note": note, "generic_ops": round(generic_rate),
                        "fast_ops": round(fast_rate), "ratio": round(fast_rate / generic_rate, 2)})
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per function and case")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = run(args.seconds)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, python {platform.python_version()}, one thread, ops per CPU-second")
    print(f"{'case':<42} {'generic ops/s':>14} {'fast ops/s':>12} {'ratio':>7}  note")
    for r in results:
        print(f"{r['case']:<42} {r['generic_ops']:>14,} {r['fast_ops']:>12,} {r['ratio']:>6.2f}x  {r['note']}")


if __name__ == "__main__":
    main()
