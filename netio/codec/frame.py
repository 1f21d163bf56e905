"""Framing and request/response headers: bytes in, requests out; responses in, bytes out.

Kafka frames are a signed 4-byte big-endian size followed by that many bytes. Request headers are v1
(api_key, api_version, correlation_id, nullable int16 client_id) or v2 (v1 plus tagged fields) when the
request version is flexible; the client id is never a compact string. Response headers are v0
(correlation_id) or v1 (plus tagged fields) when flexible, except ApiVersions, whose response header is
always v0 so that a client can read it before it knows which versions the broker speaks.
"""

from __future__ import annotations

import mmap
import struct
import sys
from collections import deque
from dataclasses import dataclass

from netio.codec import types as T
from netio.codec.apis import APIS
from netio.codec.errors import CodecError, ErrorCode, FrameTooLarge, UnknownApi, UnsupportedVersion
from netio.codec.schema import Api

API_VERSIONS_KEY = 18
DEFAULT_MAX_FRAME_BYTES = 104857600  # socket.request.max.bytes
DIRECT_MIN = 64 * 1024  # frames at least this large are received in place (FrameReader.direct_buffer)
SPARE_MAX = 16 << 20  # the largest receive buffer a connection keeps between frames

_SIZE = struct.Struct(">i")
_REQUEST_PREFIX = struct.Struct(">hhi")
_read_client_id = T.string_reader(compact=False, nullable=True)
_write_client_id = T.string_writer(compact=False, nullable=True)


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    header: RequestHeader
    body: dict


