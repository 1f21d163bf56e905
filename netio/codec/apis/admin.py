"""Admin APIs: describing and altering configs, describing the cluster and log directory usage, ACLs.

Each constant is the one declaration the generic codec uses to encode and decode that API. `versions`
is the range hpbroker advertises; every field version string is Kafka's own, so the declarations can be
checked field by field against the official message schemas.
"""

from netio.codec.schema import Api, Field as F


# DescribeConfigs: reads topic (resource_type 2) or broker (4) configuration.
# is_default exists only in v0; from v1 config_source and synonyms replace it.
# Synonym value and documentation say nullable "0+" although the fields start at v1/v3: Kafka's own strings.
DESCRIBE_CONFIGS = Api(
    key=32, name="DescribeConfigs",
    versions=(0, 3),
    flexible="4+",
    request=(
        F("resources", "[]", fields=(
            F("resource_type", "int8"),
            F("resource_name", "string"),
            F("configuration_keys", "[]string", nullable="0+"),
        )),
        F("include_synonyms", "bool", versions="1+", default=False),
        F("include_documentation", "bool", versions="3+", default=False),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", "[]", fields=(
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
            F("resource_type", "int8"),
            F("resource_name", "string"),
            F("configs", "[]", fields=(
                F("name", "string"),
                F("value", "string", nullable="0+"),
                F("read_only", "bool"),
                F("is_default", "bool", versions="0"),
                F("config_source", "int8", versions="1+", default=-1, ignorable=True),
                F("is_sensitive", "bool"),
                F("synonyms", "[]", versions="1+", ignorable=True, fields=(
                    F("name", "string", versions="1+"),
                    F("value", "string", versions="1+", nullable="0+"),
                    F("source", "int8", versions="1+"),
                )),
                F("config_type", "int8", versions="3+", default=0, ignorable=True),
                F("documentation", "string", versions="3+", nullable="0+", ignorable=True),
            )),
        )),
    ),
)


# AlterConfigs: replaces a resource's whole set of dynamic configs (non-incremental; v1 equals v0).
ALTER_CONFIGS = Api(
    key=33, name="AlterConfigs",
    versions=(0, 1),
    flexible="2+",
    request=(
        F("resources", "[]", fields=(
            F("resource_type", "int8"),
            F("resource_name", "string"),
            F("configs", "[]", fields=(
                F("name", "string"),
                F("value", "string", nullable="0+"),
            )),
        )),
        F("validate_only", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("responses", "[]", fields=(
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
            F("resource_type", "int8"),
            F("resource_name", "string"),
        )),
    ),
)


# IncrementalAlterConfigs: per-key SET(0) / DELETE(1) / APPEND(2) / SUBTRACT(3) changes.
# v1 is the same message in flexible framing.
INCREMENTAL_ALTER_CONFIGS = Api(
    key=44, name="IncrementalAlterConfigs",
    versions=(0, 1),
    flexible="1+",
    request=(
        F("resources", "[]", fields=(
            F("resource_type", "int8"),
            F("resource_name", "string"),
            F("configs", "[]", fields=(
                F("name", "string"),
                F("config_operation", "int8"),
                F("value", "string", nullable="0+"),
            )),
        )),
        F("validate_only", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("responses", "[]", fields=(
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
            F("resource_type", "int8"),
            F("resource_name", "string"),
        )),
    ),
)


# DescribeCluster: brokers, cluster id and controller. Flexible from v0, so it is never sent in the
# old framing; v1 adds endpoint_type (1 = brokers, 2 = controllers).
DESCRIBE_CLUSTER = Api(
    key=60, name="DescribeCluster",
    versions=(0, 1),
    flexible="0+",
    request=(
        F("include_cluster_authorized_operations", "bool"),
        F("endpoint_type", "int8", versions="1+", default=1),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+", default=None),
        F("endpoint_type", "int8", versions="1+", default=1),
        F("cluster_id", "string"),
        F("controller_id", "int32", default=-1),
        F("brokers", "[]", fields=(
            F("broker_id", "int32"),
            F("host", "string"),
            F("port", "int32"),
            F("rack", "string", nullable="0+", default=None),
        )),
        F("cluster_authorized_operations", "int32", default=-2147483648),
    ),
)


# DescribeTopicPartitions (KIP-966): what Metadata says of partitions, in pages: a response stops at a
# partition limit and names where the next page starts (`next_cursor`). Flexible in its only version.
def _cursor(name: str) -> F:
    return F(name, "{}", nullable="0+", default=None, fields=(
        F("topic_name", "string"),
        F("partition_index", "int32"),
    ))


DESCRIBE_TOPIC_PARTITIONS = Api(
    key=75, name="DescribeTopicPartitions", versions=(0, 0), flexible="0+",
    request=(
        F("topics", "[]", fields=(
            F("name", "string"),
        )),
        F("response_partition_limit", "int32", default=2000),
        _cursor("cursor"),
    ),
    response=(
        F("throttle_time_ms", "int32", ignorable=True),
        F("topics", "[]", fields=(
            F("error_code", "int16"),
            F("name", "string", nullable="0+"),
            F("topic_id", "uuid", ignorable=True),
            F("is_internal", "bool", default=False, ignorable=True),
            F("partitions", "[]", fields=(
                F("error_code", "int16"),
                F("partition_index", "int32"),
                F("leader_id", "int32"),
                F("leader_epoch", "int32", default=-1, ignorable=True),
                F("replica_nodes", "[]int32"),
                F("isr_nodes", "[]int32"),
                F("eligible_leader_replicas", "[]int32", nullable="0+", default=None),
                F("last_known_elr", "[]int32", nullable="0+", default=None),
                F("offline_replicas", "[]int32", ignorable=True),
            )),
            F("topic_authorized_operations", "int32", default=-2147483648),
        )),
        _cursor("next_cursor"),
    ),
)


# DescribeProducers (KIP-664): the idempotent producers a partition's log keeps state for. hpbroker has no
# transactions, so coordinator_epoch is always -1 and current_txn_start_offset -1.
DESCRIBE_PRODUCERS = Api(
    key=61, name="DescribeProducers", versions=(0, 0), flexible="0+",
    request=(
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partition_indexes", "[]int32"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("error_code", "int16"),
                F("error_message", "string", nullable="0+", default=None),
                F("active_producers", "[]", fields=(
                    F("producer_id", "int64"),
                    F("producer_epoch", "int32"),
                    F("last_sequence", "int32", default=-1),
                    F("last_timestamp", "int64", default=-1),
                    F("coordinator_epoch", "int32"),
                    F("current_txn_start_offset", "int64", default=-1),
                )),
            )),
        )),
    ),
)


