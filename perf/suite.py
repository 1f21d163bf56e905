"""The standard workloads W1-W7 and the null-sink ceiling, against brokers the suite starts itself.

Every workload is bounded in records (times `scale`) and in time; brokers run on loopback in temporary
directories (`tools.testing.BrokerProcess`). The result is a dated Markdown section for perf/RESULTS.md
with the machine, the commit, the equivalent `hpbroker perf` command of every row and its numbers.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from broker.config import available_cpus
from perf import runner
from perf.nullsink import NullSinkProcesses
from perf.runner import Workload
from perf.stalls import describe as describe_stalls, measure as measure_stalls


def _settled(run):
    """`run` after the page cache's dirty data is on disk, so one workload's writeback (the disk takes
    ~1 GB/s here, and the flusher's CPU is the machine's) does not land on the next workload."""
    def wrapper(*args, **kwargs):
        os.sync()
        return run(*args, **kwargs)
    return wrapper


run_produce, run_consume, run_e2e = (_settled(f) for f in (runner.run_produce, runner.run_consume, runner.run_e2e))


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[pid] = t.user + t.system
    return out


def _wait_seconds(pids: list[int]) -> dict[str, float] | None:
    """Seconds each thread of these processes spent ready to run but waiting for a CPU (the second field of
    /proc/<pid>/task/<tid>/schedstat), by thread; None where the kernel keeps no such account."""
    out = {}
    for pid in pids:
        for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                with open(path) as f:
                    out[path] = int(f.read().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
    return out or None


def metered(run, server_pids: list[int]):
    """`run` that also reports `server_cpu_s`: the CPU time the server's processes (a broker's supervisor and
    workers, or the null sink's processes) used during the run, and `server_wait_s`: the time their threads
    were ready to run but waited for a CPU that others held. A process that is gone at the end (a restarted
    worker) is left out."""
    def wrapper(w: Workload, progress=None) -> dict:
        before, waited = _cpu_seconds(server_pids), _wait_seconds(server_pids)
        r = dict(run(w, progress))
        after, waited_after = _cpu_seconds(server_pids), _wait_seconds(server_pids)
        r["server_cpu_s"] = sum(after[pid] - before[pid] for pid in after if pid in before)
        if waited is not None and waited_after is not None:
            r["server_wait_s"] = sum(waited_after[t] - waited[t] for t in waited_after if t in waited)
        return r
    return wrapper


def span_cores(r: dict, key: str = "server_cpu_s") -> float | None:
    """Seconds `key` of the result over the run's measured span (first send to last answer). Of
    `server_cpu_s` (or `client_cpu_s`): how many of the machine's cores the server (the load processes) kept
    busy on average. Of `server_wait_s`: how many of the server's threads were kept waiting for a core."""
    if r.get(key) is None or not r.get("records_per_sec"):
        return None
    return r[key] / (r["records"] / r["records_per_sec"])


TIME_LIMIT = 180.0
IDEMPOTENT = dict(idempotent=True, acks=-1, inflight=5)  # what Kafka's idempotent producer allows
RDKAFKA_BATCH_SIZE = 1_000_000  # librdkafka's (and so confluent-kafka's) default batch.size
CORES = available_cpus()  # what the brokers it starts would default to
STALL_SECONDS = 3.0  # the stall probe at full scale, at the start and at the end
PROBE_MB = 1024  # the page-cache probe at full scale: past the memory a guest keeps after freeing it
_WHEN = ("at the start", "at the end")  # the machine probes run before the first workload and after the last


def scaled(count: int, scale: float) -> int:
    """A workload's record count at `scale`, at least 1,000."""
    return max(1000, int(count * scale))


BASE = dict(time_limit=TIME_LIMIT, partitions=8)  # every workload: 8 partitions, bounded in time
PRODUCE_WORKLOADS = ("W1", "W2", "W3", "W4", "W7")
W3_BROKER = {"log.flush.interval.messages": 1}  # W3's broker: every append fsynced before it is answered