class FrameReader:
    """Accumulates received bytes and yields complete frame bodies (size prefix stripped).

    Frames lying inside one fed chunk are returned as zero-copy memoryviews of that chunk; chunks are kept
    as immutable bytes so a caller reusing its receive buffer cannot change a frame already handed out.
    A large frame (``DIRECT_MIN`` bytes or more, a batch-laden Produce) is instead received straight into a
    frame-sized anonymous mapping (``direct_buffer``/``direct_filled``): one copy out of the kernel and no
    allocation, zero-fill or page faults per frame, because the mapping is reused once no view of the
    previous frame held in it is alive; its pages are committed only as bytes arrive, so a size prefix
    alone costs no memory. With an ``arena`` (anything with ``alloc(size)`` returning None or a block with a
    writable ``view`` of that size and ``release()``), a large frame goes into a block from it instead, and
    ``take_block()`` hands the block of the frame just returned to the caller, who releases it when done.
    After `FrameTooLarge` the stream is unusable and the connection should be closed.
    """

    __slots__ = ("max_frame_bytes", "_chunks", "_available", "_size", "_failed", "_direct", "_filled",
                 "_spare", "_large", "_arena", "_block", "_frame_block")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, arena=None) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._chunks: deque[memoryview] = deque()
        self._available = 0
        self._size: int | None = None
        self._failed: FrameTooLarge | None = None
        self._direct: mmap.mmap | None = None  # the frame being received in place
        self._filled = 0
        self._spare: mmap.mmap | None = None  # kept for the next large frame
        self._large = False  # the last frame was large: read the next size prefix alone
        self._arena = arena
        self._block = None  # arena block of the frame being received
        self._frame_block = None  # arena block of the frame last returned, until taken

    def read_size(self, chunk: int) -> int:
        """How many bytes to receive next (when not receiving in place): ``chunk``, or only the missing
        part of the size prefix after a large frame, so that the next large frame's body is not received
        into a chunk and then copied into its buffer."""
        if self._large and self._size is None and self._available < 4:
            return 4 - self._available
        return chunk

    def waiting_large_body(self) -> bool:
        """A large frame's size prefix is parsed and its body is still to come (``direct_buffer`` will
        give where to receive it)."""
        size = self._size
        return size is not None and size >= DIRECT_MIN and self._available < size

    def direct_buffer(self) -> memoryview | None:
        """Where the rest of the frame being assembled should be received, when it is large; else None.

        The caller receives into it (``recv_into``) and reports the count with ``direct_filled``."""
        if not self.waiting_large_body():
            return None
        size = self._size
        if self._direct is None and self._arena is not None:
            block = self._arena.alloc(size)
            if block is not None:
                self._copy_out(block.view, self._available)
                self._block, self._direct, self._filled = block, block.view, self._available
        if self._direct is None:
            # Reuse the spare only when nothing else refers to it (a handler may still hold its last frame):
            # the references are the attribute and getrefcount's argument.
            if self._spare is not None and len(self._spare) >= size and sys.getrefcount(self._spare) == 2:
                buf = self._spare
            else:
                buf = mmap.mmap(-1, size)  # pages are committed as bytes arrive, as with chunks
                if size <= SPARE_MAX:
                    self._spare = buf
            self._copy_out(buf, self._available)  # what already arrived belongs to this frame: _available < size
            self._direct, self._filled = buf, self._available
        return memoryview(self._direct)[self._filled:size]

    def take_block(self):
        """The arena block holding the frame ``next_frame`` just returned (None if it is not in one)."""
        block, self._frame_block = self._frame_block, None
        return block

    def close(self) -> None:
        """Give back arena blocks (the connection is gone: a frame half received is never handled)."""
        for block in (self._block, self._frame_block):
            if block is not None:
                block.release()
        self._block = self._frame_block = None
        self._direct = None

    def direct_filled(self, n: int) -> None:
        self._filled += n
        self._available += n

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames (including a parsed size prefix's body so far)."""
        return self._available

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)
        if data:
            self._chunks.append(memoryview(data))
            self._available += len(data)

    def next_frame(self) -> memoryview | None:
        if self._failed is not None:
            raise self._failed
        if self._size is None:
            if self._available < 4:
                return None
            size = _SIZE.unpack(self._take(4))[0]
            if size < 0 or size > self.max_frame_bytes:
                self._failed = FrameTooLarge(size, self.max_frame_bytes)
                raise self._failed
            self._size = size
            self._large = size >= DIRECT_MIN
        if self._available < self._size:
            return None
        if self._direct is not None:
            frame = memoryview(self._direct)[:self._size]
            self._available -= self._size
            self._direct = None
            if self._block is not None:
                self._frame_block, self._block = self._block, None
        else:
            frame = self._take(self._size)
        self._size = None
        return frame

    def _take(self, n: int) -> memoryview:
        self._available -= n
        chunks = self._chunks
        if n == 0:
            return memoryview(b"")
        first = chunks[0]
        if len(first) >= n:
            if len(first) == n:
                chunks.popleft()
            else:
                chunks[0] = first[n:]
            return first[:n]
        out = bytearray(n)  # one allocation, one copy of each piece: a frame spanning chunks
        self._copy_out(out, n)
        return memoryview(out)

    def _copy_out(self, out, n: int) -> None:
        """Move the next ``n`` buffered bytes into ``out[:n]`` (``_available`` is the caller's to keep)."""
        chunks = self._chunks
        filled = 0
        while filled < n:
            chunk = chunks.popleft()
            need = n - filled
            if len(chunk) > need:
                chunks.appendleft(chunk[need:])
                chunk = chunk[:need]
            out[filled:filled + len(chunk)] = chunk
            filled += len(chunk)


# ---------------------------------------------------------------------------------------------------------
# requests


def peek_header(frame) -> RequestHeader:
    """api_key, api_version and correlation_id only: enough to address an error reply."""
    try:
        api_key, api_version, correlation_id = _REQUEST_PREFIX.unpack_from(frame, 0)
    except struct.error:
        raise CodecError(f"request of {len(frame)} bytes is shorter than a header") from None
    return RequestHeader(api_key, api_version, correlation_id, None)


