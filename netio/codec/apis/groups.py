"""Consumer-group APIs: coordinator lookup, classic group membership, committed offsets, group admin.

Each constant is the one declaration the generic codec uses to encode and decode that API. `versions`
is the range hpbroker advertises; every field version string is Kafka's own, so the declarations can be
checked field by field against the official message schemas.
"""

from netio.codec.schema import Api, Field as F


# FindCoordinator: which broker coordinates a group (key_type 0) or a transactional id (key_type 1).
# v0 has no key_type and always means a group; v4+ batches keys into `coordinator_keys` (not advertised).
FIND_COORDINATOR = Api(
    key=10, name="FindCoordinator",
    versions=(0, 2),
    flexible="3+",
    request=(
        F("key", "string", versions="0-3"),
        F("key_type", "int8", versions="1+", default=0),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("error_code", "int16", versions="0-3"),
        F("error_message", "string", versions="1-3", nullable="1-3", ignorable=True),
        F("node_id", "int32", versions="0-3"),
        F("host", "string", versions="0-3"),
        F("port", "int32", versions="0-3"),
    ),
)


# JoinGroup: a member asks to (re)join a classic group; the leader's response lists every member's metadata.
# From v4 an empty member_id is answered with MEMBER_ID_REQUIRED and a generated id to rejoin with;
# v5 adds static membership (group_instance_id). protocol_name only becomes nullable at v7.
JOIN_GROUP = Api(
    key=11, name="JoinGroup",
    versions=(0, 5),
    flexible="6+",
    request=(
        F("group_id", "string"),
        F("session_timeout_ms", "int32"),
        F("rebalance_timeout_ms", "int32", versions="1+", default=-1, ignorable=True),
        F("member_id", "string"),
        F("group_instance_id", "string", versions="5+", nullable="5+", default=None),
        F("protocol_type", "string"),
        F("protocols", "[]", fields=(
            F("name", "string"),
            F("metadata", "bytes"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="2+", ignorable=True),
        F("error_code", "int16"),
        F("generation_id", "int32", default=-1),
        F("protocol_name", "string", nullable="7+"),
        F("leader", "string"),
        F("member_id", "string"),
        F("members", "[]", fields=(
            F("member_id", "string"),
            F("group_instance_id", "string", versions="5+", nullable="5+", default=None, ignorable=True),
            F("metadata", "bytes"),
        )),
    ),
)


# SyncGroup: the leader hands in the assignments; every member gets its own opaque assignment back.
# v3 adds group_instance_id; protocol type/name checks arrive at v5, beyond the advertised range.
SYNC_GROUP = Api(
    key=14, name="SyncGroup",
    versions=(0, 3),
    flexible="4+",
    request=(
        F("group_id", "string"),
        F("generation_id", "int32"),
        F("member_id", "string"),
        F("group_instance_id", "string", versions="3+", nullable="3+", default=None),
        F("assignments", "[]", fields=(
            F("member_id", "string"),
            F("assignment", "bytes"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("error_code", "int16"),
        F("assignment", "bytes"),
    ),
)


# Heartbeat: keeps a member alive; the error code tells it to rejoin (REBALANCE_IN_PROGRESS etc.).
HEARTBEAT = Api(
    key=12, name="Heartbeat",
    versions=(0, 3),
    flexible="4+",
    request=(
        F("group_id", "string"),
        F("generation_id", "int32"),
        F("member_id", "string"),
        F("group_instance_id", "string", versions="3+", nullable="3+", default=None),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("error_code", "int16"),
    ),
)


# LeaveGroup: members leave without waiting for a session timeout.
# v0-2 name a single member_id; v3 switches to a batch of member identities, each answered separately.
LEAVE_GROUP = Api(
    key=13, name="LeaveGroup",
    versions=(0, 3),
    flexible="4+",
    request=(
        F("group_id", "string"),
        F("member_id", "string", versions="0-2"),
        F("members", "[]", versions="3+", fields=(
            F("member_id", "string", versions="3+"),
            F("group_instance_id", "string", versions="3+", nullable="3+", default=None),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("error_code", "int16"),
        F("members", "[]", versions="3+", fields=(
            F("member_id", "string", versions="3+"),
            F("group_instance_id", "string", versions="3+", nullable="3+"),
            F("error_code", "int16", versions="3+"),
        )),
    ),
)


# OffsetCommit: stores committed offsets for a group.
# Advertised from v2 (aiokafka sends only v2-3), so the v1-only commit_timestamp is not declared.
# retention_time_ms exists only in v2-4; committed_leader_epoch from v6; group_instance_id from v7.
OFFSET_COMMIT = Api(
    key=8, name="OffsetCommit",
    versions=(2, 7),
    flexible="8+",
    request=(
        F("group_id", "string"),
        F("generation_id_or_member_epoch", "int32", versions="1+", default=-1, ignorable=True),
        F("member_id", "string", versions="1+", ignorable=True),
        F("group_instance_id", "string", versions="7+", nullable="7+", default=None),
        F("retention_time_ms", "int64", versions="2-4", default=-1, ignorable=True),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("committed_offset", "int64"),
                F("committed_leader_epoch", "int32", versions="6+", default=-1, ignorable=True),
                F("committed_metadata", "string", nullable="0+"),
            )),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="3+", ignorable=True),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("error_code", "int16"),
            )),
        )),
    ),
)


