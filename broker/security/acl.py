"""Access control lists, decided as Kafka's StandardAuthorizer decides them.

A binding is a resource pattern (type, name, LITERAL or PREFIXED) and an entry (principal, host, operation,
ALLOW or DENY). A principal may do an operation on a resource when it is a super user, or when a binding
that matches allows it and none that matches denies it. Bindings match a resource by exact name, by the
literal wildcard `*`, or by a prefix of the name; an entry by principal (or `User:*`) and client address
(or `*`). READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL
stands for every operation. A resource no binding names at all is open only with
`allow.everyone.if.no.acl.found`.

The numeric codes are the wire's (AclOperation, ResourceType, PatternType, AclPermissionType), so
requests, the metadata snapshot and etcd all carry bindings as the same seven numbers and strings.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

# ResourceType
UNKNOWN, ANY = 0, 1
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN, USER = 2, 3, 4, 5, 6, 7
# PatternType (UNKNOWN and ANY as above)
MATCH, LITERAL, PREFIXED = 2, 3, 4
# AclOperation (UNKNOWN and ANY as above)
ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 2, 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS = \
    9, 10, 11, 12, 13, 14
# AclPermissionType
DENY, ALLOW = 2, 3

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
ANONYMOUS = "User:ANONYMOUS"
WILDCARD_PRINCIPAL = "User:*"

RESOURCE_TYPES = {"topic": TOPIC, "group": GROUP, "cluster": CLUSTER, "transactional-id": TRANSACTIONAL_ID,
                  "delegation-token": DELEGATION_TOKEN, "user": USER}
PATTERN_TYPES = {"literal": LITERAL, "prefixed": PREFIXED, "match": MATCH, "any": ANY}
OPERATIONS = {"all": ALL, "read": READ, "write": WRITE, "create": CREATE, "delete": DELETE, "alter": ALTER,
              "describe": DESCRIBE, "cluster-action": CLUSTER_ACTION, "describe-configs": DESCRIBE_CONFIGS,
              "alter-configs": ALTER_CONFIGS, "idempotent-write": IDEMPOTENT_WRITE,
              "create-tokens": CREATE_TOKENS, "describe-tokens": DESCRIBE_TOKENS}
PERMISSIONS = {"allow": ALLOW, "deny": DENY}

# What each resource type supports: the operations reported as "authorized operations" (KIP-430).
SUPPORTED = {
    TOPIC: (READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, ALTER_CONFIGS),
    GROUP: (READ, DESCRIBE, DELETE),
    CLUSTER: (CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE),
    TRANSACTIONAL_ID: (DESCRIBE, WRITE),
    DELEGATION_TOKEN: (DESCRIBE,),
    USER: (CREATE_TOKENS, DESCRIBE_TOKENS),
}
_IMPLIES_DESCRIBE = frozenset({READ, WRITE, DELETE, ALTER, DESCRIBE})
_IMPLIES_DESCRIBE_CONFIGS = frozenset({ALTER_CONFIGS, DESCRIBE_CONFIGS})


class AclBinding(NamedTuple):
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int


class AclFilter(NamedTuple):
    """What DescribeAcls and DeleteAcls select: None names and ANY codes match everything."""

    resource_type: int
    resource_name: str | None
    pattern_type: int
    principal: str | None
    host: str | None
    operation: int
    permission: int


def name_of(table: dict[str, int], code: int) -> str:
    for name, value in table.items():
        if value == code:
            return name
    return "unknown" if code == UNKNOWN else "any" if code == ANY else str(code)


def binding_problem(b: AclBinding) -> str | None:
    """Why a binding cannot be created (INVALID_REQUEST), or None."""
    if b.resource_type not in SUPPORTED:
        return f"Invalid resourceType {b.resource_type}"
    if b.pattern_type not in (LITERAL, PREFIXED):
        return f"Invalid patternType {b.pattern_type}"
    if b.operation in (UNKNOWN, ANY) or not UNKNOWN <= b.operation <= DESCRIBE_TOKENS:
        return f"Invalid operation {b.operation}"
    if b.permission not in (ALLOW, DENY):
        return f"Invalid permissionType {b.permission}"
    if not b.resource_name:
        return "Resource name should not be empty"
    if b.resource_type == CLUSTER and b.resource_name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    problem = principal_problem(b.principal)
    if problem:
        return problem
    if not b.host:
        return "Host should not be empty: use * for every host"
    return None


def principal_problem(principal: str | None) -> str | None:
    if not principal or ":" not in principal:
        return (f"Could not parse principal from `{principal}` "
                "(no colon is present separating the principal type from the principal name)")
    kind, _, name = principal.partition(":")
    if not kind or not name:
        return f"Could not parse principal from `{principal}`"
    return None


def filter_problem(f: AclFilter) -> str | None:
    if UNKNOWN in (f.resource_type, f.pattern_type, f.operation, f.permission):
        return "The filter has an unknown element"
    return None


def matches(f: AclFilter, b: AclBinding) -> bool:
    """Kafka's AclBindingFilter.matches: MATCH selects the bindings that would apply to the named resource."""
    if f.resource_type != ANY and f.resource_type != b.resource_type:
        return False
    if f.pattern_type not in (ANY, MATCH) and f.pattern_type != b.pattern_type:
        return False
    if f.resource_name is not None:
        if f.pattern_type in (ANY, b.pattern_type):
            if f.resource_name != b.resource_name:
                return False
        elif b.pattern_type == LITERAL:
            if f.resource_name != b.resource_name and b.resource_name != WILDCARD:
                return False
        elif not f.resource_name.startswith(b.resource_name):
            return False
    return ((f.principal is None or f.principal == b.principal)
            and (f.host is None or f.host == b.host)
            and (f.operation == ANY or f.operation == b.operation)
            and (f.permission == ANY or f.permission == b.permission))


