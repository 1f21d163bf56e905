"""Fixed snapshots the renderer tests draw."""

from tools.top.snapshot import GroupRow, Header, LatencyRow, PartitionRow, Snapshot, Throughput, WorkerRow

BUSY = Snapshot(
    Header("http://127.0.0.1:9404/metrics", "0.1.0", 3725.0, "PLAINTEXT://127.0.0.1:9092", "2", "2"),
    Throughput(2.5 * 2**20, 2.4 * 2**20, 5000.0, tuple(float(i) for i in range(90)), (0.0,) * 30),
    (WorkerRow("network", 0, 123456, 45.2, 210 * 2**20, 1260.0, 0.02),
     WorkerRow("network", 1, 123457, 3.0, 143 * 2**20, 0.0, 0.0, restarts=2),
     WorkerRow("io", 0, 123458, 88.0, 2**30, 40.0, 0.93),
     WorkerRow("io", 1, 0, 0.0, 0, 0.0, 0.0)),
    tuple(PartitionRow("orders", i, 1200.0 - i, 23900, 23900 - (i == 0), 25 * 2**20) for i in range(12)),
    (GroupRow("billing", 4, 1200), GroupRow("audit", 2, 0)),
    (LatencyRow("Produce", 79.0, 4.06, 45.0), LatencyRow("Fetch", 45.0, 4.17, 96.3),
     LatencyRow("Heartbeat", 1.0, 3.75, 4.98), LatencyRow("OffsetCommit", 0.0, None, None)),
)

DOWN = Snapshot(Header("http://127.0.0.1:9/metrics", error="cannot read http://127.0.0.1:9/metrics: refused"))
