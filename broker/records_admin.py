"""Owner side of DeleteRecords: move the log start offset of the partitions this I/O worker owns.

A request naming partitions of several owners reaches each of them (broker/api/admin.py); each answers
only for the partitions it owns and the network worker merges the answers. The new log start is
published in the shared partition-state table at once, so ListOffsets(earliest) and Fetch see it.
"""

from __future__ import annotations

from broker.logfmt import Log

log = Log("hpbroker.records")

DELETE_RECORDS = 21


class RecordsAdmin:
    def __init__(self, worker):
        self.worker = worker
        self.handlers = {DELETE_RECORDS: self.delete_records}

    def delete_records(self, header, body: dict, reply, key: int) -> None:
        from broker.ioworker import error_code_for
        from netio.codec import ErrorCode

        topics = []
        for t in body["topics"]:
            parts = []
            for p in t["partitions"]:
                index, offset = p["partition_index"], p["offset"]
                op, mine = self.worker.owned_partition(t["name"], index)
                if not mine:
                    continue
                if op is None:
                    parts.append({"partition_index": index, "low_watermark": -1,
                                  "error_code": int(ErrorCode.NOT_LEADER_OR_FOLLOWER)})
                    continue
                try:
                    low = op.log.delete_records_before(offset)
                except Exception as e:
                    parts.append({"partition_index": index, "low_watermark": -1, "error_code": error_code_for(e)})
                    continue
                self.worker.publish(op)
                log.info("records deleted", topic=t["name"], partition=index, log_start=low)
                parts.append({"partition_index": index, "low_watermark": low, "error_code": 0})
            if parts:
                topics.append({"name": t["name"], "partitions": parts})
        reply({"throttle_time_ms": 0, "topics": topics})


def attach(worker) -> RecordsAdmin:
    return RecordsAdmin(worker)
