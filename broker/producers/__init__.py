"""Idempotent producers: producer ids, per-partition producer state, its snapshots.

`ids` hands out producer ids that are never reused (blocks persisted by the supervisor); `state` keeps,
per partition and producer, the epoch and the last appended batches so a retried batch is answered with
its original offset; `snapshot` persists that state; `owner` wires it into the partition owner's append path.
"""
