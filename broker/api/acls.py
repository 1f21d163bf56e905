"""DescribeAcls, CreateAcls, DeleteAcls.

Without an authorizer (authorizer.class.name unset) every one is answered SECURITY_DISABLED, as Kafka
answers them, so admin tools say that ACLs are off. With one, bindings are created and deleted by the
controller, which stores them (a single node's data directory, or etcd) and publishes them in the metadata
snapshot every worker authorizes from; DescribeAcls reads that snapshot. Creating and deleting needs ALTER
on the cluster, describing DESCRIBE (CLUSTER_AUTHORIZATION_FAILED otherwise), as in Kafka.
"""

from __future__ import annotations

from broker.security import acl
from netio.codec import ErrorCode

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31

_MESSAGE = "No authorizer is configured on the broker: ACLs are not supported"
_DENIED = "Authorization failed."


def _disabled(header, body: dict, slot) -> None:
    code = int(ErrorCode.SECURITY_DISABLED)
    if header.api_key == DESCRIBE_ACLS:
        slot.reply({"throttle_time_ms": 0, "error_code": code, "error_message": _MESSAGE, "resources": []})
    elif header.api_key == CREATE_ACLS:
        slot.reply({"throttle_time_ms": 0, "results": [{"error_code": code, "error_message": _MESSAGE}
                                                        for _ in body["creations"]]})
    else:
        slot.reply({"throttle_time_ms": 0, "filter_results": [
            {"error_code": code, "error_message": _MESSAGE, "matching_acls": []} for _ in body["filters"]]})


def _filter(f: dict) -> acl.AclFilter:
    return acl.AclFilter(f["resource_type_filter"], f["resource_name_filter"], f.get("pattern_type_filter", acl.LITERAL),
                         f["principal_filter"], f["host_filter"], f["operation"], f["permission_type"])


def handle_describe_acls(dispatcher, conn, header, body: dict, slot) -> None:
    dispatcher.ctx.metadata.current(max_age=0)  # the newest snapshot: a binding just created is listed
    authz = dispatcher.ctx.authorizer()
    if authz is None:
        return _disabled(header, body, slot)

    def fail(code: ErrorCode, message: str) -> None:
        slot.reply({"throttle_time_ms": 0, "error_code": int(code), "error_message": message, "resources": []})

    if not dispatcher.allowed(conn, acl.DESCRIBE, acl.CLUSTER, acl.CLUSTER_NAME):
        return fail(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, _DENIED)
    f = _filter(body)
    problem = acl.filter_problem(f)
    if problem:
        return fail(ErrorCode.INVALID_REQUEST, problem)
    resources: dict[tuple, list] = {}
    for b in authz.bindings:
        if acl.matches(f, b):
            resources.setdefault((b.resource_type, b.resource_name, b.pattern_type), []).append(
                {"principal": b.principal, "host": b.host, "operation": b.operation, "permission_type": b.permission})
    slot.reply({"throttle_time_ms": 0, "error_code": 0, "error_message": None, "resources": [
        {"resource_type": t, "resource_name": n, "pattern_type": p, "acls": entries}
        for (t, n, p), entries in resources.items()]})


def handle_create_acls(dispatcher, conn, header, body: dict, slot) -> None:
    if dispatcher.ctx.authorizer() is None:
        return _disabled(header, body, slot)
    creations = body["creations"]
    if not dispatcher.allowed(conn, acl.ALTER, acl.CLUSTER, acl.CLUSTER_NAME):
        code = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        return slot.reply({"throttle_time_ms": 0, "results": [{"error_code": code, "error_message": _DENIED}
                                                               for _ in creations]})
    bindings = [[c["resource_type"], c["resource_name"], c.get("resource_pattern_type", acl.LITERAL), c["principal"],
                 c["host"], c["operation"], c["permission_type"]] for c in creations]

    def done(msg: dict) -> None:
        results = msg.get("results")
        if results is None:
            results = [(int(ErrorCode.COORDINATOR_NOT_AVAILABLE), msg.get("error"))] * len(creations)
        slot.reply({"throttle_time_ms": 0, "results": [{"error_code": c, "error_message": m} for c, m in results]})

    if not bindings:
        return done({"results": []})
    dispatcher.ctx.controller.call({"op": "create_acls", "bindings": bindings}, done)


def handle_delete_acls(dispatcher, conn, header, body: dict, slot) -> None:
    if dispatcher.ctx.authorizer() is None:
        return _disabled(header, body, slot)
    filters = body["filters"]
    if not dispatcher.allowed(conn, acl.ALTER, acl.CLUSTER, acl.CLUSTER_NAME):
        code = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        return slot.reply({"throttle_time_ms": 0, "filter_results": [
            {"error_code": code, "error_message": _DENIED, "matching_acls": []} for _ in filters]})

    def done(msg: dict) -> None:
        results = msg.get("results")
        if results is None:
            results = [(int(ErrorCode.COORDINATOR_NOT_AVAILABLE), msg.get("error"), [])] * len(filters)
        slot.reply({"throttle_time_ms": 0, "filter_results": [
            {"error_code": code, "error_message": message, "matching_acls": [
                {"error_code": 0, "error_message": None, "resource_type": b[0], "resource_name": b[1],
                 "pattern_type": b[2], "principal": b[3], "host": b[4], "operation": b[5], "permission_type": b[6]}
                for b in found]}
            for code, message, found in results]})

    if not filters:
        return done({"results": []})
    dispatcher.ctx.controller.call({"op": "delete_acls", "filters": [list(_filter(f)) for f in filters]}, done)


HANDLERS = {DESCRIBE_ACLS: handle_describe_acls, CREATE_ACLS: handle_create_acls, DELETE_ACLS: handle_delete_acls}

# Authorized operations (KIP-430), asked for by Metadata, DescribeCluster and DescribeGroups. With no authorizer
# every client may do all that a resource type supports, so Kafka answers that whole set, one bit per
# AclOperation code. A request that does not ask leaves the field out of the reply, and the codec writes the
# schema's default, -2^31 ("not requested").
TOPIC_OPERATIONS = sum(1 << op for op in acl.SUPPORTED[acl.TOPIC])
GROUP_OPERATIONS = sum(1 << op for op in acl.SUPPORTED[acl.GROUP])
CLUSTER_OPERATIONS = sum(1 << op for op in acl.SUPPORTED[acl.CLUSTER])
