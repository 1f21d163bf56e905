"""DescribeAcls, CreateAcls, DeleteAcls: there is no authorizer, so every one is answered with
SECURITY_DISABLED, as a Kafka broker without an authorizer answers them. Admin tools then say that ACLs
are off instead of failing on an API the broker does not serve."""

from __future__ import annotations

from netio.codec import ErrorCode

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31

_MESSAGE = "No authorizer is configured on the broker: ACLs are not supported"


def handle_acls(dispatcher, conn, header, body: dict, slot) -> None:
    code = int(ErrorCode.SECURITY_DISABLED)
    if header.api_key == DESCRIBE_ACLS:
        slot.reply({"throttle_time_ms": 0, "error_code": code, "error_message": _MESSAGE, "resources": []})
    elif header.api_key == CREATE_ACLS:
        slot.reply({"throttle_time_ms": 0, "results": [{"error_code": code, "error_message": _MESSAGE}
                                                        for _ in body["creations"]]})
    else:
        slot.reply({"throttle_time_ms": 0, "filter_results": [
            {"error_code": code, "error_message": _MESSAGE, "matching_acls": []} for _ in body["filters"]]})


HANDLERS = {DESCRIBE_ACLS: handle_acls, CREATE_ACLS: handle_acls, DELETE_ACLS: handle_acls}

# Authorized operations (KIP-430), asked for by Metadata, DescribeCluster and DescribeGroups. With no authorizer
# every client may do all that a resource type supports, so Kafka answers that whole set, one bit per
# AclOperation code. A request that does not ask leaves the field out of the reply, and the codec writes the
# schema's default, -2^31 ("not requested").
_READ, _WRITE, _CREATE, _DELETE, _ALTER, _DESCRIBE = 3, 4, 5, 6, 7, 8
_CLUSTER_ACTION, _DESCRIBE_CONFIGS, _ALTER_CONFIGS, _IDEMPOTENT_WRITE = 9, 10, 11, 12


def _bits(*codes: int) -> int:
    return sum(1 << c for c in codes)


TOPIC_OPERATIONS = _bits(_READ, _WRITE, _CREATE, _DESCRIBE, _DELETE, _ALTER, _DESCRIBE_CONFIGS, _ALTER_CONFIGS)
GROUP_OPERATIONS = _bits(_READ, _DESCRIBE, _DELETE)
CLUSTER_OPERATIONS = _bits(_CREATE, _CLUSTER_ACTION, _DESCRIBE_CONFIGS, _ALTER_CONFIGS, _IDEMPOTENT_WRITE, _ALTER,
                           _DESCRIBE)
