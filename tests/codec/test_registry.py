"""The set of served APIs and the ranges hpbroker advertises are a contract with real clients."""

from netio.codec import APIS, api_versions_table
from netio.codec.apis import admin, core, groups

EXPECTED = {
    "ApiVersions": (18, 0, 3), "Metadata": (3, 0, 8), "Produce": (0, 0, 8), "Fetch": (1, 4, 11),
    "ListOffsets": (2, 1, 5), "CreateTopics": (19, 0, 4), "DeleteTopics": (20, 0, 3),
    "CreatePartitions": (37, 0, 1), "FindCoordinator": (10, 0, 2), "JoinGroup": (11, 0, 5),
    "SyncGroup": (14, 0, 3), "Heartbeat": (12, 0, 3), "LeaveGroup": (13, 0, 3), "OffsetCommit": (8, 2, 7),
    "OffsetFetch": (9, 1, 5), "OffsetDelete": (47, 0, 0), "DescribeGroups": (15, 0, 4),
    "ListGroups": (16, 0, 4), "DeleteGroups": (42, 0, 1), "InitProducerId": (22, 0, 1),
    "OffsetForLeaderEpoch": (23, 2, 3), "DescribeConfigs": (32, 0, 3), "AlterConfigs": (33, 0, 1),
    "IncrementalAlterConfigs": (44, 0, 1), "DeleteRecords": (21, 0, 1), "DescribeCluster": (60, 0, 1),
    "DescribeLogDirs": (35, 0, 1), "SaslHandshake": (17, 0, 1), "SaslAuthenticate": (36, 0, 1),
    "DescribeAcls": (29, 0, 3), "CreateAcls": (30, 0, 3), "DeleteAcls": (31, 0, 3),
    "DescribeTopicPartitions": (75, 0, 0), "DescribeProducers": (61, 0, 0), "ElectLeaders": (43, 0, 2),
    "AlterPartitionReassignments": (45, 0, 0), "ListPartitionReassignments": (46, 0, 0), "ListTransactions": (66, 0, 1),
    "DescribeUserScramCredentials": (50, 0, 0), "AlterUserScramCredentials": (51, 0, 0),
    "DescribeClientQuotas": (48, 0, 1), "AlterClientQuotas": (49, 0, 1),
}

CORE = {"ApiVersions", "Metadata", "Produce", "Fetch", "ListOffsets", "CreateTopics", "DeleteTopics",
        "CreatePartitions", "InitProducerId", "OffsetForLeaderEpoch", "DeleteRecords", "SaslHandshake",
        "SaslAuthenticate"}


def test_exactly_the_named_apis_are_served_with_their_ranges():
    served = {api.name: (key, *api.versions) for key, api in APIS.items()}
    assert served == EXPECTED
    assert all(api.key == key for key, api in APIS.items())


def test_core_module_holds_the_core_apis():
    declared = {v.name for v in vars(core).values() if isinstance(v, type(APIS[0]))}
    assert declared == CORE
    others = {v.name for m in (groups, admin) for v in vars(m).values() if isinstance(v, type(APIS[0]))}
    assert others == set(EXPECTED) - CORE


def test_produce_is_advertised_from_v0_but_refuses_v0_to_v2():
    produce = APIS[0]
    assert produce.versions == (0, 8)
    assert [v for v in range(0, 9) if not produce.accepts(v)] == [0, 1, 2]
    assert all(api.accepts(v) for key, api in APIS.items() if key != 0 for v in range(api.versions[0],
                                                                                        api.versions[1] + 1))


def test_api_versions_table_lists_every_api_once_in_key_order():
    table = api_versions_table()
    assert [row["api_key"] for row in table] == sorted(APIS)
    assert {row["api_key"]: (row["min_version"], row["max_version"]) for row in table} == {
        key: (lo, hi) for key, lo, hi in EXPECTED.values()}


def test_non_flexible_versions_cover_what_non_flexible_clients_need():
    # aiokafka / kafkajs / old librdkafka never send flexible versions: each API they use must serve a
    # non-flexible version (some newer APIs exist only as flexible), and core data-path ranges must stay
    # non-flexible end to end.
    only_flexible = {"DescribeCluster", "DescribeTopicPartitions", "DescribeProducers", "ListPartitionReassignments",
                     "AlterPartitionReassignments",
                     "ListTransactions", "DescribeUserScramCredentials", "AlterUserScramCredentials"}
    for api in APIS.values():
        if api.name not in only_flexible:
            assert not api.is_flexible(api.versions[0]), api.name
    for name in ("Produce", "Fetch", "Metadata", "ListOffsets"):
        api = next(a for a in APIS.values() if a.name == name)
        assert not any(api.is_flexible(v) for v in range(api.versions[0], api.versions[1] + 1))
