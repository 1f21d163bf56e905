"""Consumer-group APIs on the network side: FindCoordinator answers here; everything about a group goes
whole to its coordinator, the I/O worker owning the group's `__consumer_offsets` partition.

DescribeGroups, DeleteGroups and ListGroups may concern groups of several coordinators: the request goes
to each of them (key -1: "answer for your own groups") and the answers are merged here, in request order.
While a coordinator partition is not open yet (its state slot reads log end offset -1) the group gets
COORDINATOR_NOT_AVAILABLE and clients retry.

With an authorizer, the network side checks what Kafka checks before anything reaches a coordinator: READ on
the group to join, sync, heartbeat, leave or commit, DESCRIBE to find its coordinator, describe it or fetch
its offsets, DELETE to delete it or its offsets, and READ (DESCRIBE for a fetch) on each topic an offset
request names. What the client may not touch is taken out of the request before it is forwarded, and
answered GROUP_AUTHORIZATION_FAILED or TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from broker.api.acls import GROUP_OPERATIONS
from broker.groups import OFFSETS_TOPIC, partition_for, route_key
from broker.groups import responses as R
from broker.groups.coordinator import describe
from broker.logfmt import Log
from broker.security import acl
from netio.codec import ErrorCode

log = Log("hpbroker.api.groups")

FANOUT_KEY = -1

# The operation on the group each single-group request needs.
GROUP_OPERATION = {R.JOIN_GROUP: acl.READ, R.SYNC_GROUP: acl.READ, R.HEARTBEAT: acl.READ, R.LEAVE_GROUP: acl.READ,
                   R.OFFSET_COMMIT: acl.READ, R.OFFSET_FETCH: acl.DESCRIBE, R.OFFSET_DELETE: acl.DELETE}
_TOPIC_AUTH = int(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
_GROUP_AUTH = int(ErrorCode.GROUP_AUTHORIZATION_FAILED)


def _offsets_partition(ctx, group_id: str):
    t = ctx.metadata.current().topic(OFFSETS_TOPIC)
    if t is None or not t.partitions:
        return None
    return t.partitions[partition_for(group_id, len(t.partitions))]


def _coordinator(ctx, group_id: str):
    """The group's offsets partition if this broker leads it and its owner has opened it, else None."""
    part = _offsets_partition(ctx, group_id)
    if part is None or not ctx.leads(part):
        return None
    leo = ctx.partition_state(part)[0]
    return part if leo >= 0 else None


