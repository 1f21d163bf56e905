"""Request handlers, one module per API family; the dispatcher routes a decoded request to its handler.

Handlers run in the network worker that received the request. They answer from local state where they can
(ApiVersions, Metadata, Fetch) and hand work that belongs to a partition's owner to the I/O workers.
"""

from __future__ import annotations

import time
from typing import Callable

from broker.config import SASL_LISTENERS, serves_oauthbearer
from broker.logfmt import Log
from broker.metrics import PROC
from broker.security import acl as acl_names
from broker.security.acl import ANONYMOUS
from broker.security.sasl import SASL_HANDSHAKE
from broker.shm import layout as _ml
from netio.codec import (ErrorCode, Request, UnsupportedVersion, api_versions_table, decode_request, decode_response,
                         encode_request)
from netio.codec.fetch import decode_fetch_request
from netio.codec.produce import decode_produce_request
from netio.codec.produce import from_generic as produce_from_generic
from netio.connection import Connection, Slot

log = Log("hpbroker.api")

Handler = Callable[["Dispatcher", Connection, object, dict, Slot], None]

# Modules whose HANDLERS run in the network worker. A module may also define FORWARDED: api keys whose
# requests go whole to a partition owner (see `forward`), with a function choosing the owner.
HANDLER_MODULES = ("versions", "metadata", "produce", "fetch", "offsets", "topics", "configs", "cluster", "admin",
                   "producer_id", "groups", "epochs", "acls", "sasl", "scram", "quotas")


