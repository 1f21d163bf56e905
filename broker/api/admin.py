"""AlterConfigs, IncrementalAlterConfigs, DeleteRecords, DescribeLogDirs, DescribeProducers, ElectLeaders,
AlterPartitionReassignments, ListPartitionReassignments, ListTransactions.

Topic config changes go to the controller, which persists them and publishes a new metadata snapshot; the
owners of the topic's partitions then reconfigure their open logs. The broker resource with an empty name
(kafka-configs --entity-default) holds the cluster-wide dynamic defaults of the log settings topics inherit
(broker.config.DYNAMIC_LOG_KEYS), a broker id that broker's own values over them (--entity-name), stored
and published the same way; every other broker key is static and refused with INVALID_REQUEST. DeleteRecords moves log start offsets and DescribeProducers
reads producer state, both of which only a partition's owner holds: the request is forwarded whole to every
owner it names (see broker/records_admin.py and broker/producers/owner.py) and the partial answers are
merged. DescribeLogDirs only needs file sizes, which the network worker reads itself. ElectLeaders goes to
the supervisor, which elects when this broker is the cluster's controller (broker/cluster/node.py).
AlterPartitionReassignments goes to the supervisor too, which records the move in etcd; the running moves are
listed from the metadata snapshot. Transactional producers are refused, so ListTransactions is empty.
"""

from __future__ import annotations

import os

from broker.api.configs import config_refusal
from broker.config import dynamic_log_defaults
from broker.api.metadata import missing_topic_error
from broker.log.config import effective_log_config
from broker.log.reader import partition_data_bytes
from broker.logfmt import Log
from broker.security import acl
from netio.codec import ErrorCode

log = Log("hpbroker.api.admin")

TOPIC = 2
BROKER = 4

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
OWNER_KEY = -1  # forwarded requests' routing value: their owner-side handlers take none
LIST_CONFIGS = frozenset({"cleanup.policy"})


def _result(rtype: int, rname: str, code: int = 0, message: str | None = None) -> dict:
    return {"error_code": int(code), "error_message": message, "resource_type": rtype, "resource_name": rname}


def apply_ops(current: dict, ops: list, inherited: dict | None = None) -> dict:
    """The overrides that IncrementalAlterConfigs ops produce; APPEND/SUBTRACT edit list-typed keys, starting
    from the value the topic inherits (`inherited`, by topic key) when it has no override of its own."""
    new = dict(current)
    for key, op, value in ops:
        if op == SET:
            new[key] = value
        elif op == DELETE:
            new.pop(key, None)
        elif op in (APPEND, SUBTRACT) and key in LIST_CONFIGS:
            base = new[key] if key in new else (inherited or {}).get(key, "delete")
            items = [v.strip() for v in str(base).split(",") if v.strip()]
            for v in (v.strip() for v in (value or "").split(",")):
                if op == APPEND and v and v not in items:
                    items.append(v)
                elif op == SUBTRACT and v in items:
                    items.remove(v)
            new[key] = ",".join(items)
        else:
            raise ValueError(f"operation {op} is not supported for {key}")
    return new


def _broker_log_values(ctx) -> dict:
    return ctx.config.log_defaults(dynamic_log_defaults(ctx.metadata.current().broker_configs, ctx.broker_id))


def _validate(ctx, overrides: dict) -> tuple[int, str | None]:
    try:
        effective_log_config({k: v for k, v in overrides.items() if v is not None}, _broker_log_values(ctx))
    except Exception as e:
        return int(getattr(e, "error_code", ErrorCode.INVALID_CONFIG)), str(e)
    return 0, None


