"""Byte layout of every shared-memory region hpbroker maps.

This is the only place where offsets into shared memory are defined; ``region``, ``ring`` and
``partitions`` import the constants below, so a layout change is one edit here plus a version
bump.  All integers are native-endian (little-endian on the supported x86-64 hosts) and every
8-byte field sits at an 8-byte aligned offset, so one ``struct.pack_into``/``unpack_from`` with a
native format is a single aligned 8-byte store/load: a reader never sees half a counter.
(Standard-size formats such as ``"<Q"`` are packed byte by byte by CPython and must not be used for
fields another process reads concurrently.)  The publish/consume orders below rely on x86-64 TSO:
stores become visible in program order and loads are not reordered with other loads; a weakly
ordered CPU would need release/acquire fences at the commit, head/tail and seqlock stores.  The one
reordering TSO allows (a store followed by a load) is handled by ``barrier.py``.

Every region starts with the same 64-byte preamble, written once by the creator before any other
process can know the region's name::

    preamble (64 bytes, read-only after create)
    +0   u32  magic      b"HPB1" (0x31425048)
    +4   u16  version    LAYOUT_VERSION; attach refuses a mismatch
    +6   u16  kind       KIND_RING | KIND_PARTITIONS | KIND_METRICS | KIND_ARENA | KIND_QUOTAS
    +8   u64  creator    pid of the creating process (only it unlinks)
    +16  u64  size       total region size in bytes
    +24  40 bytes reserved (zero)

Ring region (single producer, single consumer; ``ring.py``)::

    0            64            128           192                        192 + capacity
    | preamble   | producer    | consumer    | data: entries, back to back ...        |
                 | line        | line        |

    header field in the preamble's reserved area:
    +24  u64  capacity        data bytes, multiple of 8 (so attach needs only the name)

    producer line (written only by the producer)
    +64  u64  head            monotonic count of bytes published; index = head % capacity
    +72  u64  producer_sleep  0 = running; otherwise a ticket (1, 2, ...) while the producer sleeps
                              waiting for space; the consumer signals the "space" doorbell once per
                              ticket it sees
    +80  u64  full_events     times try_put/reserve found the ring full (metrics)
    +88  40 bytes reserved
    consumer line (written only by the consumer)
    +128 u64  tail            monotonic count of bytes consumed; head - tail = bytes in use
    +136 u64  consumer_sleep  0 = running; otherwise a ticket while the consumer sleeps waiting for
                              data; the producer signals the "data" doorbell once per ticket
    +144 48 bytes reserved

    entry (at data + start % capacity; start and size are multiples of 8; never wraps)
    +0   u64  commit   start + size: the head value this entry publishes.  Written LAST by the
                       producer and read FIRST by the consumer; any other value means the entry
                       is not (completely) written and the consumer treats the ring as empty.
                       A stale header from an earlier lap can never match (its end differs by a
                       multiple of capacity), and an all-zero ring matches nothing.
    +8   u32  length   payload bytes
    +12  u32  kind     caller-defined message kind; KIND_PAD = padding to the end of the data area
    +16  payload, then zero to 7 bytes of padding up to the next multiple of 8

    wrap rule: an entry that does not fit before the end of the data area is preceded by a PAD
    entry covering the rest of the area (or, when only 8 bytes remain, by nothing: fewer than
    ENTRY_HEADER bytes to the end is an implicit pad both sides skip). The same PAD also
    precedes an entry the producer puts into an empty ring past REWIND_AT (broker/shm/ring.py),
    so that a ring kept empty reuses the front of its area.

    entry states, as the consumer sees them at position tail:
      tail == head                 empty: nothing to read (the producer may be writing)
      tail <  head, commit != end  not yet visible (cannot happen with in-order stores; treated
                                   as empty, never applied)
      tail <  head, commit == end  complete: kind/length/payload may be read until advance()
      kind == KIND_PAD             skip to the start of the next lap

    publish order (producer):  payload -> length/kind -> commit -> head -> read consumer_sleep
    consume order (consumer):  head -> commit -> length/kind -> payload ... tail -> read
                               producer_sleep
    A producer killed anywhere before its head store leaves nothing visible; the next producer
    to attach continues from the published head and overwrites the torn bytes.

Partition-state table (``partitions.py``; each slot written by one I/O worker, read by all)::

    0            64                        64 + 64 * slots               + slots * watchers
    | preamble   | slot 0 | slot 1 | ...   | watch matrix (bytes)         |
    header fields in the preamble's reserved area:
    +24  u64  slots      number of slots
    +32  u64  watchers   number of network-worker watch columns

    slot (64 bytes, one cache line so writers of neighbouring slots never share a line)
    +0   u64  seq               seqlock: odd while the owner writes, +2 per publish, so it doubles
                                as the slot's "changed" counter for long-poll fetches
    +8   i64  log_end_offset
    +16  i64  high_watermark
    +24  i64  log_start_offset
    +32  i64  leader_epoch
    +40  u64  generation        bumped when the slot is claimed for a new topic incarnation
    +48  i64  tail_base         base offset of the segment the owner appends to (-1: not published)
    +56  i32  tail_bytes        bytes of batches in that segment
    +60  i32  tail_index        valid entries in that segment's offset index
                                Readers bound their walk and index search in that segment by these two:
                                its files are sparse past them, and trimmed to them when it is rolled,
                                so a size taken from the file just before a roll could reach past its end.

    watch matrix: byte [slot * watchers + w] = 1 while network worker w is parked on a long-poll
    fetch that waits for the slot; written only by worker w, read by the slot's owner after
    each publish to decide which workers' doorbells to ring.

Receive arena (``arena.py``; one per network worker, written only by it, read by I/O workers)::

    0            64                                              64 + capacity
    | preamble   | data: large request frames, as received from the socket       |
    header field in the preamble's reserved area:
    +24  u64  capacity   data bytes

    The data area holds no structure of its own.  The network worker receives a large Produce frame
    straight into a range of it and sends the partition owner an APPEND_REF (``broker/ipc.py``)
    naming (offset from the region start, length) of the records instead of copying them into the
    request ring.  Which ranges are in use is known only to that network worker: a range is
    reused once the request handler is done with its frame and every request ring that carried a
    reference into it has a consumer tail past that message (the owner appends, answers, and only
    then advances its tail).  A restarted network worker reuses nothing until every request ring it
    feeds is consumed past the head its predecessor left, so references still queued in the rings
    always point at the bytes they were sent with.

Metrics region (``broker/metrics/block.py``; block b written only by the worker process that owns it,
read by the supervisor's /metrics handler)::

    0            64                          64 + blocks * block_words * 8
    | preamble   | block 0 | block 1 | ...   |
    header fields in the preamble's reserved area:
    +24  u64  blocks        one per worker: network workers 0..N-1, then I/O workers 0..M-1
    +32  u64  block_words   i64 words per block (METRICS_BLOCK_WORDS)
    +40  u64  slots         partition slots covered by the per-slot arrays

    block (i64 words, offsets in words from the block start; every counter is monotonic except
    the gauges marked so; a restarted worker keeps counting from its predecessor's values)
    [0]      pid            of the process writing the block now (0: never started)
    [1]      role           1 network, 2 I/O
    [2]      index          worker index within its role
    [3]      started_ns     wall clock (time_ns) of the current incarnation's start
    [4..7]   reserved
    [8..39]  scalars        MS_* below: connections, bytes, requests, backpressure, ring fill gauges
    [40..]   requests       API_SLOTS words: requests received per api key
    then     errors         API_SLOTS x ERROR_SLOTS: responses per (api key, error code + 1);
                            code -1 (UNKNOWN_SERVER_ERROR) is column 0, code 0 is never counted
    then     latency        STAGES x API_SLOTS x (BUCKETS + 2): per (stage, api) the count of
                            observations per bucket (not cumulative; bucket i covers values up to
                            LATENCY_BOUNDS_US[i], the last one is +Inf), then the count, then the sum
                            in microseconds.  Stages: queue (framed -> dispatched), io (dispatched
                            -> answered: the handler and the partition owner's work), send (answered
                            -> last byte written, waiting behind earlier responses included), total,
                            and owner (written by I/O workers: one partition's append inside the
                            owner, counted under Produce).
    then     slot arrays    SLOT_COUNTERS x slots: bytes in, records in (I/O worker: appended),
                            bytes out (network worker: fetched), per partition-state slot

    Updates are single-writer read-modify-write of one aligned i64 (a numpy element): readers may
    see a value one update old, never a torn one.  Each counter is read independently, so a
    histogram's count and buckets may disagree by the updates in flight.

Quota table (``quota.py``; one table per network worker, written only by that worker, read by all)::

    0            64                                          64 + tables * slots * slot_words * 8
    | preamble   | table 0: slot 0 | slot 1 | ... | table 1: ...                              |
    header fields in the preamble's reserved area:
    +24  u64  tables      one per network worker
    +32  u64  slots       slots per table
    +40  u64  samples     windows kept per counter (quota.window.num)

    slot (i64 words; slot_words = 2 + 2 * QUOTA_KINDS * samples)
    [0]      key          what is counted together (a hash of user and client id), never 0;
                          0 = never used.  Written last when a slot is claimed, after its counters
                          are zeroed, so a reader that finds the key finds this key's counts.
    [1]      reserved
    [2..]    per kind (0: produce request bytes, 1: fetch response bytes, 2: microseconds of broker
             time spent on requests): `samples` window numbers, then `samples` counts.  Window w (monotonic ms // window ms) lives at
             index w % samples; a count whose window number is not w is an older window's, and
             the writer resets it before counting into it.

    A key is looked for by linear probing from key % slots over at most QUOTA_PROBE slots,
    stopping at a never-used slot.  A writer takes over a slot whose windows are all out of range;
    slots are never emptied, so the probes of other keys stay valid.  A reader may see a count one
    update old or a window being reset (a rate off by one request), never a torn word.  A client's
    rate is the sum over every table: its connections may be served by different network workers.
"""

