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
