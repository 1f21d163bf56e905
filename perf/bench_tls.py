"""What TLS costs: one confluent-kafka producer, then one consumer, through a broker's PLAINTEXT and SSL
listeners in turn.

A broker started here (its defaults: one network and one I/O worker per CPU) listens on both, with a throwaway CA made by
the openssl command line. Each round produces the records to a fresh 8-partition topic through one
listener (linger.ms 5, batch.size 64 KiB, acks=1, as W7), then reads them back from offset 0 with a
consumer assigned every partition (no group), and does the same through the other listener; the order
alternates between rounds. On SSL the broker encrypts in the network worker and reads fetched bytes
from the segments instead of handing them to sendfile.

    python -m perf.bench_tls                           # 3 rounds of 300k 1 KiB records
    python -m perf.bench_tls --records 500000 --rounds 5

Prints records/s, MB/s, delivery latency percentiles (produce() to the delivery report) and the broker's
CPU per record for each run, then the medians and SSL over PLAINTEXT.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time

import psutil

from perf.histogram import Histogram
from tools.testing import BrokerProcess, make_test_certificates

SSL_RE = re.compile(r"hpbroker ready .*,SSL://127\.0\.0\.1:(\d+)")


def broker_cpu(b: BrokerProcess) -> float:
    procs = [psutil.Process(b.proc.pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def produce(conf: dict, topic: str, records: int, size: int) -> tuple[float, Histogram]:
    from confluent_kafka import Producer

    hist = Histogram()  # µs
    errors = []
    p = Producer(dict(conf, **{"linger.ms": 5, "batch.size": 65536, "acks": "1",
                               "queue.buffering.max.messages": 1_000_000}))
    value = b"x" * size
    start = time.perf_counter()
    for i in range(records):
        t0 = time.perf_counter_ns()
        while True:
            try:
                p.produce(topic, value, on_delivery=lambda e, m, t0=t0: (
                    errors.append(e) if e else hist.record((time.perf_counter_ns() - t0) // 1000)))
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(120):
        raise RuntimeError("records left unacknowledged")
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first {errors[0]}")
    return elapsed, hist


def consume(conf: dict, topic: str, records: int, partitions: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(dict(conf, **{"group.id": "bench-tls", "enable.auto.commit": False, "fetch.max.bytes": 8 << 20}))
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 120
    while got < records and time.monotonic() < deadline:
        for m in c.consume(10000, 0.5):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    if got < records:
        raise RuntimeError(f"consumed {got} of {records}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a broker setting")
    args = ap.parse_args()
    from confluent_kafka.admin import AdminClient, NewTopic

    with tempfile.TemporaryDirectory(prefix="bench-tls-") as d:
        certs = make_test_certificates(d)
        settings = {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", "ssl.keystore.location": certs["keystore"],
                    "metrics.listener": "none"}
        settings.update(dict(s.split("=", 1) for s in args.set))
        b = BrokerProcess(data_dir=f"{d}/data", settings=settings, network_threads=None, io_threads=None)
        b.start()
        try:
            ssl_port = next(int(m.group(1)) for m in map(SSL_RE.search, list(b.output)) if m)
            confs = {"PLAINTEXT": {"bootstrap.servers": b.bootstrap},
                     "SSL": {"bootstrap.servers": f"127.0.0.1:{ssl_port}", "security.protocol": "SSL",
                             "ssl.ca.location": certs["ca"]}}
            admin = AdminClient(confs["PLAINTEXT"])
            rows: dict[str, list[dict]] = {"PLAINTEXT": [], "SSL": []}
            mb = args.records * args.size / 1e6
            print(f"{args.records} records of {args.size} B, {args.partitions} partitions, one producer then one "
                  f"consumer per run; broker settings {settings}")
            print(f"{'listener':<10} {'produce rec/s':>14} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
                  f"{'consume rec/s':>14} {'MB/s':>8} {'broker CPU µs/rec (p+c)':>24}")
            for r in range(args.rounds):
                order = ("PLAINTEXT", "SSL") if r % 2 == 0 else ("SSL", "PLAINTEXT")
                for name in order:
                    topic = f"bench-{name.lower()}-{r}"
                    for f in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
                        f.result(30)
                    cpu0 = broker_cpu(b)
                    t_p, hist = produce(confs[name], topic, args.records, args.size)
                    cpu1 = broker_cpu(b)
                    t_c = consume(confs[name], topic, args.records, args.partitions)
                    cpu2 = broker_cpu(b)
                    row = {"produce": args.records / t_p, "consume": args.records / t_c,
                           "p50": hist.percentile(50) / 1000, "p99": hist.percentile(99) / 1000, "max": hist.max / 1000,
                           "cpu_p": (cpu1 - cpu0) / args.records * 1e6, "cpu_c": (cpu2 - cpu1) / args.records * 1e6}
                    rows[name].append(row)
                    print(f"{name:<10} {row['produce']:>14,.0f} {mb / t_p:>8.1f} {row['p50']:>8.2f} {row['p99']:>8.2f} "
                          f"{row['max']:>8.2f} {row['consume']:>14,.0f} {mb / t_c:>8.1f} "
                          f"{row['cpu_p']:>11.2f} + {row['cpu_c']:<10.2f}", flush=True)
            med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in rows.items()}
            print("medians:")
            for name, m in med.items():
                print(f"{name:<10} produce {m['produce']:,.0f} rec/s (p99 {m['p99']:.2f} ms), consume "
                      f"{m['consume']:,.0f} rec/s, broker CPU {m['cpu_p']:.2f} µs/record producing, "
                      f"{m['cpu_c']:.2f} consuming")
            s, p = med["SSL"], med["PLAINTEXT"]
            print(f"SSL over PLAINTEXT: produce {s['produce'] / p['produce']:.2f}, consume "
                  f"{s['consume'] / p['consume']:.2f}, broker CPU producing {s['cpu_p'] / p['cpu_p']:.2f}, "
                  f"consuming {s['cpu_c'] / p['cpu_c']:.2f}")
        finally:
            b.stop()


if __name__ == "__main__":
    main()
