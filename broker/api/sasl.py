"""SaslHandshake and SaslAuthenticate: a client on a SASL listener (SASL_PLAINTEXT, SASL_SSL) names its
mechanism, then trades tokens with it (`broker.security.sasl`) until it is authenticated or refused.

As Kafka does, a refusal is answered (SASL_AUTHENTICATION_FAILED with the reason, a delay later, or
UNSUPPORTED_SASL_MECHANISM with the mechanisms offered) and the connection closed after it; either request
on a connection that needs no authentication, or needs none any more, gets ILLEGAL_SASL_STATE.

With connections.max.reauth.ms (KIP-368) a login lasts that long (SaslAuthenticate v1 says so in
session_lifetime_ms): the client logs in again on the same connection, with the same mechanism and as the
same principal, or the connection is closed at its first request after the session ended.
"""

from __future__ import annotations

import struct
import time

from broker.logfmt import Log
from broker.metrics import PROC
from broker.shm import layout as _ml
from broker.security.sasl import SASL_AUTHENTICATE, SASL_HANDSHAKE, AuthenticationFailed
from netio.codec import ErrorCode

log = Log("hpbroker.sasl")


def handle_sasl_handshake(dispatcher, conn, header, body: dict, slot) -> None:
    session = conn.auth
    mechanism = body["mechanism"]
    if session is None and conn.sasl is not None and dispatcher.ctx.config["connections.max.reauth.ms"]:
        if header.api_version < 1 or mechanism != conn.sasl[0]:  # KIP-368: v1, and the mechanism it used
            log.warning("sasl re-authentication refused", conn=conn.id, peer=conn.peer, mechanism=mechanism,
                        previous=conn.sasl[0])
            slot.close_after = "re-authentication must use SaslHandshake v1 and the same mechanism"
            slot.reply({"error_code": int(ErrorCode.ILLEGAL_SASL_STATE), "mechanisms": [conn.sasl[0]]})
            return
        session = conn.auth = dispatcher.session(conn.listener)  # the old login stands until this one ends
    if session is None or SASL_HANDSHAKE not in session.expects:
        slot.close_after = "SaslHandshake in the wrong state"
        slot.reply({"error_code": int(ErrorCode.ILLEGAL_SASL_STATE), "mechanisms": []})
        return
    if not session.handshake(mechanism, header.api_version):
        log.warning("sasl mechanism not enabled", conn=conn.id, peer=conn.peer, mechanism=mechanism)
        slot.close_after = f"SASL mechanism {mechanism} not enabled"
        slot.reply({"error_code": int(ErrorCode.UNSUPPORTED_SASL_MECHANISM), "mechanisms": list(session.mechanisms)})
        return
    slot.reply({"error_code": 0, "mechanisms": list(session.mechanisms)})


def handle_sasl_authenticate(dispatcher, conn, header, body: dict, slot) -> None:
    session = conn.auth
    if session is None or SASL_AUTHENTICATE not in session.expects:
        slot.close_after = "SaslAuthenticate in the wrong state"
        slot.reply({"error_code": int(ErrorCode.ILLEGAL_SASL_STATE), "error_message": None, "auth_bytes": b""})
        return
    try:
        token, user = session.step(body["auth_bytes"] or b"")
    except AuthenticationFailed as e:
        _refused(conn, e)
        slot.close_after = "SASL authentication failed"
        answer = {"error_code": int(e.error_code), "error_message": str(e), "auth_bytes": b""}
        _later(dispatcher, lambda: slot.reply(answer))
        return
    if user is not None and conn.sasl is not None and f"User:{user}" != conn.principal[0]:
        e = AuthenticationFailed("Cannot change principals during re-authentication")
        _refused(conn, e)
        slot.close_after = "SASL re-authentication as another principal"
        answer = {"error_code": int(e.error_code), "error_message": str(e), "auth_bytes": b""}
        _later(dispatcher, lambda: slot.reply(answer))
        return
    lifetime_ms = 0
    if user is not None:  # only SaslAuthenticate v1+ can carry a lifetime, so only such logins get one
        lifetime_ms = dispatcher.ctx.config["connections.max.reauth.ms"] if header.api_version >= 1 else 0
        expires = session.expires()
        if lifetime_ms and expires is not None:  # KIP-368: a token's login ends with the token
            lifetime_ms = max(1, min(lifetime_ms, int((expires - time.time()) * 1000)))
        _authenticated(dispatcher, conn, session, user, lifetime_ms)
    slot.reply({"error_code": 0, "error_message": None, "auth_bytes": token, "session_lifetime_ms": lifetime_ms})


def raw_token(dispatcher, conn, frame: memoryview) -> None:
    """A token after a v0 handshake: a bare size-prefixed frame, answered the same way; a refusal closes
    the connection with no answer (the v0 exchange has no place for an error)."""
    session = conn.auth
    slot = conn.new_slot(SASL_AUTHENTICATE, 0, 0)
    try:
        token, user = session.step(bytes(frame))
    except AuthenticationFailed as e:
        _refused(conn, e)
        _later(dispatcher, lambda: slot.fail_connection("SASL authentication failed"))
        return
    if user is not None:
        _authenticated(dispatcher, conn, session, user, 0)
    slot.reply_parts([struct.pack(">i", len(token)) + token])


def _authenticated(dispatcher, conn, session, user: str, lifetime_ms: int) -> None:
    """The login took, for `lifetime_ms` (0: the connection's life)."""
    again = conn.sasl is not None
    conn.auth = None
    conn.principal = (f"User:{user}", conn.client_host())
    conn.sasl = (session.name, time.monotonic() + lifetime_ms / 1000.0 if lifetime_ms else 0.0)
    PROC.scalars[_ml.MS_SASL_LOGINS] += 1
    conn.reader.max_frame_bytes = dispatcher.ctx.config["socket.request.max.bytes"]
    log.info("sasl re-authenticated" if again else "sasl authenticated", conn=conn.id, peer=conn.peer, user=user,
             mechanism=session.name)


def _later(dispatcher, answer) -> None:
    """A refusal goes out connection.failed.authentication.delay.ms later, as Kafka delays it: a client
    guessing passwords gets one guess per delay and connection."""
    delay_ms = dispatcher.ctx.config["connection.failed.authentication.delay.ms"]
    if delay_ms:
        dispatcher.ctx.call_later(delay_ms / 1000.0, answer)
    else:
        answer()


def _refused(conn, e: AuthenticationFailed) -> None:
    PROC.scalars[_ml.MS_SASL_FAILURES] += 1
    log.warning("sasl authentication failed", conn=conn.id, peer=conn.peer, mechanism=conn.auth.name,
                reason=str(e))


HANDLERS = {SASL_HANDSHAKE: handle_sasl_handshake, SASL_AUTHENTICATE: handle_sasl_authenticate}
