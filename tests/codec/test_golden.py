"""Request frames captured from real clients (librdkafka via confluent-kafka, kafka-python) decode correctly.

The frames under `golden/` were recorded by `golden/capture.py`, which drives each client against a
recording broker; `manifest.json` says what each scenario asked for. Besides the field checks, decoding
and re-encoding a frame must reproduce the client's bytes exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netio.codec import APIS, UnsupportedVersion, decode_request, encode_request, peek_header

GOLDEN = Path(__file__).resolve().parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
NAMES = sorted(MANIFEST["frames"])


def _frame(name: str) -> bytes:
    return bytes.fromhex((GOLDEN / f"{name}.hex").read_text().strip())


def test_golden_set_covers_both_clients_and_the_core_apis():
    clients = {name.split("-")[0] for name in NAMES}
    assert {"rdkafka", "kafkapython", "kafkapython011"} <= clients
    apis = {MANIFEST["frames"][n]["api_key"] for n in NAMES}
    assert {0, 1, 2, 3, 10, 18, 19, 20, 22, 37, 45, 46, 48, 49} <= apis


@pytest.mark.parametrize("name", NAMES)
def test_golden_frame_decodes_and_re_encodes_byte_for_byte(name):
    frame = _frame(name)
    expect = MANIFEST["frames"][name]
    header = peek_header(frame)
    assert (header.api_key, header.api_version) == (expect["api_key"], expect["api_version"])
    api = APIS[header.api_key]
    if not api.advertises(header.api_version):
        # kafka-python opens with ApiVersions v4; the header must still be readable to answer it.
        with pytest.raises(UnsupportedVersion) as refused:
            decode_request(frame)
        assert refused.value.header.api_key == 18 and refused.value.header.client_id.startswith("golden")
        return
    request = decode_request(frame)
    assert request.header.correlation_id == header.correlation_id
    assert request.header.client_id.startswith("golden")
    again = encode_request(header.api_key, header.api_version, header.correlation_id, request.header.client_id,
                           request.body)
    assert again[4:] == frame
    CHECKS.get(api.name, lambda body, version: None)(request.body, header.api_version)


def _check_api_versions(body, version):
    if version >= 3:
        assert body["client_software_name"] and body["client_software_version"]


def _check_metadata(body, version):
    names = None if body["topics"] is None else {t["name"] for t in body["topics"]}
    assert names is None or names <= {MANIFEST["topic"], MANIFEST["created"]}
    if version >= 4:
        assert isinstance(body["allow_auto_topic_creation"], bool)


def _check_produce(body, version):
    assert body["acks"] in (-1, 1)
    (topic,) = body["topic_data"]
    assert topic["name"] == MANIFEST["topic"]
    (partition,) = topic["partition_data"]
    records = partition["records"]
    assert isinstance(records, memoryview)
    batch = bytes(records)
    assert batch[16] == 2  # RecordBatch v2 magic
    assert int.from_bytes(batch[8:12], "big") == len(batch) - 12
    assert MANIFEST["value"].encode() in batch and MANIFEST["key"].encode() in batch
    assert body["transactional_id"] is None


def _check_init_producer_id(body, version):
    assert body["transactional_id"] is None


def _check_create_topics(body, version):
    (topic,) = body["topics"]
    assert topic["name"] == MANIFEST["created"]
    assert topic["num_partitions"] == MANIFEST["created_partitions"] and topic["replication_factor"] == 1


def _check_create_partitions(body, version):
    (topic,) = body["topics"]
    assert topic["name"] == MANIFEST["created"] and topic["count"] == MANIFEST["grown_partitions"]


def _check_delete_topics(body, version):
    assert body["topic_names"] == [MANIFEST["created"]]


def _check_list_offsets(body, version):
    (topic,) = body["topics"]
    assert topic["name"] == MANIFEST["topic"]
    assert [(p["partition_index"], p["timestamp"]) for p in topic["partitions"]] == [(0, -2)]


def _check_fetch(body, version):
    (topic,) = body["topics"]
    assert topic["topic"] == MANIFEST["topic"]
    (partition,) = topic["partitions"]
    assert partition["partition"] == 0 and partition["fetch_offset"] == 0 and partition["partition_max_bytes"] > 0
    assert body["replica_id"] == -1


def _check_find_coordinator(body, version):
    assert body["key"] == "golden-group" and body["key_type"] == 0


def _check_describe_client_quotas(body, version):
    assert body["strict"] is MANIFEST["quota_strict"]
    assert [(c["entity_type"], c["match_type"], c["match"]) for c in body["components"]] == [
        ("user", 0, MANIFEST["quota_user"]), ("client-id", 1, None)]


def _check_alter_client_quotas(body, version):
    assert body["validate_only"] is False
    (entry,) = body["entries"]
    assert [(e["entity_type"], e["entity_name"]) for e in entry["entity"]] == [
        ("user", MANIFEST["quota_user"]), ("client-id", None)]
    assert [(o["key"], o["value"], o["remove"]) for o in entry["ops"]] == [
        ("producer_byte_rate", MANIFEST["quota_rate"], False), ("consumer_byte_rate", 0.0, True)]


def _check_alter_partition_reassignments(body, version):
    (topic,) = body["topics"]
    assert topic["name"] == MANIFEST["topic"]
    assert [(p["partition_index"], p["replicas"]) for p in topic["partitions"]] == [
        (0, MANIFEST["reassign_target"]), (1, None)]  # None: cancel


def _check_list_partition_reassignments(body, version):
    assert [(t["name"], t["partition_indexes"]) for t in body["topics"]] == [(MANIFEST["topic"], [0, 1])]


CHECKS = {
    "ApiVersions": _check_api_versions, "Metadata": _check_metadata, "Produce": _check_produce,
    "InitProducerId": _check_init_producer_id, "CreateTopics": _check_create_topics,
    "CreatePartitions": _check_create_partitions, "DeleteTopics": _check_delete_topics,
    "ListOffsets": _check_list_offsets, "Fetch": _check_fetch, "FindCoordinator": _check_find_coordinator,
    "DescribeClientQuotas": _check_describe_client_quotas, "AlterClientQuotas": _check_alter_client_quotas,
    "AlterPartitionReassignments": _check_alter_partition_reassignments,
    "ListPartitionReassignments": _check_list_partition_reassignments,
}
