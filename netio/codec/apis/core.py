"""Declarations of the core data-path and topic-management APIs.

Each constant is the single source of truth for one API: the versions hpbroker advertises and every field
that exists in any of them, with Kafka's own version strings. Ranges follow what real clients send
(aiokafka, kafkajs and older librdkafka never use flexible versions). Produce is advertised from v0 so
librdkafka < 2.11.1 enables compression, but v0-v2 requests are refused, as Kafka 4 does (KAFKA-18659).
"""

from netio.codec.schema import Api, Field as F


# ApiVersions: the first request on every connection. Its response header is always v0, and an
# unsupported request version is answered with a v0 body carrying UNSUPPORTED_VERSION (see codec.frame).
API_VERSIONS = Api(
    key=18, name="ApiVersions", versions=(0, 3), flexible="3+",
    request=(
        F("client_software_name", "string", versions="3+", ignorable=True),
        F("client_software_version", "string", versions="3+", ignorable=True),
    ),
    response=(
        F("error_code", "int16"),
        F("api_keys", "[]", fields=(
            F("api_key", "int16"),
            F("min_version", "int16"),
            F("max_version", "int16"),
        )),
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("supported_features", "[]", versions="3+", tag=0, tagged="3+", ignorable=True, fields=(
            F("name", "string", versions="3+"),
            F("min_version", "int16", versions="3+"),
            F("max_version", "int16", versions="3+"),
        )),
        F("finalized_features_epoch", "int64", versions="3+", tag=1, tagged="3+", default=-1, ignorable=True),
        F("finalized_features", "[]", versions="3+", tag=2, tagged="3+", ignorable=True, fields=(
            F("name", "string", versions="3+"),
            F("max_version_level", "int16", versions="3+"),
            F("min_version_level", "int16", versions="3+"),
        )),
        F("zk_migration_ready", "bool", versions="3+", tag=3, tagged="3+", default=False, ignorable=True),
    ),
)


# Metadata: a null `topics` (v1+) asks for every topic; in v0 an empty list means the same.
METADATA = Api(
    key=3, name="Metadata", versions=(0, 8), flexible="9+",
    request=(
        F("topics", "[]", nullable="1+", fields=(
            F("name", "string", nullable="10+"),
        )),
        F("allow_auto_topic_creation", "bool", versions="4+", default=True),
        F("include_cluster_authorized_operations", "bool", versions="8-10"),
        F("include_topic_authorized_operations", "bool", versions="8+"),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="3+", ignorable=True),
        F("brokers", "[]", fields=(
            F("node_id", "int32"),
            F("host", "string"),
            F("port", "int32"),
            F("rack", "string", versions="1+", nullable="1+", default=None, ignorable=True),
        )),
        F("cluster_id", "string", versions="2+", nullable="2+", default=None, ignorable=True),
        F("controller_id", "int32", versions="1+", default=-1, ignorable=True),
        F("topics", "[]", fields=(
            F("error_code", "int16"),
            F("name", "string", nullable="12+"),
            F("is_internal", "bool", versions="1+", default=False, ignorable=True),
            F("partitions", "[]", fields=(
                F("error_code", "int16"),
                F("partition_index", "int32"),
                F("leader_id", "int32"),
                F("leader_epoch", "int32", versions="7+", default=-1, ignorable=True),
                F("replica_nodes", "[]int32"),
                F("isr_nodes", "[]int32"),
                F("offline_replicas", "[]int32", versions="5+", ignorable=True),
            )),
            F("topic_authorized_operations", "int32", versions="8+", default=-2147483648),
        )),
        F("cluster_authorized_operations", "int32", versions="8-10", default=-2147483648),
    ),
)


