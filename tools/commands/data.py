"""`hpbroker produce TOPIC` and `hpbroker consume TOPIC`: records from stdin lines and to stdout lines."""

from __future__ import annotations

import sys
import time

import click

from netio.codec.records import decode_batches, encode_batch
from tools.client import ErrorCode, KafkaError, check
from tools.commands.common import EXIT_CODES_HELP, client_command, parse_pairs
from tools.commands.offsets import commit_offsets, committed_offsets
from tools.commands.render import render_record

PRODUCE, FETCH = 0, 1
LINES_PER_REQUEST = 500
PRINT_FIELDS = ("partition", "offset", "timestamp", "key", "headers")


def murmur2(data: bytes) -> int:
    """Kafka's default partitioner hash, so keyed records land where Java and librdkafka's
    murmur2 partitioners put them."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes | None, count: int, counter: int) -> int:
    if key is None:
        return counter % count
    return (murmur2(key) & 0x7FFFFFFF) % count


def _send(client, topic: str, leaders: dict[int, int], pending: dict[int, list], acks: int) -> int:
    sent = 0
    by_leader: dict[int, list[int]] = {}
    for p in pending:
        by_leader.setdefault(leaders[p], []).append(p)
    now = int(time.time() * 1000)
    for leader, parts in by_leader.items():
        body = {"transactional_id": None, "acks": acks, "timeout_ms": 30000, "topic_data": [
            {"name": topic, "partition_data": [{"index": p, "records": encode_batch(pending[p], now)}
                                               for p in parts]}]}
        reply = client.broker(leader).request(PRODUCE, body)
        if acks == 0:
            continue
        for t in reply["responses"]:
            for pr in t["partition_responses"]:
                check(pr["error_code"], pr.get("error_message"), f"producing to {topic}-{pr['index']}")
    for recs in pending.values():
        sent += len(recs)
    pending.clear()
    return sent


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("topic")
@click.option("--key-separator", "-K", default=None, metavar="SEP",
              help="Split each line at the first SEP into key and value (lines without SEP get no key).")
@click.option("--header", "-H", "headers", multiple=True, metavar="KEY=VALUE",
              help="Header added to every record (repeatable).")
@click.option("--partition", "-p", type=int, default=None,
              help="Write every record to this partition (default: by key hash, unkeyed round-robin).")
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="all", show_default=True,
              help="Acknowledgement the broker gives before answering.")
@client_command
def produce(client, fmt, topic, key_separator, headers, partition, acks):
    """Produce one record per stdin line to TOPIC.

    Keyed records go to the partition Kafka's default (murmur2) partitioner picks, so records with the
    same key stay in order in one partition. Ends at end of input and prints how many were written.
    """
    hdrs = [(k, v.encode()) for k, v in parse_pairs(headers, "--header")]
    leaders = client.leaders(topic)
    if partition is not None and partition not in leaders:
        raise KafkaError(int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), f"{topic}-{partition}")
    count = len(leaders)
    ack = {"0": 0, "1": 1, "all": -1}[acks]
    pending: dict[int, list] = {}
    total = lines = 0
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        key = None
        if key_separator is not None and key_separator.encode() in line:
            key, line = line.split(key_separator.encode(), 1)
        p = partition if partition is not None else partition_for(key, count, lines)
        pending.setdefault(p, []).append((key, line, hdrs))
        lines += 1
        if lines % LINES_PER_REQUEST == 0:
            total += _send(client, topic, leaders, pending, ack)
    if pending:
        total += _send(client, topic, leaders, pending, ack)
    click.echo(f"produced {total} records to {topic}", err=True)


def _fetch(client, leader: int, topic: str, positions: dict[int, int], wait_ms: int) -> dict[int, list]:
    body = {"replica_id": -1, "max_wait_ms": wait_ms, "min_bytes": 1, "max_bytes": 52428800,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [
                {"partition": p, "current_leader_epoch": -1, "fetch_offset": o, "log_start_offset": -1,
                 "partition_max_bytes": 1048576} for p, o in positions.items()]}],
            "forgotten_topics_data": [], "rack_id": ""}
    reply = client.broker(leader).request(FETCH, body)
    check(reply.get("error_code", 0), what="fetch")
    out = {}
    for t in reply["responses"]:
        for p in t["partitions"]:
            check(p["error_code"], what=f"fetching {topic}-{p['partition_index']}")
            try:
                out[p["partition_index"]] = decode_batches(p["records"] or b"")
            except ValueError as e:  # records this tool cannot read: said once, not as a traceback
                raise KafkaError(int(ErrorCode.CORRUPT_MESSAGE), str(e),
                                 what=f"reading {topic}-{p['partition_index']}") from None
    return out


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest kept record (default: only new records).")
@click.option("--offset", "-o", type=int, default=None, help="Start at this offset (in each chosen partition).")
@click.option("--partition", "-p", "partitions", type=int, multiple=True, help="Read only these partitions.")
@click.option("--group", "-g", default=None,
              help="Start at GROUP's committed offsets and commit what was printed when done.")
@click.option("--max", "-n", "max_records", type=int, default=None, help="Stop after this many records.")
@click.option("--timeout", "idle_timeout", type=float, default=None,
              help="Stop after this many seconds without a new record (default: wait forever).")
@click.option("--print", "-P", "print_fields", default="", metavar="FIELDS",
              help=f"Comma-separated fields printed before the value: {','.join(PRINT_FIELDS)}.")
@client_command
def consume(client, fmt, topic, from_beginning, offset, partitions, group, max_records, idle_timeout,
            print_fields):
    """Print TOPIC's records, one per line (value only, or --print fields; --format json prints every
    field as one JSON object per line).

    With --group the group's committed offsets are the starting point and the offsets after the last
    printed records are committed at the end, without joining the group: use it for a group that has no
    running members (a group with members rebalances partitions among them instead; see `hpbroker group`).
    """
    fields = tuple(f.strip() for f in print_fields.split(",") if f.strip())
    unknown = [f for f in fields if f not in PRINT_FIELDS]
    if unknown:
        raise click.BadParameter(f"unknown field(s) {', '.join(unknown)}", param_hint="--print")
    leaders = client.leaders(topic)
    chosen = sorted(partitions) if partitions else sorted(leaders)
    for p in chosen:
        if p not in leaders:
            raise KafkaError(int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), f"{topic}-{p}")
    if offset is not None:
        positions = {p: offset for p in chosen}
    else:
        start = client.list_offsets(topic, {p: -2 if from_beginning else -1 for p in chosen})
        positions = {p: start[p][0] for p in chosen}
        if group is not None:
            committed = committed_offsets(client, group, [topic]).get(topic, {})
            positions.update({p: o for p, o in committed.items() if p in positions and o >= 0})
    printed = 0
    last_record = time.monotonic()
    by_leader: dict[int, list[int]] = {}
    for p in chosen:
        by_leader.setdefault(leaders[p], []).append(p)
    try:
        while max_records is None or printed < max_records:
            got = False
            for leader, parts in by_leader.items():
                results = _fetch(client, leader, topic, {p: positions[p] for p in parts}, 500)
                for p, recs in results.items():
                    for rec in recs:
                        if rec.offset < positions[p]:
                            continue
                        click.echo(render_record(topic, p, rec, fields, fmt))
                        positions[p] = rec.offset + 1
                        printed += 1
                        got = True
                        if max_records is not None and printed >= max_records:
                            break
                    if max_records is not None and printed >= max_records:
                        break
            if got:
                last_record = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_record >= idle_timeout:
                break
    except KeyboardInterrupt:
        pass
    if group is not None:
        commit_offsets(client, group, {topic: positions})
    click.echo(f"consumed {printed} records from {topic}", err=True)