def produce_workload(name: str, bootstrap: str, scale: float = 1.0) -> Workload:
    """The first produce row of a standard workload, `scale` times its records (at least 1,000)."""
    def n(count: int) -> int:
        return scaled(count, scale)

    if name == "W1":
        return Workload(bootstrap, "w1", n(2_000_000), 1024, acks=1, producers=2, **BASE)
    if name == "W2":
        return Workload(bootstrap, "w2", n(5_000_000), 100, acks=1, producers=2, **BASE)
    if name == "W3":
        return Workload(bootstrap, "w3", n(300_000), 1024, acks=-1, producers=2, **BASE)
    if name == "W4":
        return Workload(bootstrap, "w4", n(100_000), 1024, acks=1, rate=10_000, batch_size=16384, inflight=5,
                        **BASE)
    if name == "W7":
        return Workload(bootstrap, "w7", n(500_000), 1024, acks=1, producers=1, client="confluent", linger_ms=5,
                        **BASE)
    raise ValueError(f"no produce workload {name!r}: one of {', '.join(PRODUCE_WORKLOADS)}")


def key_of(w: Workload) -> str:
    """What a row is judged by: p99 latency at a fixed rate, records/s at max rate."""
    return "p99" if w.rate else "records_per_sec"


def _key(result: dict, key: str) -> float:
    return result["latency_ms"]["p99"] if key == "p99" else result[key]


