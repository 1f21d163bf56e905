"""Sans-IO Kafka wire codec: bytes in, request dicts out; response dicts in, bytes out.

Every API is declared once as data (`netio.codec.apis`); one generic encoder/decoder (`schema`) serves
all of them over primitive readers/writers (`types`); `frame` handles the size prefix and headers. No
socket code lives here; the network workers feed received bytes to a `FrameReader` and write the bytes
that `encode_response` returns.
"""

from netio.codec.apis import APIS
from netio.codec.errors import CodecError, ErrorCode, FrameTooLarge, UnknownApi, UnsupportedVersion
from netio.codec.frame import (
    FrameReader,
    Request,
    RequestHeader,
    api_versions_table,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    peek_header,
)
from netio.codec.schema import Api, Field

__all__ = [
    "APIS", "Api", "CodecError", "ErrorCode", "Field", "FrameReader", "FrameTooLarge", "Request",
    "RequestHeader", "UnknownApi", "UnsupportedVersion", "api_versions_table", "decode_request",
    "decode_response", "encode_request", "encode_response", "peek_header",
]
