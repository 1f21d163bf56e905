"""Prometheus text exposition of the broker: worker counter blocks, partition state, rings, processes.

Runs in the supervisor (from the /metrics thread) and only reads: the counter blocks the workers write,
the partition-state table, the ring headers, the metadata snapshot and psutil. Per-worker counters are
summed per API / topic where a per-worker series would only multiply the series count.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from broker.metrics.block import MetricsRegion
from broker.shm import layout as L

_NB = L.BUCKETS
_LE = tuple(f"{b / 1e6:g}" for b in L.LATENCY_BOUNDS_US) + ("+Inf",)


def broker_version() -> str:
    try:
        return version("hpbroker")
    except PackageNotFoundError:
        return "unknown"


def _esc(v) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Text:
    """Accumulates families; each family's HELP/TYPE is written once, before its first sample."""

    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value, **labels) -> None:
        v = repr(float(value)) if isinstance(value, float) else str(value)
        if labels:
            lab = ",".join(f'{k}="{_esc(x)}"' for k, x in labels.items())
            self.lines.append(f"{name}{{{lab}}} {v}")
        else:
            self.lines.append(f"{name} {v}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _api_names() -> dict[int, str]:
    from netio.codec.apis import APIS

    return {k: a.name for k, a in APIS.items()}


def _error_names() -> dict[int, str]:
    from netio.codec import ErrorCode

    return {int(e): e.name for e in ErrorCode}


def _process_stats(pid: int) -> tuple[float, int] | None:
    import psutil

    try:
        p = psutil.Process(pid)
        with p.oneshot():
            t = p.cpu_times()
            return t.user + t.system, p.memory_info().rss
    except (psutil.Error, OSError):
        return None


def _dir_size(path: str) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.name.endswith(".log"):
                    try:
                        total += e.stat().st_blocks * 512  # preallocated segments: bytes on disk
                    except OSError:
                        pass
    except OSError:
        pass
    return total


def render(sup) -> str:
    """The whole /metrics page for supervisor `sup`."""
    t = Text()
    cfg = sup.config
    md = sup.metadata
    region: MetricsRegion = sup.metrics
    views = region.views() if region is not None else []
    apis = _api_names()
    errs = _error_names()

    listeners = ",".join(map(str, sup.bound))
    t.family("hpbroker_info", "gauge", "Broker version and configuration (value is always 1).")
    t.sample("hpbroker_info", 1, version=broker_version(), broker_id=cfg["broker.id"], listeners=listeners,
             network_threads=cfg["num.network.threads"], io_threads=cfg["num.io.threads"])
    t.family("hpbroker_start_time_seconds", "gauge", "Supervisor start time, seconds since the epoch.")
    t.sample("hpbroker_start_time_seconds", float(sup.started_at))

    # -- processes -------------------------------------------------------------------------------------
    t.family("hpbroker_worker_restarts_total", "counter", "Times a worker process was restarted.")
    for w in sup.workers:
        t.sample("hpbroker_worker_restarts_total", w.restarts, role=w.role, worker=w.index)
    t.family("hpbroker_worker_up", "gauge", "1 while the worker process runs; the pid label names it.")
    for w in sup.workers:
        t.sample("hpbroker_worker_up", 1 if w.pid else 0, role=w.role, worker=w.index, pid=w.pid)
    procs = [("supervisor", 0, os.getpid())] + [(w.role, w.index, w.pid) for w in sup.workers if w.pid]
    stats = [(r, i, _process_stats(pid)) for r, i, pid in procs]
    t.family("hpbroker_process_cpu_seconds_total", "counter", "User plus system CPU time of each process.")
    for r, i, st in stats:
        if st:
            t.sample("hpbroker_process_cpu_seconds_total", round(st[0], 3), role=r, worker=i)
    t.family("hpbroker_process_resident_memory_bytes", "gauge", "Resident set size of each process.")
    for r, i, st in stats:
        if st:
            t.sample("hpbroker_process_resident_memory_bytes", st[1], role=r, worker=i)

    # -- per-worker scalars ----------------------------------------------------------------------------
    started = [v for v in views if v.pid]
    per_worker = (
        ("hpbroker_connections_open", "gauge", "Client connections open now.", L.MS_CONN_OPEN, "network"),
        ("hpbroker_connections_created_total", "counter",
         "Client connections taken on (accepted here or handed over).", L.MS_CONN_CREATED, "network"),
        ("hpbroker_connections_closed_total", "counter", "Client connections closed.", L.MS_CONN_CLOSED, "network"),
        ("hpbroker_connections_handed_off_total", "counter",
         "Accepted connections passed to the network worker holding the fewest.", L.MS_CONN_HANDED_OFF, "network"),
        ("hpbroker_network_bytes_in_total", "counter", "Bytes read from client sockets.", L.MS_NET_BYTES_IN,
         "network"),
        ("hpbroker_network_bytes_out_total", "counter", "Bytes written to client sockets.", L.MS_NET_BYTES_OUT,
         "network"),
        ("hpbroker_worker_requests_total", "counter", "Requests received by each network worker.", L.MS_REQUESTS,
         "network"),
        ("hpbroker_backpressure_events_total", "counter",
         "Requests that found their ring to a partition owner full and waited.", L.MS_BACKLOG_EVENTS, "network"),
        ("hpbroker_arena_appends_total", "counter",
         "Appends whose records the owner read in place from the receive arena instead of the ring.",
         L.MS_ARENA_REFS, "network"),
        ("hpbroker_successful_authentications_total", "counter",
         "Clients a SASL listener let in.", L.MS_SASL_LOGINS, "network"),
        ("hpbroker_failed_authentications_total", "counter",
         "SASL logins refused: wrong password, unknown user or a malformed exchange.", L.MS_SASL_FAILURES,
         "network"),
        ("hpbroker_authorization_denials_total", "counter",
         "Authorization checks the ACLs refused (a Produce counts each refused partition).", L.MS_AUTHZ_DENIALS,
         "network"),
        ("hpbroker_paused_reads_total", "counter",
         "Times a connection stopped being read because it owed too much.", L.MS_PAUSED_READS, "network"),
        ("hpbroker_io_messages_total", "counter", "Ring messages handled by each I/O worker.", L.MS_IO_MESSAGES,
         "io"),
        ("hpbroker_grouped_appends_total", "counter",
         "Appends handed to a partition's log together with others queued for it (one write when they fit "
         "the segment).", L.MS_GROUPED_APPENDS, "io"),
        ("hpbroker_owned_partitions", "gauge", "Partitions each I/O worker owns.", L.MS_PARTITIONS, "io"),
        ("hpbroker_log_cleaner_passes_total", "counter",
         "Compaction passes each I/O worker swapped into its partitions' logs.", L.MS_CLEANER_PASSES, "io"),
        ("hpbroker_log_cleaner_records_removed_total", "counter",
         "Records compaction removed (superseded by a later record of their key, or expired tombstones).",
         L.MS_CLEANER_RECORDS_REMOVED, "io"),
        ("hpbroker_log_cleaner_bytes_freed_total", "counter",
         "Segment bytes compaction freed: what its passes read minus what they wrote.", L.MS_CLEANER_BYTES_FREED,
         "io"),
        ("hpbroker_quota_throttled_produce_total", "counter",
         "Produce requests over a client quota (producer_byte_rate): answered with a throttle time.",
         L.MS_THROTTLED_PRODUCE, "network"),
        ("hpbroker_quota_throttled_fetch_total", "counter",
         "Fetch requests over a client quota (consumer_byte_rate): answered empty with a throttle time.",
         L.MS_THROTTLED_FETCH, "network"),
        ("hpbroker_quota_throttled_request_total", "counter",
         "Requests over a client's request_percentage quota: answered with a throttle time.",
         L.MS_THROTTLED_REQUEST, "network"),
        ("hpbroker_quota_throttle_ms_total", "counter",
         "Milliseconds of throttle time given to clients over their quotas; their connections were not read "
         "meanwhile.", L.MS_THROTTLE_MS, "network"),
    )
    for name, kind, help_, idx, role in per_worker:
        t.family(name, kind, help_)
        for v in started:
            if v.role == role:
                t.sample(name, int(v.scalars[idx]), role=v.role, worker=v.index)

    # -- totals ----------------------------------------------------------------------------------------
    if views:
        per_slot = np.sum([v.per_slot for v in views], axis=0)
        scal = np.sum([v.scalars for v in views], axis=0)
        requests = np.sum([v.requests for v in views], axis=0)
        errors = np.sum([v.errors for v in views], axis=0)
        latency = np.sum([v.latency for v in views], axis=0)
    else:
        per_slot = np.zeros((len(L.SLOT_COUNTERS), 1), dtype=np.int64)
        scal = np.zeros(L.MB_SCALAR_WORDS, dtype=np.int64)
        requests = np.zeros(L.API_SLOTS, dtype=np.int64)
        errors = np.zeros((L.API_SLOTS, L.ERROR_SLOTS), dtype=np.int64)
        latency = np.zeros((len(L.STAGES), L.API_SLOTS, _NB + 2), dtype=np.int64)
    t.family("hpbroker_bytes_in_total", "counter", "Record-batch bytes appended to partition logs.")
    t.sample("hpbroker_bytes_in_total", int(scal[L.MS_BYTES_IN]))
    t.family("hpbroker_records_in_total", "counter", "Records appended to partition logs.")
    t.sample("hpbroker_records_in_total", int(scal[L.MS_RECORDS_IN]))
    t.family("hpbroker_bytes_out_total", "counter", "Record-batch bytes returned by Fetch.")
    t.sample("hpbroker_bytes_out_total", int(per_slot[2].sum()))

    # -- per API ---------------------------------------------------------------------------------------
    t.family("hpbroker_requests_total", "counter", "Requests received, per API.")
    for k in np.nonzero(requests)[0]:
        t.sample("hpbroker_requests_total", int(requests[k]), api=apis.get(int(k), str(k)))
    t.family("hpbroker_errors_total", "counter", "Responses carrying a non-zero error code, per API and error "
             "(one per partition or resource that failed).")
    for k, c in zip(*np.nonzero(errors)):
        code = int(c) - 1
        t.sample("hpbroker_errors_total", int(errors[k, c]), api=apis.get(int(k), str(k)),
                 error=errs.get(code, str(code)), code=code)
    t.family("hpbroker_request_latency_seconds", "histogram",
             "Request latency per API and stage: queue (framed to dispatched), io (dispatched to answered, "
             "partition owner included), send (answered to written), total; owner: one partition's append "
             "inside its I/O worker.")
    for s, stage in enumerate(L.STAGES):
        for k in np.nonzero(latency[s, :, _NB])[0]:
            row = latency[s, k]
            api = apis.get(int(k), str(k))
            cum = 0
            for b in range(_NB):
                cum += int(row[b])
                t.sample("hpbroker_request_latency_seconds_bucket", cum, api=api, stage=stage, le=_LE[b])
            t.sample("hpbroker_request_latency_seconds_sum", float(row[_NB + 1]) / 1e6, api=api, stage=stage)
            t.sample("hpbroker_request_latency_seconds_count", int(row[_NB]), api=api, stage=stage)

    # -- rings -----------------------------------------------------------------------------------------
    shared = sup.shared
    if shared is not None:
        t.family("hpbroker_ring_used_bytes", "gauge", "Bytes waiting in each shared-memory ring.")
        t.family("hpbroker_ring_capacity_bytes", "gauge", "Capacity of each shared-memory ring.")
        t.family("hpbroker_ring_full_events_total", "counter", "Times a producer found the ring full.")
        rings = []
        for n in range(shared.n_net):
            for m in range(shared.n_io):
                rings.append(("request", n, m, shared.req[n][m]))
                rings.append(("completion", n, m, shared.done[n][m]))
        for direction, n, m, r in rings:
            st = r.stats
            lab = dict(direction=direction, network=n, io=m)
            t.sample("hpbroker_ring_used_bytes", st.waiting_bytes, **lab)
            t.sample("hpbroker_ring_capacity_bytes", st.capacity, **lab)
            t.sample("hpbroker_ring_full_events_total", st.full_events, **lab)

    # -- topics and partitions -------------------------------------------------------------------------
    if md is not None:
        topic_rows = (("hpbroker_topic_bytes_in_total", "Record-batch bytes appended, per topic.", 0),
                      ("hpbroker_topic_records_in_total", "Records appended, per topic.", 1),
                      ("hpbroker_topic_bytes_out_total", "Record-batch bytes returned by Fetch, per topic.", 2))
        slots_of = {name: [p.slot for p in ti.partitions if 0 <= p.slot < per_slot.shape[1]]
                    for name, ti in md.topics.items()}
        for name, help_, c in topic_rows:
            t.family(name, "counter", help_)
            for topic, slots in slots_of.items():
                t.sample(name, int(per_slot[c, slots].sum()), topic=topic)
        gauges = (("hpbroker_partition_log_end_offset", "Log end offset."),
                  ("hpbroker_partition_high_watermark", "High watermark."),
                  ("hpbroker_partition_log_start_offset", "Log start offset."))
        states = {}
        for ti in md.topics.values():
            for p in ti.partitions:
                try:
                    states[(ti.name, p.partition)] = sup.shared.table.read(p.slot)
                except Exception:
                    continue
        for i, (name, help_) in enumerate(gauges):
            t.family(name, "gauge", help_)
            for (topic, part), st in states.items():
                if st.log_end_offset >= 0:
                    t.sample(name, st[i], topic=topic, partition=part)
        t.family("hpbroker_partition_size_bytes", "gauge", "Bytes of segment files on disk.")
        for (topic, part), st in states.items():
            if st.log_end_offset >= 0:
                try:
                    where = sup.partition_dir(topic, part)
                except Exception:  # the topic is being deleted while we look
                    continue
                t.sample("hpbroker_partition_size_bytes", _dir_size(where), topic=topic, partition=part)
        _replication(t, md, cfg["broker.id"])
    _groups(t, sup)
    t.family("hpbroker_scrape_time_seconds", "gauge", "When this page was rendered.")
    t.sample("hpbroker_scrape_time_seconds", round(time.time(), 3))
    return t.text()


def _replication(t: Text, md, broker_id: int) -> None:
    """ISR and replica counts of the partitions hosted here (a broker reports only its own, so a cluster's
    series are not repeated by every broker), and how many of those led here lack in-sync replicas (each
    under-replicated partition is counted once in the cluster: by its leader; so is one led by another than
    its preferred replica)."""
    hosted = [(ti.name, p) for ti in md.topics.values() for p in ti.partitions if p.slot >= 0]
    t.family("hpbroker_partition_isr_size", "gauge", "In-sync replicas of each partition hosted here.")
    for topic, p in hosted:
        t.sample("hpbroker_partition_isr_size", len(p.isr), topic=topic, partition=p.partition)
    t.family("hpbroker_partition_replicas", "gauge", "Replicas (assigned brokers) of each partition hosted here.")
    for topic, p in hosted:
        t.sample("hpbroker_partition_replicas", len(p.replicas), topic=topic, partition=p.partition)
    t.family("hpbroker_under_replicated_partitions", "gauge",
             "Partitions led by this broker with fewer in-sync replicas than replicas (a reassignment's "
             "adding replicas not counted, as Kafka counts them).")
    t.sample("hpbroker_under_replicated_partitions",
             sum(p.leader == broker_id and len(p.isr) < len(p.replicas) - len(p.adding) for _, p in hosted))
    t.family("hpbroker_reassigning_partitions", "gauge",
             "Partitions led by this broker whose replicas are being moved (a running reassignment).")
    t.sample("hpbroker_reassigning_partitions",
             sum(p.leader == broker_id and bool(p.adding or p.removing) for _, p in hosted))
    t.family("hpbroker_preferred_replica_imbalance", "gauge",
             "Partitions led by this broker whose preferred (first) replica is another broker.")
    t.sample("hpbroker_preferred_replica_imbalance",
             sum(p.leader == broker_id and bool(p.replicas) and p.replicas[0] != broker_id for _, p in hosted))


def _groups(t: Text, sup) -> None:
    """Committed offsets and lag per consumer group, when a group coordinator exposes them."""
    source = getattr(sup, "group_offsets", None)
    if source is None:
        return
    try:
        rows = source()  # [(group, topic, partition, committed_offset)]
    except Exception:
        return
    t.family("hpbroker_group_committed_offset", "gauge", "Committed offset per consumer group and partition.")
    t.family("hpbroker_group_lag", "gauge", "High watermark minus committed offset.")
    md = sup.metadata
    for group, topic, part, off in rows:
        t.sample("hpbroker_group_committed_offset", off, group=group, topic=topic, partition=part)
        ti = md.topics.get(topic) if md is not None else None
        if ti is not None and 0 <= part < len(ti.partitions) and ti.partitions[part].slot >= 0:
            hw = sup.shared.table.read(ti.partitions[part].slot).high_watermark
            t.sample("hpbroker_group_lag", max(0, hw - off), group=group, topic=topic, partition=part)