# ElectLeaders: a preferred (type 0; the only kind in v0) or unclean (type 1) leader election per partition;
# null topic_partitions means every partition.
ELECT_LEADERS = Api(
    key=43, name="ElectLeaders", versions=(0, 2), flexible="2+",
    request=(
        F("election_type", "int8", versions="1+"),
        F("topic_partitions", "[]", nullable="0+", fields=(
            F("topic", "string"),
            F("partitions", "[]int32"),
        )),
        F("timeout_ms", "int32", default=60000),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16", versions="1+"),
        F("replica_election_results", "[]", fields=(
            F("topic", "string"),
            F("partition_result", "[]", fields=(
                F("partition_id", "int32"),
                F("error_code", "int16"),
                F("error_message", "string", nullable="0+", default=None),
            )),
        )),
    ),
)


# AlterPartitionReassignments (KIP-455): per partition a target replica list, or null to cancel the running move.
ALTER_PARTITION_REASSIGNMENTS = Api(
    key=45, name="AlterPartitionReassignments", versions=(0, 0), flexible="0+",
    request=(
        F("timeout_ms", "int32", default=60000),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("replicas", "[]int32", nullable="0+", default=None),
            )),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+"),
        F("responses", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("error_code", "int16"),
                F("error_message", "string", nullable="0+"),
            )),
        )),
    ),
)


# ListPartitionReassignments: the reassignments in progress, with their adding and removing replicas.
LIST_PARTITION_REASSIGNMENTS = Api(
    key=46, name="ListPartitionReassignments", versions=(0, 0), flexible="0+",
    request=(
        F("timeout_ms", "int32", default=60000),
        F("topics", "[]", nullable="0+", default=None, fields=(
            F("name", "string"),
            F("partition_indexes", "[]int32"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+"),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("replicas", "[]int32"),
                F("adding_replicas", "[]int32"),
                F("removing_replicas", "[]int32"),
            )),
        )),
    ),
)


# ListTransactions: the transactions a broker coordinates. hpbroker refuses transactional producers, so
# there are none; filters naming no transaction state come back as unknown, as Kafka answers them.
LIST_TRANSACTIONS = Api(
    key=66, name="ListTransactions", versions=(0, 1), flexible="0+",
    request=(
        F("state_filters", "[]string"),
        F("producer_id_filters", "[]int64"),
        F("duration_filter", "int64", versions="1+", default=-1),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("unknown_state_filters", "[]string"),
        F("transaction_states", "[]", fields=(
            F("transactional_id", "string"),
            F("producer_id", "int64"),
            F("transaction_state", "string"),
        )),
    ),
)