from __future__ import annotations

import struct
import sys

LAYOUT_VERSION = 1
MAGIC = 0x31425048  # b"HPB1" read as a little-endian u32

KIND_RING = 1
KIND_PARTITIONS = 2
KIND_METRICS = 3
KIND_ARENA = 4
KIND_QUOTAS = 5

CACHE_LINE = 64
ALIGN = 8

# Native formats only: each 8-byte field is then one aligned load/store (see module docstring).
U64 = struct.Struct("Q")
I64 = struct.Struct("q")
U32 = struct.Struct("I")
U32_PAIR = struct.Struct("II")

# -- preamble --------------------------------------------------------------------------------
PREAMBLE = struct.Struct("IHHQQ")  # magic, version, kind, creator pid, size
PREAMBLE_SIZE = 64
OFF_MAGIC = 0
OFF_CREATOR = 8
OFF_SIZE = 16

# -- ring ------------------------------------------------------------------------------------
RING_OFF_HEAD = 64
RING_OFF_PRODUCER_SLEEP = 72
RING_OFF_FULL_EVENTS = 80
RING_OFF_CAPACITY = 24
RING_OFF_TAIL = 128
RING_OFF_CONSUMER_SLEEP = 136
RING_HEADER_SIZE = 192

ENTRY_HEADER = 16
ENTRY_OFF_COMMIT = 0
ENTRY_OFF_LENGTH = 8  # u32 length then u32 kind, packed as U32_PAIR
KIND_PAD = 0xFFFFFFFF
MAX_KIND = KIND_PAD - 1
MIN_RING_CAPACITY = 64