def _alter(dispatcher, conn, header, body: dict, slot, incremental: bool) -> None:
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    results: list[dict | None] = []
    pending = [0]
    validate_only = bool(body.get("validate_only"))

    def finish() -> None:
        slot.reply({"throttle_time_ms": 0, "responses": results})

    may = dispatcher.access(conn)
    for r in body["resources"]:
        rtype, rname = r["resource_type"], r["resource_name"]
        refused = config_refusal(may, acl.ALTER_CONFIGS, rtype, rname)
        if refused is not None:
            results.append(_result(rtype, rname, *refused))
            continue
        if rtype == BROKER:  # "": the cluster-wide dynamic default; a broker id: that broker's own
            if incremental:
                msg = {"op": "alter_broker_defaults", "scope": rname,
                       "ops": [[c["name"], c["config_operation"], c["value"]] for c in r["configs"]]}
            else:
                msg = {"op": "alter_broker_defaults", "scope": rname,
                       "configs": {c["name"]: c["value"] for c in r["configs"] if c["value"] is not None}}
            if validate_only:
                results.append(_result(rtype, rname))
                continue
        elif rtype != TOPIC:
            results.append(_result(rtype, rname, ErrorCode.INVALID_REQUEST, f"Unsupported resource type {rtype}"))
            continue
        else:
            topic = md.topic(rname)
            if topic is None:
                results.append(_result(rtype, rname, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                       f"Topic '{rname}' does not exist."))
                continue
            if incremental:
                ops = [[c["name"], c["config_operation"], c["value"]] for c in r["configs"]]
                inherited = {"cleanup.policy": effective_log_config({}, _broker_log_values(ctx)).cleanup_policy}
                try:
                    new = apply_ops(topic.configs, ops, inherited)
                except ValueError as e:
                    results.append(_result(rtype, rname, ErrorCode.INVALID_CONFIG, str(e)))
                    continue
            else:
                new = {c["name"]: c["value"] for c in r["configs"] if c["value"] is not None}
            msg = {"op": "alter_topic_configs", "name": rname, "configs": new}
            code, text = _validate(ctx, new)
            if code or validate_only:
                results.append(_result(rtype, rname, code, text))
                continue
        index = len(results)
        results.append(None)
        pending[0] += 1

        def done(reply: dict, index=index, rtype=rtype, rname=rname) -> None:
            if "error_code" in reply:
                results[index] = _result(rtype, rname, reply["error_code"], reply.get("error_message"))
            else:
                results[index] = _result(rtype, rname, ErrorCode.COORDINATOR_NOT_AVAILABLE, reply.get("error"))
            pending[0] -= 1
            if pending[0] == 0:
                finish()

        ctx.controller.call(msg, done)
    if pending[0] == 0:
        finish()


def handle_alter_configs(dispatcher, conn, header, body: dict, slot) -> None:
    _alter(dispatcher, conn, header, body, slot, incremental=False)


def handle_incremental_alter_configs(dispatcher, conn, header, body: dict, slot) -> None:
    _alter(dispatcher, conn, header, body, slot, incremental=True)


