"""The pure half of the CLI: rendering, record batches, partitioner, assignments, lag arithmetic."""

import json
import struct

import crc32c
import pytest

from netio.codec.records import Record, decode_batches, encode_batch, record_times
from tests.compressed import COMPRESS, compressed_batch
from tools.commands.data import murmur2, partition_for
from tools.commands.group import decode_assignment, lag_rows, parse_datetime
from tools.commands.render import (record_dict, render_cluster, render_group, render_record, render_topic,
                                   render_topic_list, table)


def test_table_aligns_columns_and_shows_missing_values_as_dash():
    out = table(["A", "LONGER"], [["x", None], ["wide-cell", 3]]).splitlines()
    assert out[0] == "A          LONGER"
    assert out[1] == "x          -"
    assert out[2] == "wide-cell  3"


def test_topic_renderings():
    topics = [{"name": "orders", "partitions": 3, "replication_factor": 1, "internal": False}]
    assert render_topic_list(topics).splitlines()[1].split() == ["orders", "3", "1", "no"]
    desc = {"name": "orders", "topic_id": None, "internal": False,
            "partitions": [{"partition": 0, "leader": 0, "leader_epoch": 0, "replicas": [0], "isr": [0],
                            "log_start_offset": 5, "high_watermark": 9, "status": "OK"}],
            "configs": [{"name": "retention.ms", "value": "1000", "source": "topic", "read_only": False}]}
    text = render_topic(desc)
    assert "0          0       0      0         0    5          9               OK" in text
    assert "retention.ms  1000   topic" in text


def test_group_rendering_lists_members_and_lag():
    desc = {"group": "g", "coordinator": "h:1", "state": "Stable", "protocol": "range",
            "members": [{"member_id": "m-1", "client_id": "c", "client_host": "/127.0.0.1",
                         "assignment": {"t": [0, 1]}}],
            "offsets": [{"topic": "t", "partition": 0, "committed_offset": 3, "end_offset": 10, "lag": 7,
                         "member": "m-1"}], "total_lag": 7}
    text = render_group(desc)
    assert "TOTAL LAG    7" in text and "t:0,1" in text
    assert "t      0          3               10              7    m-1" in text


def test_cluster_rendering_marks_the_controller():
    info = {"cluster_id": "abc", "controller_id": 1, "topics": 2, "partitions": 4,
            "brokers": [{"id": 0, "host": "a", "port": 1, "rack": None},
                        {"id": 1, "host": "b", "port": 2, "rack": "r"}]}
    lines = render_cluster(info).splitlines()
    assert lines[0] == "CLUSTER     abc"
    assert lines[-1].split() == ["1", "b", "2", "r", "*"]


def test_lag_is_end_minus_committed_and_unknown_without_commit():
    rows = lag_rows({"t": {0: 4}}, {"t": {0: 10, 1: 5}}, {("t", 1): "m"})
    assert rows == [
        {"topic": "t", "partition": 0, "committed_offset": 4, "end_offset": 10, "lag": 6, "member": None},
        {"topic": "t", "partition": 1, "committed_offset": None, "end_offset": 5, "lag": None, "member": "m"},
    ]


def test_consumer_protocol_assignment_decodes():
    data = struct.pack(">hih", 1, 1, 3) + b"abc" + struct.pack(">iii", 2, 2, 0) + struct.pack(">i", -1)
    assert decode_assignment(data) == {"abc": [0, 2]}
    assert decode_assignment(b"") == {}
    assert decode_assignment(data[:9]) == {}


def test_murmur2_matches_kafka_python_partitioner():
    from kafka.partitioner.default import murmur2 as reference

    for key in (b"", b"a", b"ab", b"abc", b"abcd", b"hello world", bytes(range(37))):
        assert murmur2(key) == reference(bytearray(key)) & 0xFFFFFFFF
    assert partition_for(None, 3, 4) == 1
    assert 0 <= partition_for(b"k", 7, 0) < 7


def test_batches_round_trip_and_carry_a_valid_crc():
    recs = [(b"k", b"v", [("h", b"1")]), (None, b"", []), (b"x" * 300, None, [])]
    data = encode_batch(recs, 1234)
    assert crc32c.crc32c(data[21:]) == struct.unpack_from(">I", data, 17)[0]
    shifted = struct.pack(">q", 40) + data[8:]
    out = decode_batches(shifted + shifted[:30])  # a partial trailing batch is ignored
    assert [r.offset for r in out] == [40, 41, 42]
    assert out[0] == Record(40, 1234, b"k", b"v", [("h", b"1")])
    assert out[1].key is None and out[1].value == b""
    assert out[2].value is None and out[2].key == b"x" * 300


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_from_other_producers_are_read(codec):
    plain = encode_batch([(None, b"zipped", []), (b"k", b"two", [("h", b"x")])], 5)
    out = decode_batches(compressed_batch(plain, codec))
    assert [(r.offset, r.key, r.value, r.headers) for r in out] == [(0, None, b"zipped", []),
                                                                   (1, b"k", b"two", [("h", b"x")])]


