"""The __consumer_offsets record format and the group -> partition placement."""

import struct

from broker.groups import java_string_hashcode, parse_route_key, partition_for, route_key
from broker.groups import storage as s


def test_hashcode_matches_the_jvm():
    assert java_string_hashcode("") == 0
    assert java_string_hashcode("hello") == 99162322
    assert java_string_hashcode("ü€") == 252 * 31 + 0x20AC
    assert java_string_hashcode("polygenelubricants") == -(1 << 31)


def test_partition_for_is_kafkas_abs_mod():
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) is 0
    h = java_string_hashcode("my-group")
    assert partition_for("my-group", 7) == abs(h) % 7


def test_offset_key_and_value_are_kafkas_layout():
    key = s.offset_key("g", "t", 3)
    assert key == struct.pack(">hh1sh1si", 1, 1, b"g", 1, b"t", 3)
    value = s.offset_value(s.OffsetValue(42, 7, "meta", 1000))
    assert value == struct.pack(">hqih4sq", 3, 42, 7, 4, b"meta", 1000)
    assert s.parse_key(key) == ("offset", "g", "t", 3)
    assert s.parse_offset_value(value) == s.OffsetValue(42, 7, "meta", 1000)


def test_offset_value_v1_from_kafka_is_read():
    v1 = struct.pack(">hqh2sqq", 1, 9, 2, b"md", 123, 456)  # offset, metadata, commit ts, expire ts
    assert s.parse_offset_value(v1) == s.OffsetValue(9, -1, "md", 123)


def test_group_value_round_trip():
    members = [s.StoredMember("m-1", "inst-a", "client", "/10.0.0.1", 30000, 6000, b"\x00\x01sub", b"asg"),
               s.StoredMember("m-2", None, "client", "", 30000, 6000, b"", b"")]
    v = s.GroupValue("consumer", 5, "range", "m-1", 1234, members)
    key = s.group_key("grp")
    assert s.parse_key(key) == ("group", "grp")
    assert s.parse_group_value(s.group_value(v)) == v
    empty = s.GroupValue("consumer", 6, None, None, 99, [])
    assert s.parse_group_value(s.group_value(empty)) == empty


def test_records_round_trip_through_a_batch_with_tombstones():
    recs = [(s.offset_key("g", "t", p), s.offset_value(s.OffsetValue(p * 10))) for p in range(5)]
    recs.append((s.group_key("g"), None))
    batch = s.build_batch(recs)
    second = bytearray(s.build_batch([(s.offset_key("g", "t", 0), None)]))
    struct.pack_into(">q", second, 0, 6)  # as the log assigns it
    out = list(s.iter_records(batch + bytes(second)))
    assert [o for o, _, _ in out] == list(range(7))
    assert [k for _, k, _ in out[:6]] == [k for k, _ in recs]
    assert out[5][2] is None and out[6][2] is None
    assert s.parse_offset_value(out[3][2]).offset == 30
    assert s.next_offset_after(batch + bytes(second)) == 7
    assert s.next_offset_after(batch + bytes(second)[:30]) == 6  # a torn tail is not read


def test_route_key_carries_slot_and_ipv4_client():
    assert parse_route_key(route_key(17, "10.1.2.3:5555")) == (17, "/10.1.2.3")
    assert parse_route_key(route_key((1 << 24) - 1, "255.255.255.255:1")) == ((1 << 24) - 1, "/255.255.255.255")
    assert parse_route_key(route_key(3, "::1:9092")) == (3, "")  # IPv6: the slot alone
    assert parse_route_key(-1) == (-1, "")
