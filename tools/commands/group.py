"""`hpbroker group ...`: list, describe (members, assignments, offsets, lag), reset-offsets, delete."""

from __future__ import annotations

import struct
from datetime import datetime, timezone

import click

from tools.client import ErrorCode, KafkaError, check
from tools.commands.common import EXIT_CODES_HELP, client_command, emit
from tools.commands.offsets import commit_offsets, committed_offsets
from tools.commands.render import render_group, render_group_list, render_offsets

DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS = 15, 16, 42
RESETTABLE_STATES = ("Empty", "Dead")


@click.group(epilog=EXIT_CODES_HELP)
def group():
    """Inspect and manage consumer groups.

    A consumer group is a set of consumers sharing the work of reading topics: each partition is read by
    exactly one member at a time. When a member joins or leaves, the group rebalances: every member
    stops, the coordinator broker collects the members and one of them reassigns the partitions, and
    consumption resumes from the group's committed offsets, so no record is skipped and few are re-read.

    The committed offset of a partition is where the group will resume; LAG is the log end offset minus
    the committed offset: how many records the group still has to read. Growing lag means the consumers
    fall behind the producers.
    """


def decode_assignment(data: bytes | None) -> dict[str, list[int]]:
    """The consumer protocol's member assignment (version, [topic, [partition]], user data)."""
    out: dict[str, list[int]] = {}
    if not data or len(data) < 6:
        return out
    try:
        pos = 2
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(max(n, 0)):
            (ln,) = struct.unpack_from(">h", data, pos)
            pos += 2
            name = data[pos:pos + ln].decode("utf-8", "replace")
            pos += ln
            (m,) = struct.unpack_from(">i", data, pos)
            pos += 4
            out[name] = sorted(struct.unpack_from(f">{max(m, 0)}i", data, pos))
            pos += 4 * max(m, 0)
    except struct.error:
        return out
    return out


def lag_rows(committed: dict[str, dict[int, int]], ends: dict[str, dict[int, int]],
             owners: dict[tuple[str, int], str]) -> list[dict]:
    """One row per partition with a commit or an owner: committed offset, end offset and lag."""
    rows = []
    keys = {(t, p) for t, ps in committed.items() for p in ps} | set(owners)
    for t, p in sorted(keys):
        c = committed.get(t, {}).get(p)
        end = ends.get(t, {}).get(p)
        lag = None if c is None or end is None else max(0, end - c)
        rows.append({"topic": t, "partition": p, "committed_offset": c, "end_offset": end, "lag": lag,
                     "member": owners.get((t, p))})
    return rows


def _describe(client, group_id: str) -> dict:
    conn = client.coordinator(group_id)
    reply = conn.request(DESCRIBE_GROUPS, {"groups": [group_id], "include_authorized_operations": False})
    g = reply["groups"][0]
    check(g["error_code"], what=f"describing group {group_id!r}")
    return {"coordinator": conn.address, **g}


@group.command("list", epilog=EXIT_CODES_HELP)
@client_command
def list_(client, fmt):
    """List the consumer groups every broker coordinates."""
    client.metadata([])
    groups = []
    for node in sorted(client.brokers):
        conn = client.broker(node)
        reply = conn.request(LIST_GROUPS, {})
        check(reply["error_code"], what=f"listing groups on broker {node}")
        groups += [{"group": g["group_id"], "protocol_type": g["protocol_type"],
                    "state": g.get("group_state"), "coordinator": node}  # None from a broker before ListGroups v4
                   for g in reply["groups"]]
    groups.sort(key=lambda g: g["group"])
    emit(fmt, groups, render_group_list(groups))


