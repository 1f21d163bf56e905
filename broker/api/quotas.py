"""DescribeClientQuotas and AlterClientQuotas (KIP-546): the byte-rate and request-time quotas of users and
client ids, managed as `kafka-configs --entity-type users|clients` and admin clients manage them.

Changes go to the controller, which checks them (`broker.quota_admin`), stores them (a single node's data
directory, or etcd) and publishes them in the metadata snapshot, where the request paths find them
(`broker.quotas.resolve`). Describing reads the snapshot. As in Kafka, describing needs DESCRIBE_CONFIGS on
the cluster and altering ALTER_CONFIGS, when an authorizer is configured.
"""

from __future__ import annotations

from broker.quota_admin import QuotaRequestError, describe
from broker.security import acl
from netio.codec import ErrorCode

DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49


def handle_describe(dispatcher, conn, header, body: dict, slot) -> None:
    def error(code: ErrorCode, message: str) -> None:
        slot.reply({"throttle_time_ms": 0, "error_code": int(code), "error_message": message, "entries": None})

    if not dispatcher.allowed(conn, acl.DESCRIBE_CONFIGS, acl.CLUSTER, acl.CLUSTER_NAME):
        return error(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    stored = dispatcher.ctx.metadata.current(max_age=0).quotas  # a quota altered a moment ago is described
    try:
        entries = describe(stored, body["components"], body["strict"])
    except QuotaRequestError as e:
        return error(e.code, str(e))
    slot.reply({"throttle_time_ms": 0, "error_code": 0, "error_message": None, "entries": entries})


def handle_alter(dispatcher, conn, header, body: dict, slot) -> None:
    request = body["entries"]

    def answer(results: list) -> None:
        slot.reply({"throttle_time_ms": 0, "entries": [
            {"error_code": code, "error_message": message, "entity": e["entity"]}
            for e, (code, message) in zip(request, results)]})

    if not dispatcher.allowed(conn, acl.ALTER_CONFIGS, acl.CLUSTER, acl.CLUSTER_NAME):
        return answer([(int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), "Cluster authorization failed.")] * len(request))
    if not request:
        return answer([])

    def done(msg: dict) -> None:
        results = msg.get("results")
        if results is None:
            results = [(int(ErrorCode.COORDINATOR_NOT_AVAILABLE), msg.get("error"))] * len(request)
        answer(results)

    entries = [[[[d["entity_type"], d["entity_name"]] for d in e["entity"]],
                [[op["key"], op["value"], op["remove"]] for op in e["ops"]]] for e in request]
    dispatcher.ctx.controller.call({"op": "alter_quotas", "entries": entries,
                                    "validate_only": body["validate_only"]}, done)


HANDLERS = {DESCRIBE_CLIENT_QUOTAS: handle_describe, ALTER_CLIENT_QUOTAS: handle_alter}