def handle_find_coordinator(dispatcher, conn, header, body: dict, slot) -> None:
    """The coordinator is the leader of the group's offsets partition, on whichever broker that is."""
    ctx = dispatcher.ctx
    key_type = body.get("key_type", 0)

    def answer(code: int, node=None, message: str | None = None) -> None:
        host, port = node.address(conn.listener) if node else ("", -1)
        slot.reply({"throttle_time_ms": 0, "error_code": code, "error_message": message,
                    "node_id": node.node_id if node else -1, "host": host, "port": port})

    if key_type == 1:  # transactions: refused as InitProducerId and Produce refuse a transactional.id, and
        # with the one error clients take as final here (COORDINATOR_NOT_AVAILABLE they retry until timeout)
        return answer(int(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                      message="transactions are not supported: unset transactional.id")
    if key_type != 0:
        return answer(int(ErrorCode.INVALID_REQUEST), message=f"no coordinator for key type {key_type}")
    if not dispatcher.allowed(conn, acl.DESCRIBE, acl.GROUP, body["key"]):
        return answer(_GROUP_AUTH, message="Authorization failed.")
    md = ctx.metadata.current()
    part = _offsets_partition(ctx, body["key"])
    node = None if part is None else next((b for b in md.brokers if b.node_id == part.leader), None)
    if node is None or node.address(conn.listener) is None or \
            (node.node_id == ctx.broker_id and _coordinator(ctx, body["key"]) is None):
        return answer(int(ErrorCode.COORDINATOR_NOT_AVAILABLE))
    answer(0, node)


def handle_group_request(dispatcher, conn, header, body: dict, slot) -> None:
    """A request about one group: to its coordinator, whole (or with what the client may not touch taken out)."""
    ctx = dispatcher.ctx
    may = dispatcher.access(conn)
    if may is not None and not may(GROUP_OPERATION[header.api_key], acl.GROUP, body["group_id"]):
        return slot.reply(R.error_body(header.api_key, body, _GROUP_AUTH))
    part = _offsets_partition(ctx, body["group_id"])
    if part is not None and part.leader >= 0 and not ctx.leads(part):
        return slot.reply(R.error_body(header.api_key, body, int(ErrorCode.NOT_COORDINATOR)))
    part = _coordinator(ctx, body["group_id"])
    if part is None:
        return slot.reply(R.error_body(header.api_key, body, int(ErrorCode.COORDINATOR_NOT_AVAILABLE)))
    if may is not None and header.api_key in (R.OFFSET_COMMIT, R.OFFSET_FETCH, R.OFFSET_DELETE):
        return _offsets_request(dispatcher, may, header, body, slot, part.owner, route_key(part.slot, conn.peer))
    dispatcher.forward(part.owner, slot, key=route_key(part.slot, conn.peer))


def _offsets_request(dispatcher, may, header, body: dict, slot, owner: int, key: int) -> None:
    """OffsetCommit, OffsetFetch or OffsetDelete under an authorizer: topics the client may not read
    (describe, for a fetch) are refused per partition; a fetch of all offsets leaves them out."""
    api = header.api_key
    op = acl.DESCRIBE if api == R.OFFSET_FETCH else acl.READ
    topics = body.get("topics")
    denied = {t["name"] for t in topics or () if not may(op, acl.TOPIC, t["name"])}
    refused = [t for t in topics or () if t["name"] in denied]
    if denied and api != R.OFFSET_FETCH:  # commits and deletes must not reach the coordinator
        kept = [t for t in topics if t["name"] not in denied]
        if not kept:
            return slot.reply(_with_refused(api, {"throttle_time_ms": 0, "error_code": 0, "topics": []}, refused))
        dispatcher.narrow(header, {**body, "topics": kept})

    def merge(bodies: list[dict]) -> None:
        if not bodies:  # the coordinator's owner restarted holding it: the client reconnects and retries
            return slot.fail_connection("partition owner restarted")
        reply = bodies[0]
        if api == R.OFFSET_FETCH and topics is None:
            reply["topics"] = [t for t in reply["topics"] if may(op, acl.TOPIC, t["name"])]
        elif api == R.OFFSET_FETCH:
            reply["topics"] = [t for t in reply["topics"] if t["name"] not in denied]
        slot.reply(_with_refused(api, reply, refused))

    dispatcher.fan_out(header, {owner}, key, merge)


def _with_refused(api: int, reply: dict, refused: list[dict]) -> dict:
    if api == R.OFFSET_DELETE and reply.get("error_code"):
        return reply  # a group-level error covers every partition
    reply["topics"] = reply["topics"] + R.error_body(R.OFFSET_COMMIT, {"topics": refused}, _TOPIC_AUTH)["topics"]
    return reply


def _owners_of(ctx, group_ids) -> tuple[set[int], set[str]]:
    """Owners to ask, and the groups whose coordinator is not available."""
    owners, unavailable = set(), set()
    for g in group_ids:
        part = _coordinator(ctx, g)
        if part is None:
            unavailable.add(g)
        else:
            owners.add(part.owner)
    return owners, unavailable


def _denied_groups(dispatcher, conn, op: int, names: list[str]) -> set[str]:
    may = dispatcher.access(conn)
    return {n for n in names if not may(op, acl.GROUP, n)} if may is not None else set()


def handle_describe_groups(dispatcher, conn, header, body: dict, slot) -> None:
    names = list(body["groups"])
    denied = _denied_groups(dispatcher, conn, acl.DESCRIBE, names)
    owners, unavailable = _owners_of(dispatcher.ctx, [n for n in names if n not in denied])

    def merge(bodies: list[dict]) -> None:
        found = {g["group_id"]: g for b in bodies for g in b["groups"]}
        out = []
        for name in names:
            if name in denied:
                out.append(R.describe_error(name, _GROUP_AUTH))
            elif name in found:
                out.append(found[name])
            elif name in unavailable:
                out.append(R.describe_error(name, int(ErrorCode.COORDINATOR_NOT_AVAILABLE)))
            else:
                out.append(describe(name, None))
        if body.get("include_authorized_operations"):
            for g in out:  # as Kafka: only a group described without error
                if g["error_code"] == 0:
                    g["authorized_operations"] = dispatcher.operations(conn, acl.GROUP, g["group_id"],
                                                                       GROUP_OPERATIONS)
        slot.reply({"throttle_time_ms": 0, "groups": out})

    if denied and owners:
        dispatcher.narrow(header, {**body, "groups": [n for n in names if n not in denied]})
    dispatcher.fan_out(header, owners, FANOUT_KEY, merge)


def handle_delete_groups(dispatcher, conn, header, body: dict, slot) -> None:
    names = list(body["groups_names"])
    denied = _denied_groups(dispatcher, conn, acl.DELETE, names)
    owners, unavailable = _owners_of(dispatcher.ctx, [n for n in names if n not in denied])

    def merge(bodies: list[dict]) -> None:
        found = {r["group_id"]: r["error_code"] for b in bodies for r in b["results"]}
        out = []
        for name in names:
            code = _GROUP_AUTH if name in denied else found.get(name)
            if code is None:
                code = int(ErrorCode.COORDINATOR_NOT_AVAILABLE if name in unavailable else ErrorCode.NOT_COORDINATOR)
            out.append({"group_id": name, "error_code": code})
        slot.reply({"throttle_time_ms": 0, "results": out})

    if denied and owners:
        dispatcher.narrow(header, {**body, "groups_names": [n for n in names if n not in denied]})
    dispatcher.fan_out(header, owners, FANOUT_KEY, merge)


def handle_list_groups(dispatcher, conn, header, body: dict, slot) -> None:
    ctx = dispatcher.ctx
    t = ctx.metadata.current().topic(OFFSETS_TOPIC)
    parts = [p for p in t.partitions if ctx.leads(p)] if t is not None else []
    owners = {p.owner for p in parts}
    loading = any(ctx.partition_state(p)[0] < 0 for p in parts)

    may = dispatcher.access(conn)
    if may is not None and may(acl.DESCRIBE, acl.CLUSTER, acl.CLUSTER_NAME):
        may = None  # DESCRIBE on the cluster lists every group

    def merge(bodies: list[dict]) -> None:
        groups = [g for b in bodies for g in b["groups"] if may is None or may(acl.DESCRIBE, acl.GROUP, g["group_id"])]
        code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if loading or len(bodies) < len(owners) else ErrorCode.NONE
        slot.reply({"throttle_time_ms": 0, "error_code": int(code), "groups": groups})

    dispatcher.fan_out(header, owners, FANOUT_KEY, merge)


HANDLERS = {
    R.FIND_COORDINATOR: handle_find_coordinator,
    R.JOIN_GROUP: handle_group_request,
    R.SYNC_GROUP: handle_group_request,
    R.HEARTBEAT: handle_group_request,
    R.LEAVE_GROUP: handle_group_request,
    R.OFFSET_COMMIT: handle_group_request,
    R.OFFSET_FETCH: handle_group_request,
    R.OFFSET_DELETE: handle_group_request,
    R.DESCRIBE_GROUPS: handle_describe_groups,
    R.DELETE_GROUPS: handle_delete_groups,
    R.LIST_GROUPS: handle_list_groups,
}
