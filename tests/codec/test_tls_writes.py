"""TLS on memory BIOs (netio/tls.py `TLSSocket`) and a TLS connection's writes (netio/connection.py
`_write_tls`), over a real socket pair against Python's own TLS client: the handshake, many small records
gathered by one read, and responses of bytes and file ranges written in order through a small socket
buffer, every file range's descriptor closed once read."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netio.connection import Connection, FilePart
from netio.tls import TLSSocket
from tools.testing import make_test_certificates

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificates")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certificates(tmp_path_factory.mktemp("certs"))


def pair(certs, sndbuf: int = 0):
    """(server TLSSocket, client SSLSocket) over a connected socket pair, handshake done."""
    a, b = socket.socketpair()
    if sndbuf:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    a.setblocking(False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["keystore"])
    server = TLSSocket(a, ctx)
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    done = []
    t = threading.Thread(target=lambda: done.append(client_ctx.wrap_socket(b, server_hostname="localhost")))
    t.start()
    deadline = time.monotonic() + 10
    while t.is_alive():
        assert time.monotonic() < deadline
        try:
            server.recv(1)  # drives the handshake; no application data is sent during it
        except BlockingIOError:
            time.sleep(0.001)
    t.join()
    try:
        server.recv(1)  # the client's Finished, sent before its handshake returned
    except BlockingIOError:
        pass
    return server, done[0]


def test_one_read_gathers_many_small_records(certs):
    server, client = pair(certs)

    def send() -> None:
        for i in range(300):
            client.sendall(i.to_bytes(2, "big") * 512)  # one TLS record of 1 KiB each
        client.shutdown(socket.SHUT_WR)  # not close: unread tickets from the server would reset the pair

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.2)  # most records have arrived before the first read
    got = bytearray()
    reads = 0
    while True:
        try:
            chunk = server.recv(256 * 1024)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        if not chunk:
            break  # the client closed
        got += chunk
        reads += 1
    sender.join(10)
    client.close()
    assert bytes(got) == b"".join(i.to_bytes(2, "big") * 512 for i in range(300))
    assert reads < 300 / 4  # records arrive together: a read takes several


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.binary(min_size=1, max_size=70_000),
                                st.tuples(st.integers(0, 300_000), st.integers(1, 400_000))), min_size=1, max_size=8))
def test_writes_keep_order_through_a_full_socket(certs, tmp_path_factory, parts):
    path = tmp_path_factory.mktemp("seg") / "segment"
    content = os.urandom(700_000)
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    server, client = pair(certs, sndbuf=8192)
    conn = Connection(server, 1, "peer", 1 << 20, lambda c: None)
    assert conn.tls
    expected = bytearray()
    opened = []
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
    received = bytearray()
    reader = threading.Thread(target=lambda: [received.extend(c) for c in iter(lambda: client.recv(65536), b"")])
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while conn.has_output():
            assert time.monotonic() < deadline
            conn.flush()  # BlockingIOError inside whenever the socket is full; flush keeps the rest
            time.sleep(0.0005)
        assert conn.out_bytes == 0 and conn.close_reason is None
        server.close()
        reader.join(10)
        assert bytes(received) == bytes(expected)
        for d in opened:
            with pytest.raises(OSError):
                os.fstat(d)
    finally:
        os.close(fd)
        client.close()
