"""InitProducerId (v0-1, idempotent producers): a fresh producer id, epoch 0, from this worker's block.

Ids come from blocks the supervisor reserves durably (broker/producers/ids.py), so they are unique across
network workers and restarts. Transactions are not served: a transactional id is refused with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Produce refuses transactional batches.
"""

from __future__ import annotations

from broker.logfmt import Log
from broker.producers.ids import CONTROL_OP, IdPool
from broker.security.acl import CLUSTER, CLUSTER_NAME, IDEMPOTENT_WRITE, TOPIC, WRITE
from netio.codec import ErrorCode

log = Log("hpbroker.api")

_pool: IdPool | None = None  # one per network worker process


def _ids(ctx) -> IdPool:
    global _pool
    if _pool is None:
        _pool = IdPool(lambda cb: ctx.controller.call({"op": CONTROL_OP}, cb))
    return _pool


def handle_init_producer_id(dispatcher, conn, header, body: dict, slot) -> None:
    def answer(code: int, pid: int = -1, epoch: int = -1) -> None:
        slot.reply({"throttle_time_ms": 0, "error_code": int(code), "producer_id": pid, "producer_epoch": epoch})

    if body.get("transactional_id") is not None:
        answer(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        return
    authz = dispatcher.ctx.authorizer()
    if authz is not None:  # an idempotent producer: IDEMPOTENT_WRITE on the cluster or WRITE on some topic
        principal, host = dispatcher.principal(conn)
        if not (authz.allowed(principal, host, IDEMPOTENT_WRITE, CLUSTER, CLUSTER_NAME)
                or authz.allowed_on_any(principal, host, WRITE, TOPIC)):
            answer(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
            return

    def got(pid: int | None) -> None:
        if pid is None:
            log.warning("no producer id block", conn=conn.id)
            answer(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        else:
            answer(ErrorCode.NONE, pid, 0)

    _ids(dispatcher.ctx).take(got)


HANDLERS = {22: handle_init_producer_id}