def test_snappy_in_the_java_producers_framing_is_read():
    """The Java producer writes snappy through snappy-java's stream: a magic header, then blocks each
    behind a 4-byte length. librdkafka writes one raw block."""
    import cramjam

    plain = encode_batch([(None, b"java-%d" % i, []) for i in range(40)], 5)
    records = plain[61:]
    half = len(records) // 2
    body = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for part in (records[:half], records[half:]):
        block = bytes(cramjam.snappy.compress_raw(part))
        body += struct.pack(">i", len(block)) + block
    out = decode_batches(compressed_batch(plain, 2, body))
    assert [r.value for r in out] == [b"java-%d" % i for i in range(40)]
    with pytest.raises(ValueError, match="batch at offset 0: snappy"):
        decode_batches(compressed_batch(plain, 2, body[:-3]))


def test_damaged_or_unknown_compression_is_reported():
    plain = encode_batch([(None, b"v", [])], 5)
    for codec in (1, 2, 3, 4):
        with pytest.raises(ValueError, match="batch at offset 0: .*does not decompress"):
            decode_batches(compressed_batch(plain, codec, b"\x00not compressed data\xff" * 3))
    with pytest.raises(ValueError, match="unknown compression codec 5"):
        decode_batches(compressed_batch(plain, 5, plain[61:]))


def test_decompression_is_bounded():
    """A small batch that decompresses to more than the limit fails instead of taking the memory; one
    within it comes out whole, however far beyond the first guess at its size."""
    from netio.codec.records import decompress

    zeros = bytes(8 << 20)
    for codec, compress in COMPRESS.items():
        packed = bytes(compress(zeros))
        assert len(packed) < len(zeros) // 20  # a batch within max.message.bytes could carry it
        assert decompress(codec, packed) == zeros
        with pytest.raises(ValueError, match="does not decompress within 1048576 bytes"):
            decompress(codec, packed, limit=1 << 20)


def test_record_times_read_offsets_and_timestamps_only():
    plain = encode_batch([(b"a", b"1", []), (b"b", b"2", [])], 1000)
    shifted = struct.pack(">q", 10) + plain[8:]
    assert record_times(shifted) == [(10, 1000), (11, 1000)]
    zipped = compressed_batch(shifted, 4)
    assert record_times(zipped) == [(10, 1000), (11, 1000)]
    stamped = bytearray(shifted)
    struct.pack_into(">h", stamped, 21, 0x08)  # LogAppendTime: every record is the batch's maxTimestamp
    struct.pack_into(">q", stamped, 35, 9999)
    assert record_times(bytes(stamped)) == [(10, 9999), (11, 9999)]
    lying = bytearray(shifted)
    struct.pack_into(">i", lying, 57, 1 << 30)  # more records than the batch holds
    with pytest.raises(ValueError, match=f"the batch claims {1 << 30} records, 2 are there"):
        record_times(bytes(lying))
    short = bytearray(lying)
    short[61] = 0x7E  # the first record's length: 63 bytes, more than the batch holds
    with pytest.raises(ValueError, match="a record of 63 bytes"):
        record_times(bytes(short))


def test_record_output_formats():
    rec = Record(7, 99, b"key", b"\xff\xfe", [("a", b"b")])
    assert render_record("t", 2, rec, ("partition", "offset", "key", "headers"), "text") == \
        "partition=2\toffset=7\tkey=key\theaders=a=b\t\\xff\\xfe"
    obj = json.loads(render_record("t", 2, rec, (), "json"))
    assert obj["value_b64"] == "//4=" and obj["key"] == "key" and obj["headers"] == {"a": "b"}
    assert record_dict("t", 0, Record(1, 2, None, b"v"))["key"] is None


def test_parse_datetime_defaults_to_utc():
    assert parse_datetime("1970-01-01T00:00:01Z") == 1000
    assert parse_datetime("1970-01-01T00:00:01") == 1000
    assert parse_datetime("1970-01-01T01:00:01+01:00") == 1000
    with pytest.raises(Exception):
        parse_datetime("yesterday")