def _parse_header(buf: memoryview) -> tuple[RequestHeader, int]:
    api_key, api_version, correlation_id = _REQUEST_PREFIX.unpack_from(buf, 0)
    client_id, pos = _read_client_id(buf, 8)
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def decode_request(frame) -> Request:
    """Decode one frame body (header + request) into a `Request`.

    Raises UnknownApi or UnsupportedVersion (both carrying the parsed header) so the caller can answer,
    and CodecError for anything malformed.
    """
    buf = frame if isinstance(frame, memoryview) else memoryview(frame)
    prefix = peek_header(buf)
    api = APIS.get(prefix.api_key)
    try:
        header, pos = _parse_header(buf)
    except (CodecError, struct.error):
        header, pos = prefix, -1
    if api is None:
        raise UnknownApi(f"unknown api key {prefix.api_key}", header=header)
    version = prefix.api_version
    if not api.advertises(version):
        raise UnsupportedVersion(f"{api.name} v{version} is not supported", header=header)
    if pos < 0:
        raise CodecError("malformed request header client id", header=prefix)
    flexible = api.is_flexible(version)
    try:
        if flexible:
            pos = T.skip_tagged_fields(buf, pos)
        body, pos = api.decode_body("request", version, buf, pos)
    except CodecError as exc:
        exc.header = header
        raise
    except (struct.error, IndexError, ValueError) as exc:
        raise CodecError(f"malformed request header: {exc}", header=header) from None
    if pos != len(buf) and not (api.tolerated_tail and buf[pos:] == api.tolerated_tail):
        raise CodecError(f"{len(buf) - pos} unexpected bytes after {api.name} v{version} request", header=header)
    if not api.accepts(version):
        raise UnsupportedVersion(f"{api.name} v{version} is refused", header=header, body=body)
    return Request(header, body)


def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                   body: dict) -> bytes:
    """A complete request frame, size prefix included (for tests, tools and the perf client)."""
    api = _api(api_key, api_version)
    out = bytearray(4)
    out += _REQUEST_PREFIX.pack(api_key, api_version, correlation_id)
    _write_client_id(client_id, out)
    if api.is_flexible(api_version):
        out.append(0)
    api.encode_body("request", api_version, body, out)
    _SIZE.pack_into(out, 0, len(out) - 4)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------
# responses


def _response_layout(api: Api, api_version: int, error_code: int | None) -> tuple[int, bool]:
    """(body version, header has tagged fields) for a response, applying the ApiVersions rules."""
    if api.key == API_VERSIONS_KEY:
        if error_code == ErrorCode.UNSUPPORTED_VERSION or not api.advertises(api_version):
            return 0, False
        return api_version, False
    return api_version, api.is_flexible(api_version)


def encode_response(api_key: int, api_version: int, correlation_id: int, body: dict) -> bytes:
    """A complete response frame: size prefix, response header v0/v1, body.

    ApiVersions always uses header v0, and its body is encoded as v0 when the error is
    UNSUPPORTED_VERSION (or the requested version is unknown), which every client can parse.
    """
    api = APIS.get(api_key)
    if api is None:
        raise CodecError(f"unknown api key {api_key}")
    version, tagged_header = _response_layout(api, api_version, body.get("error_code"))
    if not api.advertises(version):
        raise CodecError(f"{api.name} v{version} is not supported")
    out = bytearray(8)
    _SIZE.pack_into(out, 4, correlation_id)
    if tagged_header:
        out.append(0)
    api.encode_body("response", version, body, out)
    _SIZE.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def decode_response(api_key: int, api_version: int, frame) -> tuple[int, dict]:
    """(correlation_id, body) from a response frame body (size prefix stripped)."""
    buf = frame if isinstance(frame, memoryview) else memoryview(frame)
    api = APIS.get(api_key)
    if api is None:
        raise CodecError(f"unknown api key {api_key}")
    try:
        correlation_id, pos = T.read_int32(buf, 0)
        error_code = T.read_int16(buf, pos)[0] if api.key == API_VERSIONS_KEY else None
    except (struct.error, IndexError):
        raise CodecError("response shorter than its header") from None
    version, tagged_header = _response_layout(api, api_version, error_code)
    if not api.advertises(version):
        raise CodecError(f"{api.name} v{version} is not supported")
    if tagged_header:
        try:
            pos = T.skip_tagged_fields(buf, pos)
        except (struct.error, IndexError):
            raise CodecError("truncated response header") from None
    body, pos = api.decode_body("response", version, buf, pos)
    if pos != len(buf):
        raise CodecError(f"{len(buf) - pos} unexpected bytes after {api.name} v{version} response")
    return correlation_id, body


def _api(api_key: int, api_version: int) -> Api:
    api = APIS.get(api_key)
    if api is None:
        raise UnknownApi(f"unknown api key {api_key}")
    if not api.advertises(api_version):
        raise UnsupportedVersion(f"{api.name} v{api_version} is not supported")
    return api


def api_versions_table() -> list[dict]:
    """The ApiVersions `api_keys` list, from the declarations."""
    return [
        {"api_key": key, "min_version": api.versions[0], "max_version": api.versions[1]}
        for key, api in sorted(APIS.items())
    ]