def handle_delete_records(dispatcher, conn, header, body: dict, slot) -> None:
    """Unknown partitions are answered here; the rest by their owners, one forwarded copy per owner."""
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    answers: dict[tuple[str, int], tuple[int, int]] = {}
    owners: set[int] = set()
    order: list[tuple[str, int]] = []
    may = dispatcher.access(conn)
    denied = {t["name"] for t in body["topics"] if not may(acl.DELETE, acl.TOPIC, t["name"])} \
        if may is not None else set()
    for t in body["topics"]:
        info = md.topic(t["name"])
        for p in t["partitions"]:
            index = p["partition_index"]
            order.append((t["name"], index))
            if t["name"] in denied:
                answers[(t["name"], index)] = (-1, int(ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            elif info is None or not 0 <= index < len(info.partitions):
                answers[(t["name"], index)] = (-1, int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
            elif not ctx.leads(info.partitions[index]):
                answers[(t["name"], index)] = (-1, int(ErrorCode.NOT_LEADER_OR_FOLLOWER))
            else:
                owners.add(info.partitions[index].owner)

    def merge(replies: list[dict]) -> None:
        for reply in replies:
            for t in reply["topics"]:
                for p in t["partitions"]:
                    answers[(t["name"], p["partition_index"])] = (p["low_watermark"], p["error_code"])
        topics: dict[str, list] = {}
        for name, index in order:
            low, code = answers.get((name, index), (-1, int(ErrorCode.NOT_LEADER_OR_FOLLOWER)))
            topics.setdefault(name, []).append({"partition_index": index, "low_watermark": low, "error_code": code})
        slot.reply({"throttle_time_ms": 0,
                    "topics": [{"name": n, "partitions": ps} for n, ps in topics.items()]})

    if denied and owners:
        dispatcher.narrow(header, {**body, "topics": [t for t in body["topics"] if t["name"] not in denied]})
    dispatcher.fan_out(header, owners, OWNER_KEY, merge)


def handle_describe_producers(dispatcher, conn, header, body: dict, slot) -> None:
    """The active idempotent producers of each partition (KIP-664), from the producer state its owner keeps.
    Every partition asked for is answered, in request order: an invalid or unknown topic or partition here,
    a partition this broker holds no replica of with NOT_LEADER_OR_FOLLOWER, the rest by their owners."""
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    answers: dict[tuple[str, int], dict] = {}
    owners: set[int] = set()
    may = dispatcher.access(conn)
    denied = {t["name"] for t in body["topics"] if not may(acl.READ, acl.TOPIC, t["name"])} \
        if may is not None else set()
    for t in body["topics"]:
        name = t["name"]
        info = md.topic(name)
        error, message = missing_topic_error(name) if info is None else (None, None)
        if name in denied:
            error, message = ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."
        for index in t["partition_indexes"]:
            if error is None and not 0 <= index < len(info.partitions):
                answers[(name, index)] = _producers_error(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            elif error is None and info.partitions[index].slot < 0:
                answers[(name, index)] = _producers_error(index, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            elif error is None:
                owners.add(info.partitions[index].owner)
            else:
                answers[(name, index)] = _producers_error(index, error, message)

    def merge(replies: list[dict]) -> None:
        for reply in replies:
            for t in reply["topics"]:
                for p in t["partitions"]:
                    answers[(t["name"], p["partition_index"])] = p
        slot.reply({"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [
                answers.get((t["name"], i)) or _producers_error(i, ErrorCode.NOT_LEADER_OR_FOLLOWER)
                for i in t["partition_indexes"]]}
            for t in body["topics"]]})

    if denied and owners:
        dispatcher.narrow(header, {**body, "topics": [t for t in body["topics"] if t["name"] not in denied]})
    dispatcher.fan_out(header, owners, OWNER_KEY, merge)


def _producers_error(index: int, code: ErrorCode, message: str | None = None) -> dict:
    return {"partition_index": index, "error_code": int(code), "error_message": message, "active_producers": []}


def _partition_size(ctx, path: str, part) -> int:
    """``part``'s bytes of batches; of the segment being appended to, those its owner published."""
    tail = ctx.partition_state(part)[5] if part is not None and part.slot >= 0 else None
    try:
        return partition_data_bytes(path, tail)
    except OSError:
        return -1


def handle_describe_log_dirs(dispatcher, conn, header, body: dict, slot) -> None:
    """Bytes of record batches per partition, per data directory; a single node has no replica lag."""
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    if not dispatcher.allowed(conn, acl.DESCRIBE, acl.CLUSTER, acl.CLUSTER_NAME):
        slot.reply({"throttle_time_ms": 0, "error_code": int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                    "results": []})
        return
    wanted = body.get("topics")
    if wanted is None:
        selection = [(t.name, [p.partition for p in t.partitions]) for t in md.topics.values()]
    else:
        selection = []
        for t in wanted:
            info = md.topic(t["topic"])
            if info is not None:
                selection.append((t["topic"], [p for p in t["partitions"] if 0 <= p < len(info.partitions)]))
    results = []
    for d in ctx.config.log_dirs:
        code = 0 if os.path.isdir(d) else int(ErrorCode.KAFKA_STORAGE_ERROR)
        topics = []
        for name, parts in selection:
            found = []
            info = md.topic(name)
            for p in parts:
                path = os.path.join(d, f"{name}-{p}")
                if os.path.isdir(path):
                    part = info.partitions[p] if info is not None else None
                    found.append({"partition_index": p, "partition_size": max(0, _partition_size(ctx, path, part)),
                                  "offset_lag": 0, "is_future_key": False})
            if found:
                topics.append({"name": name, "partitions": found})
        results.append({"error_code": code, "log_dir": d, "topics": topics})
    slot.reply({"throttle_time_ms": 0, "results": results})


def handle_elect_leaders(dispatcher, conn, header, body: dict, slot) -> None:
    """Preferred or unclean leader elections, answered per partition in request order (null partitions: every
    partition, those needing no election left out). A failure of the whole request is answered, as Kafka
    does, with its code at the top (v1+) and on every partition asked for."""
    election_type = body.get("election_type", 0)
    asked = body.get("topic_partitions")

    def reply(code: int, results) -> None:
        topics: dict[str, list] = {}
        for t, p, c in results:
            topics.setdefault(t, []).append({"partition_id": p, "error_code": int(c), "error_message": None})
        slot.reply({"throttle_time_ms": 0, "error_code": int(code),
                    "replica_election_results": [{"topic": t, "partition_result": ps} for t, ps in topics.items()]})

    wanted = None if asked is None else [(t["topic"], p) for t in asked for p in t["partitions"]]
    if not dispatcher.allowed(conn, acl.ALTER, acl.CLUSTER, acl.CLUSTER_NAME):
        code = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        reply(code, [(t, p, code) for t, p in wanted or ()])
        return
    if election_type not in (0, 1):
        code = int(ErrorCode.INVALID_REQUEST)
        reply(code, [(t, p, code) for t, p in wanted or ()])
        return
    if wanted == []:
        reply(0, [])
        return

    def done(msg: dict) -> None:
        code = msg.get("error_code", int(ErrorCode.UNKNOWN_SERVER_ERROR))
        if code:
            reply(code, [(t, p, code) for t, p in wanted or ()])
        else:
            reply(0, msg["results"])

    dispatcher.ctx.controller.call({"op": "elect_leaders", "election_type": election_type, "partitions": wanted}, done)


# Kafka's transaction states (TransactionState.fromName): ListTransactions filters naming anything else are
# answered as unknown.
TRANSACTION_STATES = frozenset({"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
                                "CompleteAbort", "Dead", "PrepareEpochFence"})


def handle_list_transactions(dispatcher, conn, header, body: dict, slot) -> None:
    slot.reply({"throttle_time_ms": 0, "error_code": 0, "transaction_states": [],
                "unknown_state_filters": [f for f in body["state_filters"] if f not in TRANSACTION_STATES]})


def handle_alter_partition_reassignments(dispatcher, conn, header, body: dict, slot) -> None:
    """Start, replace or cancel (null replicas) partition reassignments. The supervisor writes them to etcd
    (any broker may; the controller completes them), answered per partition in request order."""
    asked = [(t["name"], p["partition_index"], p["replicas"]) for t in body["topics"] for p in t["partitions"]]

    def reply(code: int, message: str | None, results) -> None:
        topics: dict[str, list] = {}
        for t, p, c, m in results:
            topics.setdefault(t, []).append({"partition_index": p, "error_code": int(c), "error_message": m})
        slot.reply({"throttle_time_ms": 0, "error_code": int(code), "error_message": message,
                    "responses": [{"name": t, "partitions": ps} for t, ps in topics.items()]})

    if not dispatcher.allowed(conn, acl.ALTER, acl.CLUSTER, acl.CLUSTER_NAME):
        code = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        reply(code, "Authorization failed.", [(t, p, code, None) for t, p, _r in asked])
        return
    if not asked:
        reply(0, None, [])
        return

    def done(msg: dict) -> None:
        if "results" not in msg:
            code = int(msg.get("error_code", ErrorCode.UNKNOWN_SERVER_ERROR))
            reply(0, None, [(t, p, code, msg.get("error")) for t, p, _r in asked])
        else:
            reply(0, None, msg["results"])

    dispatcher.ctx.controller.call({"op": "alter_reassignments", "partitions": [list(a) for a in asked]}, done)


def handle_list_partition_reassignments(dispatcher, conn, header, body: dict, slot) -> None:
    """The running reassignments, from this broker's snapshot: all of them, or those of the partitions asked."""
    if not dispatcher.allowed(conn, acl.DESCRIBE, acl.CLUSTER, acl.CLUSTER_NAME):
        slot.reply({"throttle_time_ms": 0, "error_code": int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                    "error_message": "Authorization failed.", "topics": []})
        return
    md = dispatcher.ctx.metadata.current(max_age=0)
    wanted = None if body.get("topics") is None else \
        [(t["name"], t["partition_indexes"]) for t in body["topics"]]
    topics = []
    for name, indexes in wanted if wanted is not None else [(n, None) for n in sorted(md.topics)]:
        info = md.topic(name)
        if info is None:
            continue
        parts = [{"partition_index": p.partition, "replicas": list(p.replicas), "adding_replicas": list(p.adding),
                  "removing_replicas": list(p.removing)}
                 for p in info.partitions if (p.adding or p.removing) and (indexes is None or p.partition in indexes)]
        if parts:
            topics.append({"name": name, "partitions": parts})
    slot.reply({"throttle_time_ms": 0, "error_code": 0, "error_message": None, "topics": topics})


HANDLERS = {
    21: handle_delete_records,
    33: handle_alter_configs,
    35: handle_describe_log_dirs,
    43: handle_elect_leaders,
    44: handle_incremental_alter_configs,
    45: handle_alter_partition_reassignments,
    46: handle_list_partition_reassignments,
    61: handle_describe_producers,
    66: handle_list_transactions,
}
