"""Batches as clients compress them, for tests: Kafka's codecs by their attribute number, and a plain
batch's header over a compressed body with its length, attributes and CRC made right."""

import gzip
import struct

import cramjam
import crc32c

# gzip from the standard library: what is read back goes through cramjam, so at least one codec is written
# by another implementation than the one that reads it.
COMPRESS = {1: gzip.compress, 2: cramjam.snappy.compress_raw, 3: cramjam.lz4.compress, 4: cramjam.zstd.compress}


def compressed_batch(plain: bytes, codec: int, body: bytes | None = None) -> bytes:
    """`plain`'s header over `body` (by default `plain`'s records compressed with `codec`), marked as
    compressed with `codec`."""
    if body is None:
        body = bytes(COMPRESS[codec](plain[61:]))
    out = bytearray(plain[:61]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">h", out, 21, struct.unpack_from(">h", out, 21)[0] & ~0x07 | codec)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)