# Produce: `records` stays opaque and decodes to a zero-copy view of the request frame.
PRODUCE = Api(
    key=0, name="Produce", versions=(0, 8), flexible="9+", rejected="0-2",
    request=(
        F("transactional_id", "string", versions="3+", nullable="3+", default=None),
        F("acks", "int16"),
        F("timeout_ms", "int32"),
        F("topic_data", "[]", fields=(
            F("name", "string"),
            F("partition_data", "[]", fields=(
                F("index", "int32"),
                F("records", "records", nullable="0+"),
            )),
        )),
    ),
    response=(
        F("responses", "[]", fields=(
            F("name", "string"),
            F("partition_responses", "[]", fields=(
                F("index", "int32"),
                F("error_code", "int16"),
                F("base_offset", "int64"),
                F("log_append_time_ms", "int64", versions="2+", default=-1, ignorable=True),
                F("log_start_offset", "int64", versions="5+", default=-1, ignorable=True),
                F("record_errors", "[]", versions="8+", ignorable=True, fields=(
                    F("batch_index", "int32", versions="8+"),
                    F("batch_index_error_message", "string", versions="8+", nullable="8+", default=None),
                )),
                F("error_message", "string", versions="8+", nullable="8+", default=None, ignorable=True),
            )),
        )),
        F("throttle_time_ms", "int32", versions="1+", default=0, ignorable=True),
    ),
)


# Fetch: v4 is the first version with RecordBatch v2 (librdkafka's MsgVer2 needs it); v7 adds sessions,
# v11 the consumer's rack. Answer `records` with b"" rather than null: kafka-python fails on null.
FETCH = Api(
    key=1, name="Fetch", versions=(4, 11), flexible="12+",
    request=(
        F("replica_id", "int32", versions="0-14", default=-1),
        F("max_wait_ms", "int32"),
        F("min_bytes", "int32"),
        F("max_bytes", "int32", versions="3+", default=2147483647, ignorable=True),
        F("isolation_level", "int8", versions="4+", default=0, ignorable=True),
        F("session_id", "int32", versions="7+", default=0, ignorable=True),
        F("session_epoch", "int32", versions="7+", default=-1, ignorable=True),
        F("topics", "[]", fields=(
            F("topic", "string", versions="0-12", ignorable=True),
            F("partitions", "[]", fields=(
                F("partition", "int32"),
                F("current_leader_epoch", "int32", versions="9+", default=-1, ignorable=True),
                F("fetch_offset", "int64"),
                F("log_start_offset", "int64", versions="5+", default=-1, ignorable=True),
                F("partition_max_bytes", "int32"),
            )),
        )),
        F("forgotten_topics_data", "[]", versions="7+", fields=(
            F("topic", "string", versions="7-12", ignorable=True),
            F("partitions", "[]int32", versions="7+"),
        )),
        F("rack_id", "string", versions="11+", default="", ignorable=True),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("error_code", "int16", versions="7+", ignorable=True),
        F("session_id", "int32", versions="7+", default=0),
        F("responses", "[]", fields=(
            F("topic", "string", versions="0-12", ignorable=True),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("error_code", "int16"),
                F("high_watermark", "int64"),
                F("last_stable_offset", "int64", versions="4+", default=-1, ignorable=True),
                F("log_start_offset", "int64", versions="5+", default=-1, ignorable=True),
                F("aborted_transactions", "[]", versions="4+", nullable="4+", ignorable=True, fields=(
                    F("producer_id", "int64", versions="4+"),
                    F("first_offset", "int64", versions="4+"),
                )),
                F("preferred_read_replica", "int32", versions="11+", default=-1),
                F("records", "records", nullable="0+"),
            )),
        )),
    ),
)


LIST_OFFSETS = Api(
    key=2, name="ListOffsets", versions=(1, 5), flexible="6+",
    request=(
        F("replica_id", "int32"),
        F("isolation_level", "int8", versions="2+"),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("current_leader_epoch", "int32", versions="4+", default=-1, ignorable=True),
                F("timestamp", "int64"),
            )),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="2+", ignorable=True),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("error_code", "int16"),
                F("timestamp", "int64", versions="1+", default=-1),
                F("offset", "int64", versions="1+", default=-1),
                F("leader_epoch", "int32", versions="4+", default=-1),
            )),
        )),
    ),
)


