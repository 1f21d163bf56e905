"""A TLS connection's writes (netio/connection.py `_write_tls`): queued parts and file ranges go out in
order as pieces of plaintext, and a send TLS could not finish is retried with the very same piece."""

from __future__ import annotations

import os
import ssl

from hypothesis import given, settings
from hypothesis import strategies as st

from netio.connection import Connection, FilePart


class FakeTLSSocket:
    """Takes what `send` is given unless told to refuse; remembers the refused piece to check the retry."""

    def __init__(self, refuse_every: int):
        self.sent = bytearray()
        self.calls = 0
        self.refuse_every = refuse_every
        self.refused = None
        self.retried_same = []

    def send(self, data) -> int:
        self.calls += 1
        if self.refused is not None:
            self.retried_same.append(data is self.refused)
            self.refused = None
        elif self.refuse_every and self.calls % self.refuse_every == 0:
            self.refused = data
            raise ssl.SSLWantWriteError("would block")
        self.sent += bytes(data)
        return len(data)

    def fileno(self) -> int:
        return -1


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.one_of(st.binary(min_size=1, max_size=70_000),
                                st.tuples(st.integers(0, 300_000), st.integers(1, 400_000))), min_size=1, max_size=8),
       refuse_every=st.sampled_from([0, 2, 3]))
def test_tls_writes_keep_order_and_retry_the_same_piece(tmp_path_factory, parts, refuse_every):
    path = tmp_path_factory.mktemp("seg") / "segment"
    content = os.urandom(700_000)
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    sock = FakeTLSSocket(refuse_every)
    conn = Connection(sock, 1, "peer", 1 << 20, lambda c: None)
    conn.tls = True
    expected = bytearray()
    opened = []
    try:
        for p in parts:
            if isinstance(p, tuple):
                off, length = p
                part = FilePart(os.dup(fd), off, length)
                opened.append(part.fd)
                expected += content[off:off + length]
            else:
                part = p
                expected += p
            conn.out.append(part)
            conn.out_bytes += part.length if isinstance(part, FilePart) else len(part)
        for _ in range(10_000):
            if not conn.out:
                break
            conn.flush()
        assert not conn.out and conn.out_bytes == 0
        assert bytes(sock.sent) == bytes(expected)
        assert all(sock.retried_same)
        for d in opened:  # every file range's descriptor was closed once its bytes were read
            try:
                os.fstat(d)
                raise AssertionError(f"descriptor {d} left open")
            except OSError:
                pass
    finally:
        os.close(fd)
