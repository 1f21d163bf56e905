"""Consumer-group APIs on the network side: FindCoordinator answers here; everything about a group goes
whole to its coordinator, the I/O worker owning the group's `__consumer_offsets` partition.

DescribeGroups, DeleteGroups and ListGroups may concern groups of several coordinators: the request goes
to each of them (key -1: "answer for your own groups") and the answers are merged here, in request order.
While a coordinator partition is not open yet (its state slot reads log end offset -1) the group gets
COORDINATOR_NOT_AVAILABLE and clients retry.
"""

from __future__ import annotations

from broker.api.acls import GROUP_OPERATIONS
from broker.groups import OFFSETS_TOPIC, partition_for, route_key
from broker.groups import responses as R
from broker.groups.coordinator import describe
from broker.logfmt import Log
from netio.codec import ErrorCode

log = Log("hpbroker.api.groups")

FANOUT_KEY = -1


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
    md = ctx.metadata.current()
    part = _offsets_partition(ctx, body["key"])
    node = None if part is None else next((b for b in md.brokers if b.node_id == part.leader), None)
    if node is None or node.address(conn.listener) is None or \
            (node.node_id == ctx.broker_id and _coordinator(ctx, body["key"]) is None):
        return answer(int(ErrorCode.COORDINATOR_NOT_AVAILABLE))
    answer(0, node)


def handle_group_request(dispatcher, conn, header, body: dict, slot) -> None:
    """A request about one group: to its coordinator, whole."""
    ctx = dispatcher.ctx
    part = _offsets_partition(ctx, body["group_id"])
    if part is not None and part.leader >= 0 and not ctx.leads(part):
        return slot.reply(R.error_body(header.api_key, body, int(ErrorCode.NOT_COORDINATOR)))
    part = _coordinator(ctx, body["group_id"])
    if part is None:
        return slot.reply(R.error_body(header.api_key, body, int(ErrorCode.COORDINATOR_NOT_AVAILABLE)))
    dispatcher.forward(part.owner, slot, key=route_key(part.slot, conn.peer))


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


def handle_describe_groups(dispatcher, conn, header, body: dict, slot) -> None:
    names = list(body["groups"])
    owners, unavailable = _owners_of(dispatcher.ctx, names)

    def merge(bodies: list[dict]) -> None:
        found = {g["group_id"]: g for b in bodies for g in b["groups"]}
        out = []
        for name in names:
            if name in found:
                out.append(found[name])
            elif name in unavailable:
                out.append(R.describe_error(name, int(ErrorCode.COORDINATOR_NOT_AVAILABLE)))
            else:
                out.append(describe(name, None))
        if body.get("include_authorized_operations"):
            for g in out:  # as Kafka: only a group described without error
                if g["error_code"] == 0:
                    g["authorized_operations"] = GROUP_OPERATIONS
        slot.reply({"throttle_time_ms": 0, "groups": out})

    dispatcher.fan_out(header, owners, FANOUT_KEY, merge)


def handle_delete_groups(dispatcher, conn, header, body: dict, slot) -> None:
    names = list(body["groups_names"])
    owners, unavailable = _owners_of(dispatcher.ctx, names)

    def merge(bodies: list[dict]) -> None:
        found = {r["group_id"]: r["error_code"] for b in bodies for r in b["results"]}
        out = []
        for name in names:
            code = found.get(name)
            if code is None:
                code = int(ErrorCode.COORDINATOR_NOT_AVAILABLE if name in unavailable else ErrorCode.NOT_COORDINATOR)
            out.append({"group_id": name, "error_code": code})
        slot.reply({"throttle_time_ms": 0, "results": out})

    dispatcher.fan_out(header, owners, FANOUT_KEY, merge)


def handle_list_groups(dispatcher, conn, header, body: dict, slot) -> None:
    ctx = dispatcher.ctx
    t = ctx.metadata.current().topic(OFFSETS_TOPIC)
    parts = [p for p in t.partitions if ctx.leads(p)] if t is not None else []
    owners = {p.owner for p in parts}
    loading = any(ctx.partition_state(p)[0] < 0 for p in parts)

    def merge(bodies: list[dict]) -> None:
        groups = [g for b in bodies for g in b["groups"]]
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
