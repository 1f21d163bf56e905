"""ErrorCode lists every Kafka error code under its exact name."""

from __future__ import annotations

from netio.codec import CodecError, ErrorCode, FrameTooLarge, UnknownApi, UnsupportedVersion

from .official import ERRORS_TSV, require_shared


def test_error_codes_match_the_official_table():
    require_shared()
    rows = [line.split("\t") for line in ERRORS_TSV.read_text().splitlines()[1:] if line.strip()]
    official = {name: int(code) for code, name, *_ in rows}
    assert {e.name: e.value for e in ErrorCode} == official


def test_well_known_codes():
    assert ErrorCode.NONE == 0 and ErrorCode.UNKNOWN_SERVER_ERROR == -1
    assert ErrorCode.UNSUPPORTED_VERSION == 35 and ErrorCode.INVALID_REQUEST == 42
    assert ErrorCode(6).name == "NOT_LEADER_OR_FOLLOWER"


def test_codec_errors_carry_the_code_a_reply_would_use():
    assert issubclass(FrameTooLarge, CodecError) and issubclass(UnknownApi, CodecError)
    assert UnsupportedVersion("x").error_code == ErrorCode.UNSUPPORTED_VERSION
    assert CodecError("x").error_code == ErrorCode.INVALID_REQUEST
