"""Replicated throughput on one machine: a local etcd, three brokers, a topic with replication factor 3.

    python -m perf.bench_replication [--num-records N] [--record-size B] [--partitions P]

Runs `hpbroker perf produce` with acks=all and acks=1 (min.insync.replicas=2) and `hpbroker perf consume`
against the cluster and prints each run's JSON summary line. Every broker, etcd and the load generator
share the machine's cores, so the numbers are a floor for what a real cluster of three machines does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, "-m", "tools.cli", "perf", *args, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    from tools.etcd import EtcdServer
    from tools.testing import BrokerProcess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--producers", type=int, default=2)
    opts = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hpbroker-repl-"))
    etcd = EtcdServer(str(base / "etcd")).start()
    common = {"etcd.connect": etcd.endpoint, "default.replication.factor": 3, "min.insync.replicas": 2,
              "offsets.topic.num.partitions": 4}
    brokers = [BrokerProcess(data_dir=str(base / f"b{i}"), settings={**common, "broker.id": i}) for i in (1, 2, 3)]
    try:
        for b in brokers:
            b.start()
        bootstrap = ",".join(b.bootstrap for b in brokers)
        time.sleep(2)  # __consumer_offsets placed and its followers caught up
        common_args = ["--bootstrap", bootstrap, "--partitions", str(opts.partitions), "--record-size",
                       str(opts.record_size), "--num-records", str(opts.num_records)]
        for acks in ("all", "1"):
            topic = f"rf3-acks-{acks}"
            args = ["produce", "--topic", topic, *common_args, "--acks", acks, "--producers", str(opts.producers),
                    "--batch-size", "65536"]
            print("hpbroker perf " + " ".join(args), flush=True)
            print(json.dumps(_run(args, 900)), flush=True)
        args = ["consume", "--bootstrap", bootstrap, "--topic", "rf3-acks-all", "--num-records",
                str(opts.num_records), "--consumers", "2"]
        print("hpbroker perf " + " ".join(args), flush=True)
        print(json.dumps(_run(args, 900)), flush=True)
    finally:
        for b in brokers:
            try:
                b.stop()
            except Exception:
                b.kill()
        etcd.stop()


if __name__ == "__main__":
    main()