def median_run(results: list[dict], key: str) -> dict:
    """The run whose `key` is the median (of an even count, the worse of the middle two), whole: every column
    of a row comes from one run. `runs` keeps every run's key value; errors and failures count every run."""
    worse_first = sorted(results, key=lambda r: _key(r, key), reverse=key == "p99")
    chosen = dict(worse_first[(len(worse_first) - 1) // 2])
    chosen["runs"] = [_key(r, key) for r in results]
    chosen["errors"] = sum(r["errors"] for r in results)
    chosen["failures"] = [f for r in results for f in r.get("failures", [])]
    return chosen


def repeated(run, w: Workload, times: int, progress=None, fresh: bool = False) -> dict:
    """`run` `times` times; `fresh` deletes the topic between runs, so repeated produce runs do not pile up
    their records on the disk (each run re-creates it)."""
    results = []
    for i in range(times):
        if i and fresh:
            runner.delete_topic(w)
        results.append(run(w, progress))
    return median_run(results, key_of(w))


def paired(run_broker, run_sink, w: Workload, sink_bootstrap: str, times: int, progress=None) -> dict:
    """One client's rate through the broker as a fraction of its rate against the null sink (``of_sink``).

    Each broker run is paired with a sink run just before or after it, the order alternating, so that both
    see the machine in the same minute: on a shared VM the client's own rate moves by a third from one
    quarter hour to the next, more than the broker costs it. The result is the broker run of the pair with
    the median fraction, whole; ``runs`` are the fractions, ``sink_runs`` the sink's rates."""
    at_sink = replace(w, bootstrap=sink_bootstrap)
    results = []
    for i in range(times):
        if i:
            runner.delete_topic(w)
        if i % 2 == 0:
            s = run_sink(at_sink, progress)
            b = dict(run_broker(w, progress))
        else:
            b = dict(run_broker(w, progress))
            s = run_sink(at_sink, progress)
        b["sink_records_per_sec"] = s["records_per_sec"]
        b["of_sink"] = b["records_per_sec"] / s["records_per_sec"] if s["records_per_sec"] else 0.0
        results.append(b)
    chosen = median_run(results, "of_sink")
    chosen["sink_runs"] = [r["sink_records_per_sec"] for r in results]
    return chosen


TARGETS = {
    "W1": "≥ 1,000,000 rec/s (1 GB/s)", "W2": "≥ 3,000,000 rec/s", "W4": "produce-to-ack p99 ≤ 1 ms",
    "W5": "≥ 2 GB/s", "W7": "broker not the bottleneck (~250k rec/s client)",
}


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cores = f"{os.cpu_count()} cores" + (f" (the suite ran on {CORES})" if CORES != os.cpu_count() else "")
    guest = "".join(f"; {part}" for part in guest_settings())
    return (f"{model}, {cores}, Linux {platform.release()}, Python {platform.python_version()}{guest}; "
            f"load average at the end {load} (the machine is shared)")


def guest_settings(sys_root: str = "/sys") -> list[str]:
    """What a virtual machine's kernel does with an idle core and with freed memory, where it says.

    Both set what a hand-off between two workers and a write into new page-cache pages cost, so results from
    two machines with the same CPU compare only if these match: a guest that halts an idle vCPU at once
    (``guest_halt_poll_ns`` 0) pays an exit to the host for every wakeup of a sleeping worker, and one that
    reports freed memory to its host gets those pages back through a fault in the host."""
    out = []
    driver = _sysfs(sys_root, "devices/system/cpu/cpuidle/current_driver")
    if driver:
        poll = _sysfs(sys_root, "module/haltpoll/parameters/guest_halt_poll_ns") if driver == "haltpoll" else None
        out.append(f"cpuidle {driver}" + (f", guest_halt_poll_ns {poll}" if poll is not None else ""))
    if _balloon_reports(sys_root):
        order = _sysfs(sys_root, "module/page_reporting/parameters/page_reporting_order")
        out.append("free page reporting to the host" + (f", order {order}" if order is not None else ""))
    return out


_VIRTIO_BALLOON = 5
_BALLOON_F_REPORTING = 5  # feature bit of the virtio balloon (virtio spec 5.5.3)


def _sysfs(sys_root: str, path: str) -> str | None:
    try:
        with open(os.path.join(sys_root, path)) as f:
            return f.read().strip()
    except OSError:
        return None


def _balloon_reports(sys_root: str) -> bool:
    """A virtio balloon that negotiated free page reporting: the guest hands freed memory back."""
    try:
        names = os.listdir(os.path.join(sys_root, "bus/virtio/devices"))
    except OSError:
        return False
    for name in names:
        device = _sysfs(sys_root, f"bus/virtio/devices/{name}/device")
        features = _sysfs(sys_root, f"bus/virtio/devices/{name}/features")  # a character per bit, bit 0 first
        if device == f"0x{_VIRTIO_BALLOON:04x}" and features is not None and \
                features[_BALLOON_F_REPORTING:_BALLOON_F_REPORTING + 1] == "1":
            return True
    return False
    for name in names:
        try:
            with open(os.path.join(base, name, "device")) as f:
                device = int(f.read().strip(), 16)
            with open(os.path.join(base, name, "features")) as f:
                features = f.read().strip()  # one character per feature bit, bit 0 first
        except (OSError, ValueError):
            continue
        if device == _VIRTIO_BALLOON and len(features) > _BALLOON_F_REPORTING \
                and features[_BALLOON_F_REPORTING] == "1":
            return True
    return False


def page_cache_write_rates(directory: str | None = None, megabytes: int = PROBE_MB) -> tuple[float, float, float]:
    """GB/s of 1 MB writes into a new file (all of it, and its slowest quarter), then over the same pages,
    each written as a log segment writes it (``pwritev_all``: page-cache folios of at most 32 KiB).

    Every produced byte lands in a page-cache page that did not exist before. On a VM that hands free
    memory back to its host (free page reporting, ballooning), a page the guest has reported costs a host
    fault on first touch, several times the copy itself; pages freed recently are reused without it. How
    much of each kind there is changes minute by minute, so the suite records it. The slowest quarter
    is the new-page cost once recently freed memory runs out; the last number is the copy alone.
    """
    from broker.log.segment import pwritev_all

    buf = bytes(1 << 20)
    quarter = max(1, megabytes // 4)
    fd, path = tempfile.mkstemp(prefix="hpbroker-probe-", dir=directory)
    try:
        times = []
        for i in range(4 * quarter):
            if i % quarter == 0:
                times.append(time.perf_counter())
            pwritev_all(fd, [buf], i << 20, len(buf))
        end = time.perf_counter()
        for i in range(4 * quarter):
            pwritev_all(fd, [buf], i << 20, len(buf))
        again = time.perf_counter() - end
    finally:
        os.close(fd)
        os.unlink(path)
    gb = quarter / 1024
    slowest = max(b - a for a, b in zip(times, times[1:] + [end]))
    return 4 * gb / (end - times[0]), gb / slowest, 4 * gb / again


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line(verb: str, w: Workload) -> str:
    parts = [f"hpbroker perf {verb} --bootstrap B --topic {w.topic} --num-records {w.num_records}"]
    if verb != "consume":
        parts.append(f"--record-size {w.record_size} --partitions {w.partitions} "
                     f"--acks {'all' if w.acks == -1 else w.acks} --producers {w.producers} "
                     f"--batch-size {w.batch_size}")
        if w.linger_ms:
            parts.append(f"--linger-ms {w.linger_ms:g}")
        if w.rate:
            parts.append(f"--rate {w.rate:g}")
        parts.append(f"--inflight {w.inflight}")
    if w.connections != 1:
        parts.append(f"--connections {w.connections}")
    if verb != "produce":
        parts.append(f"--consumers {w.consumers}")
    if w.client != "native":
        parts.append(f"--client {w.client}")
    if w.discard_records:
        parts.append("--discard-records")
    if w.idempotent:
        parts.append("--idempotent")
    return " ".join(parts)


def _row(name: str, what: str, verb: str, w: Workload, r: dict, note: str = "", judged: bool = True,
         key: str | None = None) -> dict:
    """`judged`: the row is the one its workload's target is read from (not a setup or companion row).
    `key`: what its runs were ranked by, when not the workload's own (`of_sink` for paired runs)."""
    return {"name": name, "what": what, "command": command_line(verb, w), "result": r, "note": note,
            "target": TARGETS.get(name, "") if judged else "", "key": key or key_of(w)}


@contextlib.contextmanager
def temp_broker(network: int = CORES, io: int = CORES, settings: dict | None = None, source: str | None = None):
    """A broker in a temp dir; its log tail goes to stderr when it stops, keeping stdout for the results.
    `settings` win over `network` and `io`; `source`: a source tree to run it from."""
    from tools.testing import BrokerProcess

    b = BrokerProcess(network_threads=network, io_threads=io, settings=settings, source=source).start()
    try:
        yield b
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            b.close()


def run_suite(scale: float = 1.0, only: set[str] | None = None, progress=None, repeat: int = 1) -> str:
    import hotpath

    hotpath.warmup()
    probe_mb = max(4, round(PROBE_MB * min(scale, 1.0)))  # in proportion to what a scaled-down suite writes
    probes = [page_cache_write_rates(megabytes=probe_mb)]
    stall_s = max(0.5, STALL_SECONDS * min(scale, 1.0))
    stall_probe = _settled(measure_stalls)  # the machine's stalls, not the flusher writing the last workload out
    stalls = [describe_stalls(stall_probe(stall_s))]
    want = {o.upper() for o in (only or set())}

    def on(name: str) -> bool:
        return not want or name in want

    def n(count: int) -> int:
        return scaled(count, scale)

    server: list[int] = []  # the pids of the broker (or sink) the rows below run against

    def produce(w: Workload, times: int = repeat) -> dict:
        return repeated(metered(run_produce, server), w, times, progress, fresh=True)

    def paired_with_sink(w: Workload, sink) -> dict:
        """W7's runs through the broker the rows run against, each paired with one against `sink`."""
        return paired(metered(run_produce, server), run_produce, w, sink.bootstrap, repeat, progress)

    def consume(w: Workload) -> dict:
        return repeated(metered(run_consume, server), w, repeat, progress)

    def e2e(w: Workload) -> dict:
        return repeated(metered(run_e2e, server), w, repeat, progress, fresh=True)

    rows: list[dict] = []
    if on("NS"):
        # The native client against two sink processes, each a broker leading half the partitions, so
        # each of its two producer or consumer processes has a sink process of its own; confluent-kafka
        # against one, as W7 runs it against one broker.
        for sinks, runs in (
            (2, [(Workload("", "ns1", n(4_000_000), 1024, producers=2, **BASE), "produce"),
                 (Workload("", "ns2", n(10_000_000), 100, producers=2, **BASE), "produce"),
                 (Workload("", "ns1", n(4_000_000), consumers=2, **BASE), "consume"),
                 (Workload("", "ns1", n(4_000_000), consumers=2, discard_records=True, **BASE), "consume")]),
            (1, [(Workload("", "ns3", n(500_000), 1024, client="confluent", linger_ms=5, **BASE), "produce"),
                 (Workload("", "ns4", n(500_000), 1024, client="confluent", linger_ms=5,
                           batch_size=RDKAFKA_BATCH_SIZE, **BASE), "produce"),
                 (Workload("", "ns5", n(500_000), 1024, client="confluent", linger_ms=5, **IDEMPOTENT, **BASE),
                  "produce")]),
        ):
            note = "sink: 1 process" if sinks == 1 else f"sink: {sinks} processes, each a broker on its own port"
            with NullSinkProcesses(processes=sinks) as sink:
                server[:] = [p.pid for p in sink.procs]
                for w, verb in runs:
                    w = replace(w, bootstrap=sink.bootstrap)
                    r = repeated(metered(run_produce if verb == "produce" else run_consume, server), w, repeat,
                                 progress)
                    what = f"null sink ceiling, {verb} {w.record_size} B ({w.client}"
                    what += ", 1 MB batches" if w.batch_size == RDKAFKA_BATCH_SIZE else ""
                    what += ", idempotent" if w.idempotent else ""
                    what += ", bodies discarded)" if w.discard_records else ")"
                    rows.append(_row("NS", what, verb, w, r, note + "; generator and sink share the cores"))
    if any(on(x) for x in ("W1", "W2", "W4", "W5", "W7")):
        with temp_broker() as b:
            server[:] = b.pids()
            bs = b.bootstrap
            if on("W1"):
                w = produce_workload("W1", bs, scale)
                rows.append(_row("W1", "1 KiB, acks=1, 8 partitions, max rate", "produce", w, produce(w)))
                w = replace(w, topic="w1m", batch_size=RDKAFKA_BATCH_SIZE)
                rows.append(_row("W1", "the same with 1 MB batches", "produce", w, produce(w),
                                 "batch.size 1,000,000: librdkafka's default"))
                w = replace(w, topic="w1i", batch_size=65536, **IDEMPOTENT)
                rows.append(_row("W1", "the first W1 row, idempotent (acks=all, 5 requests in flight)", "produce", w,
                                 produce(w), "each producer process a producer id of its own, sequences per "
                                 "partition", judged=False))
            if on("W2"):
                w = produce_workload("W2", bs, scale)
                rows.append(_row("W2", "100 B, acks=1, 8 partitions, max rate", "produce", w, produce(w)))
            if on("W4"):
                w = produce_workload("W4", bs, scale)
                rows.append(_row("W4", "1 KiB at a fixed 10k records/s, produce-to-ack latency", "produce", w,
                                 produce(w), "linger 0: a request leaves as soon as a record is due; "
                                 "records already due ride together, up to 16 KiB; 5 requests in flight, the "
                                 "Kafka producer's max.in.flight.requests.per.connection default"))
                w = replace(w, topic="w4e2e", num_records=n(50_000))
                rows.append(_row("W4", "1 KiB at 10k records/s, end-to-end (produce to consumer receipt)", "e2e",
                                 w, e2e(w), "latency column: end to end", judged=False))
            if on("W5"):
                w = Workload(bs, "w5", n(3_000_000), 1024, acks=1, producers=2, **BASE)
                fill = produce(w, times=1)
                rows.append(_row("W5", "backlog fill (produce)", "produce", w, fill,
                                 "run once: the backlog the next row reads", judged=False))
                w = replace(w, consumers=2)
                rows.append(_row("W5", "consume the backlog from offset 0", "consume", w, consume(w)))
                w = replace(w, discard_records=True)
                rows.append(_row("W5", "the same, record bodies dropped in the consumers' kernel", "consume", w,
                                 consume(w), "each batch's header read, its body never copied to the consumer "
                                 "(MSG_TRUNC): what the broker serves without the client's copy", judged=False))
            if on("W7"):
                with NullSinkProcesses(processes=1) as sink:
                    w = produce_workload("W7", bs, scale)
                    rows.append(_row("W7", "one confluent-kafka producer, 1 KiB, acks=1", "produce", w,
                                     paired_with_sink(w, sink), "linger.ms=5, batch.size=64 KiB", key="of_sink"))
                    w = replace(w, topic="w7d", batch_size=RDKAFKA_BATCH_SIZE)
                    rows.append(_row("W7", "the same with the client's default batch.size", "produce", w,
                                     paired_with_sink(w, sink), "linger.ms=5, batch.size=1,000,000 (both defaults)",
                                     key="of_sink"))
                    w = replace(w, topic="w7i", batch_size=65536, **IDEMPOTENT)
                    rows.append(_row("W7", "the first W7 row, idempotent (acks=all, 5 requests in flight)",
                                     "produce", w, paired_with_sink(w, sink),
                                     "enable.idempotence=true, acks=all, at most 5 requests in flight: the Java "
                                     "producer's defaults since Kafka 3.0", judged=False, key="of_sink"))
    if on("W7"):
        with temp_broker(network=1, io=1) as b, NullSinkProcesses(processes=1) as sink:
            server[:] = b.pids()
            w = produce_workload("W7", b.bootstrap, scale)
            rows.append(_row("W7", "the first W7 row, against a broker with one network and one I/O worker",
                             "produce", w, paired_with_sink(w, sink),
                             "num.network.threads=1, num.io.threads=1: one producer's requests keep one I/O "
                             "worker busy instead of two", judged=False, key="of_sink"))
    if on("W3"):
        with temp_broker(settings=W3_BROKER) as b:
            server[:] = b.pids()
            w = produce_workload("W3", b.bootstrap, scale)
            rows.append(_row("W3", "1 KiB, acks=all, log.flush.interval.messages=1", "produce", w,
                             produce(w)))
    if on("W6"):
        for net in (1, 2):
            for io in (1, 2):
                with temp_broker(network=net, io=io) as b:
                    server[:] = b.pids()
                    w = replace(produce_workload("W1", b.bootstrap, scale), topic="w6", num_records=n(1_000_000))
                    rows.append(_row("W6", f"W1 with num.network.threads={net}, num.io.threads={io}", "produce",
                                     w, produce(w)))
    probes.append(page_cache_write_rates(megabytes=probe_mb))
    stalls.append(describe_stalls(stall_probe(stall_s)))
    return render_section(rows, scale, repeat, probes, probe_mb, stalls)


def _spread(values: list[float], key: str, r: dict | None = None) -> str:
    """The range of a row's runs, in the unit of its key: "3 runs: 0.56-1.26M", "3 runs: p99 1.41-2.20 ms" or,
    for paired runs (`r` the row's result), "3 pairs: 0.64 (0.61-0.66) of the sink (sink 251-281k)"."""
    lo, hi = min(values), max(values)
    if key == "of_sink":
        text = f"{lo:.2f}" if len(values) == 1 else f"{r['of_sink']:.2f} ({lo:.2f}-{hi:.2f})"
        sink = _spread(r["sink_runs"], "records_per_sec").split(": ", 1)[1]
        return f"{len(values)} pair{'s' if len(values) != 1 else ''}: {text} of the sink (sink {sink})"
    if key == "p99":
        unit, scaled = " ms", [f"{v:.2f}" for v in (lo, hi)]
    elif hi >= 1e6:
        unit, scaled = "M", [f"{v / 1e6:.2f}" for v in (lo, hi)]
    else:
        unit, scaled = "k", [f"{v / 1e3:.0f}" for v in (lo, hi)]
    text = scaled[0] if len(values) == 1 else "-".join(scaled)
    return f"{len(values)} run{'s' if len(values) != 1 else ''}: {'p99 ' if key == 'p99' else ''}{text}{unit}"


def render_section(rows: list[dict], scale: float, repeat: int = 1,
                   probes: list[tuple[float, float, float]] = (), probe_mb: int = PROBE_MB,
                   stalls: list[str] = ()) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"## perf suite, {now}", "",
           f"Machine: {machine()}.", ""]
    if stalls:
        at = "; ".join(f"{when}: {text}" for text, when in zip(stalls, _WHEN))
        out += [f"Time the machine took from busy cores (`hpbroker perf stalls`; a record due while its "
                f"process's core is taken waits it out, whatever the broker does): {at}.", ""]
    if probes:
        at = "; ".join(f"{when}, {new:.2f} into new pages (slowest quarter {slowest:.2f}), {again:.2f} over "
                       "the same pages" for (new, slowest, again), when in zip(probes, _WHEN))
        out += [f"Page cache, {probe_mb} MB of 1 MB writes to a temporary file as a log segment writes them, "
                f"GB/s: {at} (`perf.suite.page_cache_write_rates`: produce rows write every byte into new pages).",
                ""]
    out += [f"Commit: {commit()}. Scale: {scale:g}. Client and broker share the machine;",
            f"brokers started by `hpbroker perf suite` (num.network.threads = num.io.threads = {CORES} unless noted),",
            "loopback only. Latency is produce-to-ack from each record's scheduled send time (e2e: to consumer",
            "receipt). Each workload starts once earlier workloads' dirty pages are on disk (`sync`).",
            f"Each workload ran {repeat} time{'s' if repeat != 1 else ''}, a produce workload on a freshly created "
            "topic each time.",
            "A row is the run with the median records/s (at a fixed rate: the median p99; of an even count, the",
            "worse of the middle two), every column from that one run; `runs` gives the range over all runs,",
            "`errors` their sum.",
            "`server cores`: the CPU time of the broker's processes (NS: the sink's) during the run, over the run's",
            f"span from first send to last answer, so how many of the {CORES} cores the suite ran on it kept busy.",
            "`server waiting`: over the same span, the time the broker's threads were ready to run but waited for",
            "a core (schedstat: held by the client or by another of the broker's workers), so how many of them",
            "waited on average.",
            "`client cores`: the CPU time of the load processes (every thread, the client library's included), from",
            "their start to their end, over the same span.",
            "W7 (one confluent-kafka producer) pairs each run through the broker with a run of the same client",
            "against the null sink just before or after it, the order alternating; its row is the broker run of",
            "the pair with the median fraction of the sink's records/s; `runs` gives that fraction and their range.",
            "Commands below name the broker `B`.", "",
            "| workload | what | records | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | max ms | server cores "
            "| server waiting | client cores | errors | runs | target |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        r = row["result"]
        lat = r["latency_ms"]
        cores, waiting, client = span_cores(r), span_cores(r, "server_wait_s"), span_cores(r, "client_cpu_s")
        out.append(f"| {row['name']} | {row['what']} | {r['records']:,} | {r['records_per_sec']:,.0f} | "
                   f"{r['mb_per_sec']:,.1f} | {lat['p50']:.3f} | {lat['p99']:.3f} | {lat['p999']:.3f} | "
                   f"{lat['max']:.3f} | {'' if cores is None else f'{cores:.2f}'} | "
                   f"{'' if waiting is None else f'{waiting:.2f}'} | {'' if client is None else f'{client:.2f}'} | "
                   f"{r['errors']} | "
                   f"{_spread(r['runs'], row['key'], r)} | {row['target']} |")
    out += ["", "Commands:", ""]
    for row in rows:
        note = f" ({row['note']})" if row["note"] else ""
        out.append(f"- {row['name']}: `{row['command']}`{note}")
    failures = [f for row in rows for f in row["result"].get("failures", [])]
    if failures:
        out += ["", "Failures: " + "; ".join(failures[:5])]
    return "\n".join(out) + "\n"