def parse_super_users(text: str | None) -> frozenset[str]:
    """super.users: principals separated by semicolons (a DN contains commas), as Kafka reads it."""
    return frozenset(p.strip() for p in (text or "").split(";") if p.strip())


def _grants(entry_op: int, op: int) -> bool:
    if entry_op == ALL or entry_op == op:
        return True
    if op == DESCRIBE:
        return entry_op in _IMPLIES_DESCRIBE
    if op == DESCRIBE_CONFIGS:
        return entry_op in _IMPLIES_DESCRIBE_CONFIGS
    return False


class Authorizer:
    """Decisions over one set of bindings (a metadata snapshot's); decisions are remembered, since a
    connection asks the same question for every Produce or Fetch it sends."""

    MAX_CACHED = 65536

    def __init__(self, bindings: Iterable[AclBinding], super_users: Iterable[str] = (),
                 allow_if_no_acl: bool = False):
        self.bindings = tuple(bindings)
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._literal: dict[tuple[int, str], list[AclBinding]] = {}
        self._prefixed: dict[int, list[AclBinding]] = {}
        self._by_type: dict[int, list[AclBinding]] = {}
        for b in self.bindings:
            self._by_type.setdefault(b.resource_type, []).append(b)
            if b.pattern_type == PREFIXED:
                self._prefixed.setdefault(b.resource_type, []).append(b)
            else:
                self._literal.setdefault((b.resource_type, b.resource_name), []).append(b)
        self._cache: dict[tuple, bool] = {}

    def _applicable(self, rtype: int, name: str) -> list[AclBinding]:
        out = list(self._literal.get((rtype, name), ()))
        if name != WILDCARD:
            out += self._literal.get((rtype, WILDCARD), ())
        out += [b for b in self._prefixed.get(rtype, ()) if name.startswith(b.resource_name)]
        return out

    def allowed(self, principal: str, host: str, op: int, rtype: int, name: str) -> bool:
        key = (principal, host, op, rtype, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._decide(principal, host, op, rtype, name)
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def checker(self, principal: str, host: str, on_denied=None):
        """`may(op, resource_type, name) -> bool` for one principal at one address, with its own memory of
        answers: a connection keeps one, so each Produce or Fetch costs a dictionary lookup per topic.
        `on_denied(op, resource_type, name, first)` hears of each refusal; `first` when it was just decided
        (not remembered)."""
        answers: dict[tuple[int, int, str], bool] = {}
        allowed = self.allowed

        def may(op: int, rtype: int, name: str) -> bool:
            key = (op, rtype, name)
            hit = answers.get(key)
            first = hit is None
            if first:
                if len(answers) >= self.MAX_CACHED:
                    answers.clear()
                hit = answers[key] = allowed(principal, host, op, rtype, name)
            if not hit and on_denied is not None:
                on_denied(op, rtype, name, first)
            return hit

        return may

    def _decide(self, principal: str, host: str, op: int, rtype: int, name: str) -> bool:
        if principal in self.super_users:
            return True
        bindings = self._applicable(rtype, name)
        if not bindings:
            return self.allow_if_no_acl
        allowed = False
        for b in bindings:
            if b.principal not in (principal, WILDCARD_PRINCIPAL) or b.host not in (host, WILDCARD):
                continue
            if b.permission == DENY:
                if b.operation in (ALL, op):
                    return False
            elif not allowed and _grants(b.operation, op):
                allowed = True
        return allowed

    def allowed_on_any(self, principal: str, host: str, op: int, rtype: int) -> bool:
        """Whether some resource of the type allows `op` (Kafka's authorizeByResourceType: InitProducerId
        of an idempotent producer asks for WRITE on any topic). An ALLOW counts unless a DENY covers
        everything it names: a literal one on the same name or the wildcard, or a prefix of it."""
        if principal in self.super_users:
            return True
        mine = [b for b in self._by_type.get(rtype, ())
                if b.principal in (principal, WILDCARD_PRINCIPAL) and b.host in (host, WILDCARD)]
        denies = [b for b in mine if b.permission == DENY and b.operation in (ALL, op)]
        if any(d.pattern_type == LITERAL and d.resource_name == WILDCARD for d in denies):
            return False
        for b in mine:
            if b.permission != ALLOW or b.operation not in (ALL, op):
                continue
            covered = any((d.pattern_type == LITERAL and d.resource_name == b.resource_name
                           and b.pattern_type == LITERAL)
                          or (d.pattern_type == PREFIXED and b.resource_name.startswith(d.resource_name))
                          for d in denies)
            if not covered:
                return True
        return self.allow_if_no_acl and not self._by_type.get(rtype)

    def operations(self, principal: str, host: str, rtype: int, name: str) -> int:
        """The authorized-operations bit field (KIP-430) of one resource for one principal."""
        return sum(1 << op for op in SUPPORTED[rtype] if self.allowed(principal, host, op, rtype, name))