@group.command("describe", epilog=EXIT_CODES_HELP)
@click.argument("group_id", metavar="GROUP")
@client_command
def describe(client, fmt, group_id):
    """Show GROUP's state, members with their assigned partitions, and per partition the committed
    offset, the log end offset and the lag between them."""
    g = _describe(client, group_id)
    committed = committed_offsets(client, group_id)
    if g["group_state"] == "Dead" and not g["members"] and not committed:
        raise KafkaError(int(ErrorCode.GROUP_ID_NOT_FOUND), f"group {group_id!r} does not exist")
    members, owners = [], {}
    for m in g["members"]:
        assignment = decode_assignment(m["member_assignment"]) if g["protocol_type"] == "consumer" else {}
        members.append({"member_id": m["member_id"], "client_id": m["client_id"], "client_host": m["client_host"],
                        "assignment": assignment})
        for t, ps in assignment.items():
            for p in ps:
                owners[(t, p)] = m["member_id"]
    topics = {t for t in committed} | {t for t, _ in owners}
    ends = {}
    for t in sorted(topics):
        try:
            parts = sorted(client.leaders(t))
        except KafkaError:
            continue
        ends[t] = {p: o for p, (o, _ts) in client.list_offsets(t, {p: -1 for p in parts}).items()}
    rows = lag_rows(committed, ends, owners)
    desc = {"group": group_id, "coordinator": g["coordinator"], "state": g["group_state"],
            "protocol_type": g["protocol_type"], "protocol": g["protocol_data"], "members": members,
            "offsets": rows, "total_lag": sum(r["lag"] or 0 for r in rows)}
    emit(fmt, desc, render_group(desc))


def parse_datetime(text: str) -> int:
    """ISO 8601 to epoch milliseconds; a time without a zone is UTC."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 date-time", param_hint="--to-datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


@group.command("reset-offsets", epilog=EXIT_CODES_HELP)
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", "-t", required=True, help="Topic whose offsets to reset.")
@click.option("--partition", "-p", "partitions", type=int, multiple=True, help="Only these partitions.")
@click.option("--to-earliest", "target", flag_value="earliest", help="The oldest kept record.")
@click.option("--to-latest", "target", flag_value="latest", help="The log end: skip everything not yet read.")
@click.option("--to-offset", type=int, default=None, help="This offset (clamped into the kept range).")
@click.option("--to-datetime", default=None, metavar="ISO",
              help="The first record with a timestamp at or after this time, e.g. 2024-05-01T12:00:00Z.")
@click.option("--dry-run", is_flag=True, help="Show the new offsets without committing them.")
@client_command
def reset_offsets(client, fmt, group_id, topic, partitions, target, to_offset, to_datetime, dry_run):
    """Move GROUP's committed offsets on --topic, e.g. to re-read a topic or skip a backlog.

    The group must have no active members (stop its consumers first): running members would overwrite
    the new offsets with their own commits. Exactly one of --to-earliest, --to-latest, --to-offset,
    --to-datetime is required.
    """
    chosen = [x for x in (target, to_offset, to_datetime) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime")
    g = _describe(client, group_id)
    if g["group_state"] not in RESETTABLE_STATES:
        raise KafkaError(int(ErrorCode.NON_EMPTY_GROUP),
                         f"group {group_id!r} is {g['group_state']} with {len(g['members'])} member(s); "
                         "stop its consumers first")
    parts = sorted(partitions) if partitions else sorted(client.leaders(topic))
    earliest = client.list_offsets(topic, {p: -2 for p in parts})
    latest = client.list_offsets(topic, {p: -1 for p in parts})
    if target == "earliest":
        new = {p: earliest[p][0] for p in parts}
    elif target == "latest":
        new = {p: latest[p][0] for p in parts}
    elif to_offset is not None:
        new = {p: min(max(to_offset, earliest[p][0]), latest[p][0]) for p in parts}
    else:
        found = client.list_offsets(topic, {p: parse_datetime(to_datetime) for p in parts})
        new = {p: found[p][0] if found[p][0] >= 0 else latest[p][0] for p in parts}
    old = committed_offsets(client, group_id, [topic]).get(topic, {})
    rows = [{"topic": topic, "partition": p, "old_offset": old.get(p), "new_offset": new[p]} for p in parts]
    if not dry_run:
        commit_offsets(client, group_id, {topic: new})
    emit(fmt, rows, render_offsets(rows) + ("\n(dry run: nothing committed)" if dry_run else ""))


@group.command("delete", epilog=EXIT_CODES_HELP)
@click.argument("group_ids", nargs=-1, required=True, metavar="GROUP...")
@client_command
def delete(client, fmt, group_ids):
    """Delete groups and their committed offsets. A group with active members cannot be deleted."""
    for gid in group_ids:
        reply = client.coordinator(gid).request(DELETE_GROUPS, {"groups_names": [gid]})
        for r in reply["results"]:
            check(r["error_code"], what=f"deleting group {r['group_id']!r}")
    emit(fmt, {"deleted": list(group_ids)}, "\n".join(f"group {g} deleted" for g in group_ids))