# -- partition table -------------------------------------------------------------------------
PART_OFF_SLOTS = 24
PART_OFF_WATCHERS = 32
PART_SLOTS_START = 64
PART_SLOT_SIZE = 64
SLOT_OFF_SEQ = 0
SLOT_OFF_FIELDS = 8
SLOT_FIELDS = struct.Struct("qqqqQqii")  # leo, hw, log_start, leader_epoch, generation, tail base/bytes/index
SLOT_OFF_GENERATION = 40

# -- metrics --------------------------------------------------------------------------------
METRICS_START = 64
METRICS_OFF_BLOCKS = 24
METRICS_OFF_BLOCK_WORDS = 32
METRICS_OFF_SLOTS = 40
MB_PID, MB_ROLE, MB_INDEX, MB_STARTED_NS = 0, 1, 2, 3
MB_SCALARS = 8
MB_SCALAR_WORDS = 32
MB_REQUESTS = MB_SCALARS + MB_SCALAR_WORDS
API_SLOTS = 96
ERROR_SLOTS = 128
MB_ERRORS = MB_REQUESTS + API_SLOTS
LATENCY_BOUNDS_US = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                     1000000, 2500000, 10000000)
BUCKETS = len(LATENCY_BOUNDS_US) + 1
STAGES = ("queue", "io", "send", "total", "owner")
MB_LATENCY = MB_ERRORS + API_SLOTS * ERROR_SLOTS
MB_SLOT_ARRAYS = MB_LATENCY + len(STAGES) * API_SLOTS * (BUCKETS + 2)
SLOT_COUNTERS = ("bytes_in", "records_in", "bytes_out")
# scalar words, relative to MB_SCALARS
MS_CONN_CREATED = 0
MS_CONN_CLOSED = 1
MS_CONN_OPEN = 2  # gauge
MS_NET_BYTES_IN = 3  # bytes read from client sockets
MS_NET_BYTES_OUT = 4  # bytes written to client sockets (sendmsg and sendfile)
MS_REQUESTS = 5
MS_BACKLOG_EVENTS = 6  # a request found its ring full and waited in the backlog
MS_PAUSED_READS = 7  # a connection stopped being read (in-flight, queued-bytes or ring limits)
MS_IO_MESSAGES = 8  # ring messages an I/O worker handled
MS_RECORDS_IN = 9
MS_BYTES_IN = 10  # record-batch bytes appended
MS_PARTITIONS = 11  # gauge: partitions this I/O worker owns
MS_ARENA_REFS = 12  # appends sent to an owner by reference into the receive arena (not copied)
MS_CONN_HANDED_OFF = 13  # accepted connections passed to a less loaded network worker (netio/handoff.py)
MS_GROUPED_APPENDS = 14  # appends an owner wrote together with others queued for the same partition
MS_SASL_LOGINS = 15  # clients a SASL listener let in
MS_SASL_FAILURES = 16  # SASL logins refused (wrong password, unknown user, malformed exchange)
MS_AUTHZ_DENIALS = 17  # authorization checks the ACLs refused (a Produce counts each refused partition)
MS_CLEANER_PASSES = 18  # compaction passes an I/O worker swapped in
MS_CLEANER_RECORDS_REMOVED = 19  # records those passes removed
MS_CLEANER_BYTES_FREED = 20  # segment bytes those passes freed (read minus written)
MS_THROTTLED_PRODUCE = 21  # Produce requests a client quota throttled
MS_THROTTLED_FETCH = 22  # Fetch requests a client quota throttled (answered empty)
MS_THROTTLE_MS = 23  # milliseconds of throttle time those requests were given
MS_THROTTLED_REQUEST = 24  # requests a request_percentage quota throttled


