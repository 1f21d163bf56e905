"""Regenerate the golden request frames: real clients talking to a tiny recording broker on 127.0.0.1.

Run from the repository root: `python tests/codec/golden/capture.py [SCENARIO ...]` (needs confluent-kafka and
kafka-python; naming scenarios re-records only theirs).
The broker answers with hpbroker's own codec just well enough for each client to take its next step
(ApiVersions, Metadata, InitProducerId, Produce, admin calls, ListOffsets, Fetch) and records the first
frame of every (client, api, version) as `<client>-<Api>-v<version>.hex`, plus `manifest.json` holding
what each scenario asked for, which the golden test checks the decoded frames against.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):
    sys.path.insert(0, str(HERE.parents[2]))

from netio.codec import (APIS, CodecError, ErrorCode, FrameReader, UnsupportedVersion,  # noqa: E402
                         api_versions_table, decode_request, encode_response, peek_header)

TOPIC = "golden-topic"
CREATED = "golden-created"
KEY = b"golden-key"
VALUE = b"golden-value"
CREATED_PARTITIONS = 3
GROWN_PARTITIONS = 5
QUOTA_USER = "golden-user"
QUOTA_RATE = 1048576.0
QUOTA_STRICT = True
REASSIGN_TARGET = [2, 3]


class RecordingBroker:
    """One-node broker double: records request frames and answers them with plausible responses."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.frames: dict[str, bytes] = {}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.created: set[str] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = FrameReader()
        with conn:
            while not self.stopped.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    reply = self._handle(bytes(frame))
                    if reply:
                        try:
                            conn.sendall(reply)
                        except OSError:
                            return

    def _handle(self, frame: bytes) -> bytes | None:
        header = peek_header(frame)
        api = APIS.get(header.api_key)
        name = f"{self.client}-{api.name if api else header.api_key}-v{header.api_version}"
        self.frames.setdefault(name, frame)
        try:
            request = decode_request(frame)
        except UnsupportedVersion:
            if header.api_key == 18:
                body = {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": api_versions_table()}
                return encode_response(18, header.api_version, header.correlation_id, body)
            raise
        except CodecError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return None
        body = self._answer(request.header.api_key, request.body)
        if body is None:
            return None
        return encode_response(header.api_key, header.api_version, header.correlation_id, body)

    def _answer(self, key: int, req: dict) -> dict | None:
        if key == 18:
            return {"api_keys": api_versions_table()}
        if key == 3:
            names = [t["name"] for t in req["topics"]] if req["topics"] else [TOPIC]
            return {"brokers": [{"node_id": 1, "host": "127.0.0.1", "port": self.port}], "cluster_id": "golden",
                    "controller_id": 1, "topics": [self._topic(n) for n in names]}
        if key == 22:
            return {"producer_id": 4242, "producer_epoch": 0}
        if key == 0:
            if req["acks"] == 0:
                return None
            return {"responses": [{"name": t["name"], "partition_responses": [
                {"index": p["index"], "base_offset": 0, "log_start_offset": 0} for p in t["partition_data"]]}
                for t in req["topic_data"]]}
        if key == 19:
            self.created |= {t["name"] for t in req["topics"]}
            return {"topics": [{"name": t["name"]} for t in req["topics"]]}
        if key == 20:
            return {"responses": [{"name": n} for n in req["topic_names"]]}
        if key == 37:
            return {"results": [{"name": t["name"]} for t in req["topics"]]}
        if key == 2:
            return {"topics": [{"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "offset": 0, "timestamp": -1} for p in t["partitions"]]}
                for t in req["topics"]]}
        if key == 10:
            return {"node_id": 1, "host": "127.0.0.1", "port": self.port}
        if key == 9:
            return {"topics": [{"name": t["name"], "partitions": [
                {"partition_index": i, "committed_offset": -1} for i in t["partition_indexes"]]}
                for t in req["topics"] or []]}
        if key == 48:
            return {"entries": []}
        if key == 49:
            return {"entries": [{"entity": e["entity"]} for e in req["entries"]]}
        if key == 45:
            return {"responses": [{"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"]} for p in t["partitions"]]} for t in req["topics"]]}
        if key == 46:
            return {"topics": []}
        if key == 1:
            time.sleep(min(req["max_wait_ms"], 100) / 1000)
            return {"responses": [{"topic": t["topic"], "partitions": [
                {"partition_index": p["partition"], "high_watermark": 0, "last_stable_offset": 0,
                 "log_start_offset": 0, "records": b""} for p in t["partitions"]]} for t in req["topics"]]}
        return {}

    def _topic(self, name: str) -> dict:
        count = CREATED_PARTITIONS if name in self.created else 1
        return {"name": name, "partitions": [
            {"partition_index": i, "leader_id": 1, "leader_epoch": -1, "replica_nodes": [1], "isr_nodes": [1]}
            for i in range(count)]}


def _run(client: str, scenario) -> dict[str, bytes]:
    broker = RecordingBroker(client)
    try:
        scenario(f"127.0.0.1:{broker.port}")
        time.sleep(0.2)
    finally:
        broker.close()
    return dict(broker.frames)