class Dispatcher:
    """Routes requests by api key. `ctx` carries what handlers need from the worker: metadata, config, rings."""

    def __init__(self, ctx):
        import importlib

        self.ctx = ctx
        self.handlers: dict[int, Handler] = {}
        for name in HANDLER_MODULES:
            module = importlib.import_module(f"broker.api.{name}")
            self.handlers.update(getattr(module, "HANDLERS", {}))
        self.credentials = None  # SASL users, read from the configuration on the first SASL connection
        self.credentials_version = -1  # the metadata snapshot whose stored SCRAM credentials it holds
        self.stored_scram: dict = {}
        self.mapper = None  # broker.security.principal.PrincipalMapper, made at the first client certificate
        # broker.security.oauthbearer.Validator; made now, so a JWKS is read before the worker serves anyone
        self.tokens = self._token_validator() if serves_oauthbearer(ctx.config) else None

    def session(self, listener: str | None):
        """A connection's authentication state: a `broker.security.sasl.Session` on a SASL listener."""
        if listener not in SASL_LISTENERS:
            return None
        from broker.security.sasl import Credentials, Session

        cfg = self.ctx.config
        if self.credentials is None:
            self.credentials = Credentials.from_config(cfg["sasl.users"])
        md = self.ctx.metadata.current(max_age=0)  # a user added a moment ago can log in
        if md.version != self.credentials_version:  # credentials altered since: the next login sees them
            self.credentials_version = md.version
            if md.scram != self.stored_scram:
                self.stored_scram = md.scram
                self.credentials.set_stored(md.scram)
        return Session(self.credentials, cfg["sasl.enabled.mechanisms"], cfg["sasl.server.max.receive.size"],
                       self.tokens)

    def _token_validator(self):
        """This worker's OAUTHBEARER token validator; with a JWKS endpoint its keys are fetched at once and
        refreshed on a thread."""
        from broker.security.oauthbearer import Jwks, Validator

        cfg = self.ctx.config
        url = cfg["sasl.oauthbearer.jwks.endpoint.url"]
        keys = None
        if url:
            keys = Jwks(url, cfg["sasl.oauthbearer.jwks.endpoint.refresh.ms"] / 1000.0)
            keys.start()
        return Validator(keys, tuple(cfg["sasl.oauthbearer.expected.audience"] or ()),
                         cfg["sasl.oauthbearer.expected.issuer"], cfg["sasl.oauthbearer.sub.claim.name"],
                         cfg["sasl.oauthbearer.clock.skew.seconds"])

    # -- authorization --------------------------------------------------------------------------------

    def principal(self, conn: Connection) -> tuple[str, str]:
        """(principal, client address) of a connection: the SASL user, else the subject of a verified
        client certificate (mapped by ssl.principal.mapping.rules), else User:ANONYMOUS, as Kafka's default
        principal builder names them. Raises NoMatchingRule for a subject no rule maps."""
        p = conn.principal
        if p is None:
            subject = conn.sock.peer_subject() if conn.tls else None
            if subject:
                if self.mapper is None:
                    from broker.security.principal import PrincipalMapper

                    self.mapper = PrincipalMapper(self.ctx.config["ssl.principal.mapping.rules"])
                subject = self.mapper.name(subject)
            p = conn.principal = (f"User:{subject}" if subject else ANONYMOUS, conn.client_host())
        return p

    def access(self, conn: Connection):
        """`may(operation, resource_type, name) -> bool` for this connection's principal, or None when no
        authorizer is configured (everything is allowed): handlers on the data path test for None once."""
        authz = self.ctx.authorizer()
        if authz is None:
            return None
        cached = conn.access
        if cached is not None and cached[0] is authz:
            return cached[1]
        principal, host = self.principal(conn)

        def denied(op: int, rtype: int, name: str, first: bool) -> None:  # logged once per connection and question
            PROC.scalars[_ml.MS_AUTHZ_DENIALS] += 1
            if first:
                log.info("authorization denied", conn=conn.id, peer=conn.peer, principal=principal,
                         operation=acl_names.name_of(acl_names.OPERATIONS, op).upper(),
                         resource=f"{acl_names.name_of(acl_names.RESOURCE_TYPES, rtype)}:{name}")

        may = authz.checker(principal, host, denied)
        conn.access = (authz, may)
        return may

    def allowed(self, conn: Connection, op: int, rtype: int, name: str) -> bool:
        may = self.access(conn)
        return may is None or may(op, rtype, name)

    def operations(self, conn: Connection, rtype: int, name: str, everything: int) -> int:
        """Authorized operations (KIP-430) of a resource: `everything` when no authorizer is configured."""
        authz = self.ctx.authorizer()
        if authz is None:
            return everything
        return authz.operations(*self.principal(conn), rtype, name)

    def token(self, conn: Connection, frame: memoryview) -> None:
        from broker.api.sasl import raw_token

        raw_token(self, conn, frame)

    def decode(self, frame: memoryview) -> tuple:
        """(header, body): Produce and Fetch through their fast paths, everything else generically."""
        if len(frame) >= 2:
            key = frame[1] if frame[0] == 0 else -1
            if key == 0:
                try:
                    req = decode_produce_request(frame)
                except UnsupportedVersion as e:
                    if getattr(e, "body", None) is None:
                        raise
                    # Advertised but refused (v0-2): answer every partition with UNSUPPORTED_VERSION.
                    req = produce_from_generic(Request(e.header, e.body))
                return req.header, req
            if key == 1:
                req = decode_fetch_request(frame)
                return req.header, req
        req = decode_request(frame)
        return req.header, req.body

    def dispatch(self, conn: Connection, header, body, slot: Slot, frame: memoryview) -> None:
        if conn.auth is not None and header.api_key not in conn.auth.expects:
            log.warning("request before sasl authentication", api_key=header.api_key, conn=conn.id, peer=conn.peer)
            slot.fail_connection(f"api {header.api_key} before SASL authentication")
            return
        sasl = conn.sasl
        if sasl is not None and sasl[1] and conn.auth is None and header.api_key != SASL_HANDSHAKE \
                and time.monotonic() > sasl[1]:
            log.info("sasl session expired", conn=conn.id, peer=conn.peer, principal=conn.principal[0])
            slot.fail_connection("SASL session expired without re-authentication")
            return
        if conn.tls and conn.principal is None and conn.auth is None:  # a certificate names it, or nothing
            from broker.security.principal import NoMatchingRule

            try:
                self.principal(conn)
            except NoMatchingRule as e:
                log.warning("client certificate refused", conn=conn.id, peer=conn.peer, reason=str(e))
                slot.fail_connection(str(e))
                return
        handler = self.handlers.get(header.api_key)
        if handler is None:
            log.warning("api not served", api_key=header.api_key, conn=conn.id)
            slot.fail_connection(f"api {header.api_key} not served")
            return
        self.frame = frame
        ctx = self.ctx
        rt = None
        md = ctx.metadata.peek()
        if md is not None and ctx.quotas.limits_requests(md):
            rt = self._request_time(md, conn, header, body, slot)
        try:
            handler(self, conn, header, body, slot)
        finally:
            self.frame = None  # the frame's receive buffer is reused once nothing refers to it
            if rt is not None:
                rt.handled()

    def client_quota(self, md, kind: int, conn: Connection, header) -> tuple[float, int] | None:
        """The quota of `kind` (broker.quotas.PRODUCE, FETCH, REQUEST) that applies to this connection's
        principal and the request's client id, or None."""
        from broker.quotas import principal_user

        return self.ctx.quotas.limit(md, kind, principal_user(self.principal(conn)[0]), header.client_id or "")

    def _request_time(self, md, conn: Connection, header, body, slot: Slot):
        """Time a request of a client under a request_percentage quota (`broker.quotas.RequestTime`); None
        for brokers' replica fetches, which Kafka exempts, and clients without one."""
        from broker.quotas import REQUEST, RequestTime

        if header.api_key == 1 and body.replica_id >= 0:
            return None
        quota = self.client_quota(md, REQUEST, conn, header)
        if quota is None:
            return None
        slot.request_time = RequestTime(self.ctx, conn, quota)
        return slot.request_time

    def forward(self, io: int, slot: Slot, key: int = -1) -> None:
        """Send the request being dispatched, as received, to I/O worker `io`; its owner-side handler
        answers with a complete response frame that goes out in this request's place. `key` is an
        owner-defined routing value (a partition-state slot, for instance)."""

        def done(result: tuple) -> None:
            _token, response = result
            if slot.request_time is not None:  # the owner encoded the answer: the quota mutes, it cannot say
                slot.request_time.charge()
            if response is None:  # the owner died holding it: the client reconnects and retries
                slot.fail_connection("partition owner restarted")
            elif response:
                slot.reply_parts([response])
            else:
                slot.no_reply()

        self.ctx.io.forward(io, key, self.frame, done)

    def narrow(self, header, body: dict) -> None:
        """Forward `body` in place of the request as received: the request with what the client may not
        touch taken out, so owners never act on it."""
        self.frame = memoryview(encode_request(header.api_key, header.api_version, header.correlation_id,
                                               header.client_id, body))[4:]

    def fan_out(self, header, owners: set[int], key: int, merge: Callable[[list[dict]], None]) -> None:
        """Send the request being dispatched, as received, to each I/O worker in `owners` (`key` as in
        `forward`); `merge` gets the decoded answers once all have come (an owner that died holding the
        request gives none). For requests that name partitions or groups of several owners."""
        frame = self.frame
        bodies: list[dict] = []
        left = [len(owners)]
        if not owners:
            merge(bodies)
            return

        def done(result: tuple) -> None:
            _token, response = result
            if response:
                try:
                    bodies.append(decode_response(header.api_key, header.api_version, memoryview(response)[4:])[1])
                except Exception as e:
                    log.error("owner answer does not decode", api_key=header.api_key, error=repr(e))
            left[0] -= 1
            if left[0] == 0:
                merge(bodies)

        for io in sorted(owners):
            self.ctx.io.forward(io, key, frame, done)

    def api_versions_error_body(self) -> dict:
        return {"error_code": int(ErrorCode.NONE), "api_keys": self.served_api_versions(), "throttle_time_ms": 0}

    def served_api_versions(self) -> list[dict]:
        return [v for v in api_versions_table() if v["api_key"] in self.handlers]
