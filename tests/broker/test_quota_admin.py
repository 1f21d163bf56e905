"""The pure rules of client quota administration (broker.quota_admin), as Kafka's controller applies them."""

from __future__ import annotations

import pytest

from broker.quota_admin import QuotaRequestError, alter, describe, value_problem
from broker.quotas import entity_key
from netio.codec import ErrorCode

ALICE = entity_key({"user": "alice"})
ALICE_APP = entity_key({"user": "alice", "client-id": "app"})
DEFAULT_USER = entity_key({"user": None})
STORED = {ALICE: {"producer_byte_rate": 10.0}, ALICE_APP: {"consumer_byte_rate": 20.0},
          DEFAULT_USER: {"producer_byte_rate": 30.0}}


def names(entries: list[dict]) -> list[list]:
    return [[(e["entity_type"], e["entity_name"]) for e in entry["entity"]] for entry in entries]


def test_describe_matches_names_defaults_and_types_and_strict_wants_nothing_else():
    exact = [{"entity_type": "user", "match_type": 0, "match": "alice"}]
    assert names(describe(STORED, exact, False)) == [[("user", "alice"), ("client-id", "app")], [("user", "alice")]]
    assert names(describe(STORED, exact, True)) == [[("user", "alice")]]
    default = [{"entity_type": "user", "match_type": 1, "match": None}]
    assert names(describe(STORED, default, False)) == [[("user", None)]]
    specified = [{"entity_type": "client-id", "match_type": 2, "match": None}]
    assert names(describe(STORED, specified, False)) == [[("user", "alice"), ("client-id", "app")]]
    assert describe(STORED, specified, True) == []
    assert len(describe(STORED, [], False)) == 3 and describe(STORED, [], True) == []
    assert describe(STORED, exact, True)[0]["values"] == [{"key": "producer_byte_rate", "value": 10.0}]


@pytest.mark.parametrize("components,code", [
    ([{"entity_type": "nope", "match_type": 0, "match": "x"}], ErrorCode.UNSUPPORTED_VERSION),
    ([{"entity_type": "user", "match_type": 2, "match": None}] * 2, ErrorCode.INVALID_REQUEST),
    ([{"entity_type": "user", "match_type": 0, "match": None}], ErrorCode.INVALID_REQUEST),
    ([{"entity_type": "user", "match_type": 3, "match": None}], ErrorCode.INVALID_REQUEST),
])
def test_describe_refuses_what_kafka_refuses(components, code):
    with pytest.raises(QuotaRequestError) as refused:
        describe(STORED, components, False)
    assert refused.value.code == code


def test_values_must_be_whole_positive_longs_of_an_enforced_key():
    assert value_problem("producer_byte_rate", 1024.0) is None
    assert value_problem("producer_byte_rate", 1024.0000001) is None  # within Kafka's rounding allowance
    assert value_problem("request_percentage", 50.0) is None
    assert value_problem("request_percentage", 0.5) is None  # a DOUBLE: a fraction of one core is fine
    for key, value in (("producer_byte_rate", 0.0), ("consumer_byte_rate", -1.0), ("consumer_byte_rate", 2.5),
                       ("producer_byte_rate", float("nan")), ("producer_byte_rate", 2.0 ** 63 * 2),
                       ("request_percentage", 0.0), ("request_percentage", float("inf")),
                       ("controller_mutation_rate", 5.0), ("nonsense", 1.0)):
        assert value_problem(key, value)[0] == ErrorCode.INVALID_REQUEST, (key, value)


def test_alter_applies_each_entry_whole_and_drops_an_entity_left_without_keys():
    results, changed = alter(STORED, [
        [[["user", "alice"]], [["producer_byte_rate", 0, True]]],
        [[["user", "bob"]], [["producer_byte_rate", 5, False], ["consumer_byte_rate", 0.5, False]]],
        [[["client-id", None]], [["consumer_byte_rate", 7, False]]],
        [[["user", None]], [["producer_byte_rate", 30.0, False]]],  # unchanged
    ])
    assert [code for code, _ in results] == [0, int(ErrorCode.INVALID_REQUEST), 0, 0]
    assert changed == {ALICE: {}, entity_key({"client-id": None}): {"consumer_byte_rate": 7.0}}