# DescribeLogDirs: size and lag of each partition per log directory; a null `topics` means all topics.
# The top-level error_code (v3+) and volume sizes (v4+) are not advertised.
DESCRIBE_LOG_DIRS = Api(
    key=35, name="DescribeLogDirs",
    versions=(0, 1),
    flexible="2+",
    request=(
        F("topics", "[]", nullable="0+", fields=(
            F("topic", "string"),
            F("partitions", "[]int32"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", "[]", fields=(
            F("error_code", "int16"),
            F("log_dir", "string"),
            F("topics", "[]", fields=(
                F("name", "string"),
                F("partitions", "[]", fields=(
                    F("partition_index", "int32"),
                    F("partition_size", "int64"),
                    F("offset_lag", "int64"),
                    F("is_future_key", "bool"),
                )),
            )),
        )),
    ),
)


# ACLs: hpbroker has no authorizer, so these are answered with SECURITY_DISABLED, as a Kafka broker
# without one answers them. The filter fields are those of DescribeAcls and DeleteAcls alike.
def _acl_filter() -> tuple:
    return (
        F("resource_type_filter", "int8"),
        F("resource_name_filter", "string", nullable="0+"),
        F("pattern_type_filter", "int8", versions="1+", default=3),
        F("principal_filter", "string", nullable="0+"),
        F("host_filter", "string", nullable="0+"),
        F("operation", "int8"),
        F("permission_type", "int8"),
    )


DESCRIBE_ACLS = Api(
    key=29, name="DescribeAcls",
    versions=(0, 3),
    flexible="2+",
    request=_acl_filter(),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+"),
        F("resources", "[]", fields=(
            F("resource_type", "int8"),
            F("resource_name", "string"),
            F("pattern_type", "int8", versions="1+", default=3),
            F("acls", "[]", fields=(
                F("principal", "string"),
                F("host", "string"),
                F("operation", "int8"),
                F("permission_type", "int8"),
            )),
        )),
    ),
)

CREATE_ACLS = Api(
    key=30, name="CreateAcls",
    versions=(0, 3),
    flexible="2+",
    request=(
        F("creations", "[]", fields=(
            F("resource_type", "int8"),
            F("resource_name", "string"),
            F("resource_pattern_type", "int8", versions="1+", default=3),
            F("principal", "string"),
            F("host", "string"),
            F("operation", "int8"),
            F("permission_type", "int8"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", "[]", fields=(
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
        )),
    ),
)

DELETE_ACLS = Api(
    key=31, name="DeleteAcls",
    versions=(0, 3),
    flexible="2+",
    request=(
        F("filters", "[]", fields=_acl_filter()),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("filter_results", "[]", fields=(
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
            F("matching_acls", "[]", fields=(
                F("error_code", "int16"),
                F("error_message", "string", nullable="0+"),
                F("resource_type", "int8"),
                F("resource_name", "string"),
                F("pattern_type", "int8", versions="1+", default=3),
                F("principal", "string"),
                F("host", "string"),
                F("operation", "int8"),
                F("permission_type", "int8"),
            )),
        )),
    ),
)


# SCRAM credentials (KIP-554): which users have which mechanisms (1 SCRAM-SHA-256, 2 SCRAM-SHA-512) and how
# many iterations; null users means every user. Upsertions carry the salted password, never the password.
DESCRIBE_USER_SCRAM_CREDENTIALS = Api(
    key=50, name="DescribeUserScramCredentials", versions=(0, 0), flexible="0+",
    request=(
        F("users", "[]", nullable="0+", fields=(
            F("name", "string"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+"),
        F("results", "[]", fields=(
            F("user", "string"),
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
            F("credential_infos", "[]", fields=(
                F("mechanism", "int8"),
                F("iterations", "int32"),
            )),
        )),
    ),
)


# librdkafka (2.x) writes the request's tag buffer twice: one empty tag buffer after the body is accepted.
ALTER_USER_SCRAM_CREDENTIALS = Api(
    key=51, name="AlterUserScramCredentials", versions=(0, 0), flexible="0+", tolerated_tail=b"\x00",
    request=(
        F("deletions", "[]", fields=(
            F("name", "string"),
            F("mechanism", "int8"),
        )),
        F("upsertions", "[]", fields=(
            F("name", "string"),
            F("mechanism", "int8"),
            F("iterations", "int32"),
            F("salt", "bytes"),
            F("salted_password", "bytes"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", "[]", fields=(
            F("user", "string"),
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
        )),
    ),
)


# Client quotas (KIP-546): byte-rate limits per user, client id, or both; an entity name of null is that type's
# default. A describe component matches an exact name (match_type 0), the default (1) or any name (2); `strict`
# leaves out entities naming other types too. A null `entries` comes with an error.
def _quota_entity() -> F:
    return F("entity", "[]", fields=(
        F("entity_type", "string"),
        F("entity_name", "string", nullable="0+"),
    ))


DESCRIBE_CLIENT_QUOTAS = Api(
    key=48, name="DescribeClientQuotas", versions=(0, 1), flexible="1+",
    request=(
        F("components", "[]", fields=(
            F("entity_type", "string"),
            F("match_type", "int8"),
            F("match", "string", nullable="0+"),
        )),
        F("strict", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+"),
        F("entries", "[]", nullable="0+", fields=(
            _quota_entity(),
            F("values", "[]", fields=(
                F("key", "string"),
                F("value", "float64"),
            )),
        )),
    ),
)

# An op with remove set deletes the key (its value is ignored); validate_only checks without storing.
ALTER_CLIENT_QUOTAS = Api(
    key=49, name="AlterClientQuotas", versions=(0, 1), flexible="1+",
    request=(
        F("entries", "[]", fields=(
            _quota_entity(),
            F("ops", "[]", fields=(
                F("key", "string"),
                F("value", "float64"),
                F("remove", "bool"),
            )),
        )),
        F("validate_only", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("entries", "[]", fields=(
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+"),
            _quota_entity(),
        )),
    ),
)
