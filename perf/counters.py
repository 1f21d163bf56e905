"""Slots of the shared int64 counters each load process updates and the parent reads for live progress."""

# STARTED/LAST: monotonic ns, first send / latest record; CPU_NS: the process's CPU time (all its threads), set
# when it ends.
RECORDS, BYTES, ERRORS, REQUESTS, STARTED, LAST, CPU_NS = range(7)
COUNTERS = 7