# OffsetFetch: reads committed offsets back. v0 read from ZooKeeper and is not advertised.
# From v2 a null `topics` asks for every committed topic and the response gains a top-level error_code;
# the v8+ multi-group form (`groups`) lies beyond the advertised range.
OFFSET_FETCH = Api(
    key=9, name="OffsetFetch",
    versions=(1, 5),
    flexible="6+",
    request=(
        F("group_id", "string", versions="0-7"),
        F("topics", "[]", versions="0-7", nullable="2-7", fields=(
            F("name", "string", versions="0-7"),
            F("partition_indexes", "[]int32", versions="0-7"),
        )),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="3+", ignorable=True),
        F("topics", "[]", versions="0-7", fields=(
            F("name", "string", versions="0-7"),
            F("partitions", "[]", versions="0-7", fields=(
                F("partition_index", "int32", versions="0-7"),
                F("committed_offset", "int64", versions="0-7"),
                F("committed_leader_epoch", "int32", versions="5-7", default=-1, ignorable=True),
                F("metadata", "string", versions="0-7", nullable="0-7"),
                F("error_code", "int16", versions="0-7"),
            )),
        )),
        F("error_code", "int16", versions="2-7", default=0, ignorable=True),
    ),
)


# OffsetDelete: removes committed offsets of topics a group no longer consumes. One version, never
# flexible; unusually, the response puts error_code before throttle_time_ms.
OFFSET_DELETE = Api(
    key=47, name="OffsetDelete",
    versions=(0, 0),
    flexible="none",
    request=(
        F("group_id", "string"),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
            )),
        )),
    ),
    response=(
        F("error_code", "int16"),
        F("throttle_time_ms", "int32", ignorable=True),
        F("topics", "[]", fields=(
            F("name", "string"),
            F("partitions", "[]", fields=(
                F("partition_index", "int32"),
                F("error_code", "int16"),
            )),
        )),
    ),
)


# DescribeGroups: state, protocol and members of groups (admin tools). authorized_operations stays
# INT32_MIN ("not requested") unless include_authorized_operations is set (v3+).
DESCRIBE_GROUPS = Api(
    key=15, name="DescribeGroups",
    versions=(0, 4),
    flexible="5+",
    request=(
        F("groups", "[]string"),
        F("include_authorized_operations", "bool", versions="3+"),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("groups", "[]", fields=(
            F("error_code", "int16"),
            F("group_id", "string"),
            F("group_state", "string"),
            F("protocol_type", "string"),
            F("protocol_data", "string"),
            F("members", "[]", fields=(
                F("member_id", "string"),
                F("group_instance_id", "string", versions="4+", nullable="4+", default=None, ignorable=True),
                F("client_id", "string"),
                F("client_host", "string"),
                F("member_metadata", "bytes"),
                F("member_assignment", "bytes"),
            )),
            F("authorized_operations", "int32", versions="3+", default=-2147483648),
        )),
    ),
)


# ListGroups: the groups this broker coordinates. The request has no fields before v4, which adds the
# state filter and each group's state (KIP-518); the type filter (v5+) is not advertised.
LIST_GROUPS = Api(
    key=16, name="ListGroups",
    versions=(0, 4),
    flexible="3+",
    request=(
        F("states_filter", "[]string", versions="4+"),
    ),
    response=(
        F("throttle_time_ms", "int32", versions="1+", ignorable=True),
        F("error_code", "int16"),
        F("groups", "[]", fields=(
            F("group_id", "string"),
            F("protocol_type", "string"),
            F("group_state", "string", versions="4+", ignorable=True),
        )),
    ),
)


# DeleteGroups: deletes empty groups and their offsets. The request field really is `groups_names`.
DELETE_GROUPS = Api(
    key=42, name="DeleteGroups",
    versions=(0, 1),
    flexible="2+",
    request=(
        F("groups_names", "[]string"),
    ),
    response=(
        F("throttle_time_ms", "int32"),
        F("results", "[]", fields=(
            F("group_id", "string"),
            F("error_code", "int16"),
        )),
    ),
)
