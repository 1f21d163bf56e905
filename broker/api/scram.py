"""DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM users managed while the broker
runs, as `kafka-configs --entity-type users` and admin clients manage them.

Changes go to the controller, which stores each user's credentials (a single node's data directory, or etcd)
and publishes them in the metadata snapshot; network workers hand them to the next SCRAM login. A client sends
the salted password, never the password. Describing needs DESCRIBE on the cluster and altering ALTER, when an
authorizer is configured. Users of `sasl.users` are configuration, not stored credentials, and are not listed.
"""

from __future__ import annotations

import base64

from broker.security import acl
from broker.security.sasl import SCRAM_MECHANISM_CODES
from netio.codec import ErrorCode

DESCRIBE_USER_SCRAM_CREDENTIALS, ALTER_USER_SCRAM_CREDENTIALS = 50, 51
_CODES = {name: code for code, name in SCRAM_MECHANISM_CODES.items()}


def handle_describe(dispatcher, conn, header, body: dict, slot) -> None:
    if not dispatcher.allowed(conn, acl.DESCRIBE, acl.CLUSTER, acl.CLUSTER_NAME):
        return slot.reply({"throttle_time_ms": 0, "error_code": int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                           "error_message": "Authorization failed.", "results": []})
    stored = dispatcher.ctx.metadata.current(max_age=0).scram
    asked = [u["name"] for u in body.get("users") or ()]
    results = []
    for user in asked or sorted(stored):
        if asked.count(user) > 1:
            results.append(_error(user, ErrorCode.DUPLICATE_RESOURCE,
                                  "Cannot describe SCRAM credentials for the same user twice in a single request"))
        elif user not in stored:
            results.append(_error(user, ErrorCode.RESOURCE_NOT_FOUND,
                                  "Attempt to describe a user credential that does not exist"))
        else:
            results.append({"user": user, "error_code": 0, "error_message": None, "credential_infos": [
                {"mechanism": _CODES[m], "iterations": v[1]} for m, v in sorted(stored[user].items())]})
    slot.reply({"throttle_time_ms": 0, "error_code": 0, "error_message": None, "results": results})


def _error(user: str, code: ErrorCode, message: str) -> dict:
    return {"user": user, "error_code": int(code), "error_message": message, "credential_infos": []}


def handle_alter(dispatcher, conn, header, body: dict, slot) -> None:
    deletions = [[d["name"], d["mechanism"]] for d in body["deletions"]]
    upsertions = [[u["name"], u["mechanism"], u["iterations"], base64.b64encode(u["salt"]).decode(),
                   base64.b64encode(u["salted_password"]).decode()] for u in body["upsertions"]]
    users = list(dict.fromkeys(x[0] for x in deletions + upsertions))

    def answer(results: list) -> None:
        slot.reply({"throttle_time_ms": 0, "results": [{"user": u, "error_code": c, "error_message": m}
                                                       for u, c, m in results]})

    if not dispatcher.allowed(conn, acl.ALTER, acl.CLUSTER, acl.CLUSTER_NAME):
        return answer([(u, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), "Authorization failed.") for u in users])
    if not users:
        return answer([])

    def done(msg: dict) -> None:
        results = msg.get("results")
        if results is None:
            results = [(u, int(ErrorCode.COORDINATOR_NOT_AVAILABLE), msg.get("error")) for u in users]
        answer(results)

    dispatcher.ctx.controller.call({"op": "alter_scram", "deletions": deletions, "upsertions": upsertions}, done)


HANDLERS = {DESCRIBE_USER_SCRAM_CREDENTIALS: handle_describe, ALTER_USER_SCRAM_CREDENTIALS: handle_alter}