def confluent_producer(bootstrap: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "client.id": "golden-rdkafka",
                         "compression.type": "none", "linger.ms": 5})
    producer.produce(TOPIC, VALUE, KEY)
    if producer.flush(10) != 0:
        raise RuntimeError("librdkafka producer did not deliver")


def confluent_admin(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "golden-rdkafka"})
    for future in admin.create_topics([NewTopic(CREATED, CREATED_PARTITIONS, 1)]).values():
        future.result(10)
    for future in admin.create_partitions([NewPartitions(CREATED, GROWN_PARTITIONS)]).values():
        future.result(10)
    for future in admin.delete_topics([CREATED]).values():
        future.result(10)


def python_producer(bootstrap: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="golden-kafka-python")
    producer.send(TOPIC, value=VALUE, key=KEY).get(timeout=10)
    producer.close(timeout=5)


def python_admin(bootstrap: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="golden-kafka-python")
    admin.create_topics([NewTopic(CREATED, CREATED_PARTITIONS, 1)])
    admin.delete_topics([CREATED])
    admin.close()


def python_consumer(bootstrap: str) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="golden-kafka-python", group_id=None,
                             auto_offset_reset="earliest", fetch_max_wait_ms=50)
    consumer.assign([TopicPartition(TOPIC, 0)])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    consumer.close()


def confluent_consumer(bootstrap: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "golden-group", "client.id": "golden-rdkafka",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        consumer.poll(0.1)
    consumer.close()


def python_old_protocol(bootstrap: str) -> None:
    """kafka-python pinned to broker 0.11 semantics: the non-flexible versions older clients use."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="golden-kafka-python-0.11",
                             api_version=(0, 11), enable_idempotence=False, acks=1)
    producer.send(TOPIC, value=VALUE, key=KEY).get(timeout=10)
    producer.close(timeout=5)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="golden-kafka-python-0.11", group_id=None,
                             api_version=(0, 11), auto_offset_reset="earliest", fetch_max_wait_ms=50)
    consumer.assign([TopicPartition(TOPIC, 0)])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    consumer.close()


def python_quotas(bootstrap: str) -> None:
    """kafka-python's own encoders (made from Kafka's schemas) for the client quota APIs, both versions: its
    admin client has no quota calls, so the requests go through its connection manager."""
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin import AlterClientQuotasRequest as Alter, DescribeClientQuotasRequest as Describe

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="golden-kafka-python")
    requests = []
    for version in (0, 1):
        requests += [
            Describe(version=version, strict=QUOTA_STRICT, components=[
                Describe.ComponentData(entity_type="user", match_type=0, match=QUOTA_USER),
                Describe.ComponentData(entity_type="client-id", match_type=1, match=None)]),
            Alter(version=version, validate_only=False, entries=[Alter.EntryData(
                entity=[Alter.EntryData.EntityData(entity_type="user", entity_name=QUOTA_USER),
                        Alter.EntryData.EntityData(entity_type="client-id", entity_name=None)],
                ops=[Alter.EntryData.OpData(key="producer_byte_rate", value=QUOTA_RATE, remove=False),
                     Alter.EntryData.OpData(key="consumer_byte_rate", value=0.0, remove=True)])])]

    async def send_all():
        for request in requests:
            await admin._manager.send(request)

    admin._manager.run(send_all)
    admin.close()


def python_reassign(bootstrap: str) -> None:
    """kafka-python's admin client moving a partition, cancelling another move, and listing the moves."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="golden-kafka-python")
    admin.alter_partition_reassignments({TopicPartition(TOPIC, 0): REASSIGN_TARGET, TopicPartition(TOPIC, 1): None})
    admin.list_partition_reassignments({TOPIC: [0, 1]})
    admin.close()


SCENARIOS = {
    "rdkafka-producer": confluent_producer,
    "rdkafka-admin": confluent_admin,
    "kafkapython-producer": python_producer,
    "kafkapython-admin": python_admin,
    "kafkapython-consumer": python_consumer,
    "rdkafka-consumer": confluent_consumer,
    "kafkapython011": python_old_protocol,
    "kafkapython-quotas": python_quotas,
    "kafkapython-reassign": python_reassign,
}


def main(only: list[str]) -> None:
    """Every scenario, or only those named (their frames replace theirs; the rest of the set stays)."""
    if not only:
        for old in HERE.glob("*.hex"):
            old.unlink()
    manifest = {"topic": TOPIC, "created": CREATED, "key": KEY.decode(), "value": VALUE.decode(),
                "created_partitions": CREATED_PARTITIONS, "grown_partitions": GROWN_PARTITIONS,
                "quota_user": QUOTA_USER, "quota_rate": QUOTA_RATE, "quota_strict": QUOTA_STRICT,
                "reassign_target": REASSIGN_TARGET, "frames": {}}
    if only:
        manifest["frames"] = json.loads((HERE / "manifest.json").read_text())["frames"]
    for client, scenario in SCENARIOS.items():
        if only and client not in only:
            continue
        for name, frame in sorted(_run(client, scenario).items()):
            (HERE / f"{name}.hex").write_text(frame.hex() + "\n")
            manifest["frames"][name] = {"api_key": peek_header(frame).api_key,
                                        "api_version": peek_header(frame).api_version}
            print(name, len(frame))
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
