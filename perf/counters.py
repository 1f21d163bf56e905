"""Slots of the shared int64 counters each load process updates and the parent reads for live progress."""

RECORDS, BYTES, ERRORS, REQUESTS, STARTED, LAST = range(6)   # STARTED/LAST: monotonic ns, first send / latest record
COUNTERS = 6