# -- quota table ---------------------------------------------------------------------------
QUOTA_OFF_TABLES = 24
QUOTA_OFF_SLOTS = 32
QUOTA_OFF_SAMPLES = 40
QUOTA_START = 64
QUOTA_KINDS = 3  # produce bytes, fetch bytes, request µs (broker.quotas.PRODUCE, FETCH, REQUEST)
QUOTA_PROBE = 64


def quota_slot_words(samples: int) -> int:
    return 2 + 2 * QUOTA_KINDS * samples


def quota_region_size(tables: int, slots: int, samples: int) -> int:
    return QUOTA_START + tables * slots * quota_slot_words(samples) * 8


def metrics_block_words(slots: int) -> int:
    return MB_SLOT_ARRAYS + len(SLOT_COUNTERS) * slots


ARENA_OFF_CAPACITY = 24
ARENA_DATA_START = 64


def metrics_region_size(blocks: int, slots: int) -> int:
    return METRICS_START + blocks * metrics_block_words(slots) * 8


def align8(n: int) -> int:
    """Round up to the 8-byte entry alignment."""
    return (n + 7) & ~7


def entry_size(payload_len: int) -> int:
    """Bytes a ring entry with this payload occupies, header and tail padding included."""
    return (ENTRY_HEADER + payload_len + 7) & ~7


def ring_region_size(capacity: int) -> int:
    return RING_HEADER_SIZE + capacity


def partition_region_size(slots: int, watchers: int) -> int:
    return PART_SLOTS_START + slots * PART_SLOT_SIZE + align8(slots * watchers)


def watch_offset(slots: int, watchers: int, slot: int) -> int:
    """Offset of the watch-matrix row for ``slot`` (``watchers`` bytes, one per worker)."""
    return PART_SLOTS_START + slots * PART_SLOT_SIZE + slot * watchers


def check_platform() -> None:
    """The layout assumes a 64-bit little-endian host with aligned 8-byte stores being atomic."""
    if sys.byteorder != "little" or struct.calcsize("P") != 8:
        raise RuntimeError("hpbroker shared memory needs a 64-bit little-endian host")
