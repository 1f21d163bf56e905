"""The ACL authorizer's decisions (Kafka's rules: deny wins, implied DESCRIBE, wildcards, prefixes, super users,
allow.everyone.if.no.acl.found), binding validation and filter matching, and the RFC 2253 names client
certificates give principals. A linear re-reading of the rules is the oracle for random binding sets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.security import acl
from broker.security.acl import (ALL, ALLOW, ALTER, ALTER_CONFIGS, ANY, CLUSTER, CLUSTER_NAME, CREATE, DELETE, DENY,
                                 DESCRIBE, DESCRIBE_CONFIGS, GROUP, IDEMPOTENT_WRITE, LITERAL, MATCH, PREFIXED, READ,
                                 TOPIC, WRITE, AclBinding, AclFilter, Authorizer)
from broker.security.principal import NoMatchingRule, PrincipalMapper
from netio.tls import subject_name

ALICE, BOB = "User:alice", "User:bob"


def b(name, op, principal=ALICE, perm=ALLOW, rtype=TOPIC, pattern=LITERAL, host="*") -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def test_allow_and_deny_on_a_literal_topic():
    a = Authorizer([b("orders", WRITE), b("orders", WRITE, BOB, DENY)])
    assert a.allowed(ALICE, "10.0.0.1", WRITE, TOPIC, "orders")
    assert not a.allowed(ALICE, "10.0.0.1", READ, TOPIC, "orders")  # only what was granted
    assert not a.allowed(BOB, "10.0.0.1", WRITE, TOPIC, "orders")
    assert not a.allowed(ALICE, "10.0.0.1", WRITE, TOPIC, "orders2")  # no ACL names it: closed by default


def test_deny_wins_over_allow_whatever_the_pattern():
    a = Authorizer([b("*", ALL), b("pay", WRITE, perm=DENY, pattern=PREFIXED)])
    assert a.allowed(ALICE, "h", WRITE, TOPIC, "orders")
    assert not a.allowed(ALICE, "h", WRITE, TOPIC, "payments")
    assert a.allowed(ALICE, "h", READ, TOPIC, "payments")
    assert not Authorizer([b("t", ALL), b("t", ALL, perm=DENY)]).allowed(ALICE, "h", DESCRIBE, TOPIC, "t")


def test_read_write_delete_alter_imply_describe_and_alter_configs_implies_describe_configs():
    for op in (READ, WRITE, DELETE, ALTER):
        assert Authorizer([b("t", op)]).allowed(ALICE, "h", DESCRIBE, TOPIC, "t")
    assert not Authorizer([b("t", CREATE)]).allowed(ALICE, "h", DESCRIBE, TOPIC, "t")
    assert Authorizer([b("t", ALTER_CONFIGS)]).allowed(ALICE, "h", DESCRIBE_CONFIGS, TOPIC, "t")
    assert not Authorizer([b("t", DESCRIBE_CONFIGS)]).allowed(ALICE, "h", ALTER_CONFIGS, TOPIC, "t")
    # A DENY of READ does not deny DESCRIBE (Kafka implies only allows).
    a = Authorizer([b("t", DESCRIBE), b("t", READ, perm=DENY)])
    assert a.allowed(ALICE, "h", DESCRIBE, TOPIC, "t") and not a.allowed(ALICE, "h", READ, TOPIC, "t")


def test_wildcard_principal_and_host():
    a = Authorizer([b("t", READ, "User:*"), b("t", WRITE, host="10.0.0.1")])
    assert a.allowed(BOB, "10.9.9.9", READ, TOPIC, "t")
    assert a.allowed(ALICE, "10.0.0.1", WRITE, TOPIC, "t")
    assert not a.allowed(ALICE, "10.0.0.2", WRITE, TOPIC, "t")


def test_super_users_and_allow_everyone_if_no_acl_found():
    a = Authorizer([b("t", READ)], super_users={"User:admin"}, allow_if_no_acl=True)
    assert a.allowed("User:admin", "h", ALTER, CLUSTER, CLUSTER_NAME)
    assert a.allowed(BOB, "h", WRITE, TOPIC, "other")  # nothing names it
    assert not a.allowed(BOB, "h", READ, TOPIC, "t")  # an ACL names it, none for bob
    assert not Authorizer([]).allowed(BOB, "h", READ, TOPIC, "t")


def test_resource_types_do_not_mix():
    a = Authorizer([b("x", READ, rtype=GROUP)])
    assert a.allowed(ALICE, "h", READ, GROUP, "x") and not a.allowed(ALICE, "h", READ, TOPIC, "x")


def test_allowed_on_any_topic_for_idempotent_producers():
    assert Authorizer([b("orders", WRITE)]).allowed_on_any(ALICE, "h", WRITE, TOPIC)
    assert not Authorizer([b("orders", READ)]).allowed_on_any(ALICE, "h", WRITE, TOPIC)
    assert not Authorizer([b("orders", WRITE), b("orders", WRITE, perm=DENY)]).allowed_on_any(ALICE, "h", WRITE,
                                                                                               TOPIC)
    assert not Authorizer([b("ord", WRITE, pattern=PREFIXED), b("o", ALL, perm=DENY, pattern=PREFIXED)]) \
        .allowed_on_any(ALICE, "h", WRITE, TOPIC)
    assert not Authorizer([b("orders", WRITE), b("*", WRITE, perm=DENY)]).allowed_on_any(ALICE, "h", WRITE, TOPIC)
    assert Authorizer([], allow_if_no_acl=True).allowed_on_any(ALICE, "h", WRITE, TOPIC)
    assert not Authorizer([b("g", READ, rtype=GROUP), b("t", READ)], allow_if_no_acl=True) \
        .allowed_on_any(ALICE, "h", WRITE, TOPIC)


def test_authorized_operations_bits():
    a = Authorizer([b("t", READ), b(CLUSTER_NAME, IDEMPOTENT_WRITE, rtype=CLUSTER)])
    assert a.operations(ALICE, "h", TOPIC, "t") == (1 << READ) | (1 << DESCRIBE)
    assert a.operations(ALICE, "h", CLUSTER, CLUSTER_NAME) == 1 << IDEMPOTENT_WRITE
    assert Authorizer([], super_users={ALICE}).operations(ALICE, "h", GROUP, "g") == \
        sum(1 << op for op in acl.SUPPORTED[GROUP])


def test_binding_problems():
    assert acl.binding_problem(b("t", READ)) is None
    assert "resourceType" in acl.binding_problem(b("t", READ, rtype=ANY))
    assert "patternType" in acl.binding_problem(b("t", READ, pattern=MATCH))
    assert "operation" in acl.binding_problem(b("t", ANY))
    assert "permissionType" in acl.binding_problem(b("t", READ, perm=ANY))
    assert "empty" in acl.binding_problem(b("", READ))
    assert "kafka-cluster" in acl.binding_problem(b("other", ALTER, rtype=CLUSTER))
    assert "principal" in acl.binding_problem(b("t", READ, principal="alice"))


def test_filters_match_as_kafka_filters():
    lit, star, pre = b("orders", READ), b("*", READ), b("ord", READ, pattern=PREFIXED)
    every = AclFilter(ANY, None, ANY, None, None, ANY, ANY)
    assert all(acl.matches(every, x) for x in (lit, star, pre))
    match = AclFilter(TOPIC, "orders", MATCH, None, None, ANY, ANY)
    assert all(acl.matches(match, x) for x in (lit, star, pre))
    assert not acl.matches(AclFilter(TOPIC, "other", MATCH, None, None, ANY, ANY), pre)
    exact = AclFilter(TOPIC, "orders", LITERAL, None, None, ANY, ANY)
    assert acl.matches(exact, lit) and not acl.matches(exact, star) and not acl.matches(exact, pre)
    by_name_any_pattern = AclFilter(TOPIC, "ord", ANY, None, None, ANY, ANY)
    assert acl.matches(by_name_any_pattern, pre) and not acl.matches(by_name_any_pattern, lit)
    assert not acl.matches(AclFilter(ANY, None, ANY, BOB, None, ANY, ANY), lit)
    assert not acl.matches(AclFilter(ANY, None, ANY, None, None, WRITE, ANY), lit)
    assert not acl.matches(AclFilter(ANY, None, ANY, None, None, ANY, DENY), lit)
    assert acl.filter_problem(AclFilter(0, None, ANY, None, None, ANY, ANY))


def test_super_users_parse_semicolon_separated_principals():
    assert acl.parse_super_users("User:admin; User:CN=ops,O=Example") == {"User:admin", "User:CN=ops,O=Example"}
    assert acl.parse_super_users(None) == frozenset()


def test_certificate_subjects_are_rfc2253_names():
    cert = {"subject": ((("countryName", "DE"),), (("organizationName", "Example, Inc"),),
                        (("organizationalUnitName", "ops"),), (("commonName", "alice"),))}
    assert subject_name(cert) == "CN=alice,OU=ops,O=Example\\, Inc,C=DE"
    assert subject_name({"subject": ((("commonName", "#x "),),)}) == "CN=\\#x\\ "
    assert subject_name({"subject": ((("commonName", "a"), ("userId", "7")),)}) == "CN=a+UID=7"


def test_principal_mapping_rules_as_kafka_writes_them():
    m = PrincipalMapper(r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,"
                        r"RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT")
    assert m.name("CN=kafka1,OU=ServiceUsers,O=Org,C=US") == "kafka1"
    assert m.name("CN=Duke,OU=JavaSoft,O=Sun Microsystems,C=US") == "duke@javasoft"
    assert m.name("cn=duke,ou=javasoft") == "DUKE"
    assert m.name("OU=JavaSoft,O=Sun") == "OU=JavaSoft,O=Sun"  # DEFAULT: the whole name
    assert PrincipalMapper(None).name("CN=x,O=y") == "CN=x,O=y"
    assert PrincipalMapper(r"RULE:^CN=(.*)\/(.*)$/$2-$1/").name("CN=a/b") == "b-a"  # an escaped slash
    with pytest.raises(NoMatchingRule):
        PrincipalMapper("RULE:^CN=(.*)$/$1/").name("OU=x")
    for bad in ("RULE:x", "RULE:(/x/", "SOMETHING"):
        with pytest.raises(ValueError):
            PrincipalMapper(bad)


# -- random binding sets against a plain reading of the rules -----------------------------------------------

NAMES = ["a", "ab", "abc", "b", "*"]
PRINCIPALS = [ALICE, BOB, "User:*"]
HOSTS = ["1.1.1.1", "*"]
OPS = [ALL, READ, WRITE, DESCRIBE, ALTER, ALTER_CONFIGS, DESCRIBE_CONFIGS]

bindings = st.builds(AclBinding, st.sampled_from([TOPIC, GROUP]), st.sampled_from(NAMES),
                     st.sampled_from([LITERAL, PREFIXED]), st.sampled_from(PRINCIPALS), st.sampled_from(HOSTS),
                     st.sampled_from(OPS), st.sampled_from([ALLOW, DENY]))


def oracle(bs, supers, open_if_none, principal, host, op, rtype, name) -> bool:
    if principal in supers:
        return True

    def names_it(x):
        if x.resource_type != rtype:
            return False
        if x.pattern_type == PREFIXED:
            return name.startswith(x.resource_name)
        return x.resource_name in (name, "*")

    relevant = [x for x in bs if names_it(x)]
    if not relevant:
        return open_if_none
    mine = [x for x in relevant if x.principal in (principal, "User:*") and x.host in (host, "*")]
    if any(x.permission == DENY and x.operation in (ALL, op) for x in mine):
        return False
    implied = {DESCRIBE: {READ, WRITE, DELETE, ALTER}, DESCRIBE_CONFIGS: {ALTER_CONFIGS}}.get(op, set())
    return any(x.permission == ALLOW and (x.operation in (ALL, op) or x.operation in implied) for x in mine)


@settings(max_examples=300, deadline=None)
@given(st.lists(bindings, max_size=12), st.booleans(), st.booleans(),
       st.lists(st.tuples(st.sampled_from([ALICE, BOB, "User:admin"]), st.sampled_from(["1.1.1.1", "2.2.2.2"]),
                          st.sampled_from([READ, WRITE, DESCRIBE, ALTER_CONFIGS, DESCRIBE_CONFIGS, DELETE]),
                          st.sampled_from([TOPIC, GROUP]), st.sampled_from(["a", "ab", "abc", "b", "c"])),
                min_size=1, max_size=20))
def test_decisions_match_a_plain_reading_of_the_rules(bs, admin_is_super, open_if_none, questions):
    supers = {"User:admin"} if admin_is_super else set()
    a = Authorizer(bs, supers, open_if_none)
    checkers = {}
    for q in questions + questions:  # asked twice: remembered answers must be the same answers
        want = oracle(bs, supers, open_if_none, *q)
        assert a.allowed(*q) == want, q
        may = checkers.setdefault(q[:2], a.checker(*q[:2]))  # a connection's checker
        assert may(*q[2:]) == want, q