CREATE_TOPICS = Api(
    key=19, name="CreateTopics", versions=(0, 4), flexible="5+",
    request=(
        F("topics", "[]", fields=(
            F("name", "string"),
            F("num_partitions", "int32"),
            F("replication_factor", "int16"),
            F("assignments", "[]", fields=(
                F("partition_index", "int32"),
                F("broker_ids", "[]int32"),
            )),
            F("configs", "[]", fields=(
                F("name", "string"),
                F("value", "string", nullable="0+"),
            )),
        )),
        F("timeout_ms", "int32", default=60000),
        F("validate_only", "bool", versions="1+", default=False),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="2+", ignorable=True),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("error_code", "int16"),
            F("error_message", "string", versions="1+", nullable="0+", ignorable=True),
        )),
    ),
)


DELETE_TOPICS = Api(
    key=20, name="DeleteTopics", versions=(0, 3), flexible="4+",
    request=(
        F("topic_names", "[]string", versions="0-5", ignorable=True),
        F("timeout_ms", "int32"),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("responses", "[]", fields=(
            F("name", "string", nullable="6+"),
            F("error_code", "int16"),
        )),
    ),
)


CREATE_PARTITIONS = Api(
    key=37, name="CreatePartitions", versions=(0, 1), flexible="2+",
    request=(
        F("topics", "[]", fields=(
            F("name", "string"),
            F("count", "int32"),
            F("assignments", "[]", nullable="0+", fields=(
                F("broker_ids", "[]int32"),
            )),
        )),
        F("timeout_ms", "int32"),
        F("validate_only", "bool"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", "[]", fields=(
            F("name", "string"),
            F("error_code", "int16"),
            F("error_message", "string", nullable="0+", default=None),
        )),
    ),
)


INIT_PRODUCER_ID = Api(
    key=22, name="InitProducerId", versions=(0, 1), flexible="2+",
    request=(
        F("transactional_id", "string", nullable="0+"),
        F("transaction_timeout_ms", "int32"),
    ),
    response=(
        F("throttle_time_ms", "int32", ignorable=True),
        F("error_code", "int16"),
        F("producer_id", "int64", default=-1),
        F("producer_epoch", "int16"),
    ),
)


OFFSET_FOR_LEADER_EPOCH = Api(
    key=23, name="OffsetForLeaderEpoch", versions=(2, 3), flexible="4+",
    request=(
        F("replica_id", "int32", versions="3+", default=-2, ignorable=True),
        F("topics", "[]", fields=(
            F("topic", "string"),
            F("partitions", "[]", fields=(
                F("partition", "int32"),
                F("current_leader_epoch", "int32", versions="2+", default=-1, ignorable=True),
                F("leader_epoch", "int32"),
            )),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="2+", ignorable=True),
        F("topics", "[]", fields=(
            F("topic", "string"),
            F("partitions", "[]", fields=(
                F("error_code", "int16"),
                F("partition", "int32"),
                F("leader_epoch", "int32", versions="1+", default=-1, ignorable=True),
                F("end_offset", "int64", default=-1),
            )),
        )),
    ),
)


DELETE_RECORDS = Api(
    key=21, name="DeleteRecords", versions=(0, 1), flexible="2+",
    request=(
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("offset", "int64"),
            )),
        )),
        F("timeout_ms", "int32"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("low_watermark", "int64"),
                F("error_code", "int16"),
            )),
        )),
    ),
)


# SaslHandshake: never flexible; v1 means SASL tokens travel in SaslAuthenticate frames.
SASL_HANDSHAKE = Api(
    key=17, name="SaslHandshake", versions=(0, 1), flexible="none",
    request=(
        F("mechanism", "string"),
    ),
    response=(
        F("error_code", "int16"),
        F("mechanisms", "[]string"),
    ),
)


SASL_AUTHENTICATE = Api(
    key=36, name="SaslAuthenticate", versions=(0, 1), flexible="2+",
    request=(
        F("auth_bytes", "bytes"),
    ),
    response=(
        F("error_code", "int16"),
        F("error_message", "string", nullable="0+"),
        F("auth_bytes", "bytes"),
        F("session_lifetime_ms", "int64", versions="1+", default=0, ignorable=True),
    ),
)
