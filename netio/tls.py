"""TLS for the SSL and SASL_SSL listeners: the server context built from the broker's ssl.* settings, and
`TLSSocket`, a connection's TLS over its plain socket.

TLS runs on memory BIOs rather than on the socket: OpenSSL reading the socket itself takes two system
calls per TLS record (its header, then its body), and librdkafka sends a record per message, so a 1 KiB
record cost more in system calls than in decryption. Here one receive of up to RAW_READ bytes feeds many
records, and a read gathers their plaintext. A TLS connection cannot hand file ranges to `os.sendfile`
(the kernel would send them unencrypted), so its responses are read into memory and encrypted
(`Connection._write_tls`); plaintext listeners keep the zero-copy path.
"""

from __future__ import annotations

import socket
import ssl

_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TLSConfigError(ValueError):
    """The certificate, key or trust store named in the configuration cannot be used; says which."""


def server_context(cfg) -> ssl.SSLContext:
    """TLS 1.2 or later, the broker's certificate chain and key from `ssl.keystore.location` (PEM), and,
    when `ssl.client.auth` asks for client certificates, the CAs of `ssl.truststore.location`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # a write never has to wait for the peer's bytes
    keystore = cfg["ssl.keystore.location"]
    try:
        ctx.load_cert_chain(keystore, password=cfg["ssl.key.password"])
    except (OSError, ssl.SSLError) as e:
        raise TLSConfigError(f"ssl.keystore.location {keystore}: cannot load a PEM certificate chain and "
                             f"private key: {getattr(e, 'strerror', None) or e}") from None
    ctx.verify_mode = _CLIENT_AUTH[cfg["ssl.client.auth"]]
    if ctx.verify_mode != ssl.CERT_NONE:
        truststore = cfg["ssl.truststore.location"]
        try:
            ctx.load_verify_locations(cafile=truststore)
        except (OSError, ssl.SSLError) as e:
            raise TLSConfigError(f"ssl.truststore.location {truststore}: cannot load PEM CA certificates: "
                                 f"{getattr(e, 'strerror', None) or e}") from None
    return ctx


def client_context(cfg) -> ssl.SSLContext:
    """How this broker checks another broker's certificate (the CAs of `ssl.truststore.location`, else the
    system's) and, when it has one, shows its own (`ssl.keystore.location`) to brokers that ask."""
    ctx = ssl.create_default_context(cafile=cfg["ssl.truststore.location"] or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg["ssl.keystore.location"]:
        ctx.load_cert_chain(cfg["ssl.keystore.location"], password=cfg["ssl.key.password"])
    return ctx


RAW_READ = 256 * 1024  # ciphertext taken from the socket per receive
MAX_UNSENT = 1 << 20  # ciphertext held back by a full socket before `send` refuses more


class TLSSocket:
    """The calls the network worker makes of a client socket, with TLS between it and the bytes: `recv`,
    `recv_into` and `send` on plaintext, non-blocking (BlockingIOError when nothing can move; a refused
    handshake or a corrupt record raises ssl.SSLError, an OSError). `send` takes all it is given once the
    socket has taken what came before; `unsent` says whether ciphertext still waits for the socket, and
    `pending` whether plaintext or ciphertext waits here with no event to announce it."""

    __slots__ = ("sock", "_in", "_out", "_tls", "_unsent")

    def __init__(self, sock: socket.socket, context: ssl.SSLContext):
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._unsent = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def peer_subject(self) -> str | None:
        """The verified client certificate's subject as Kafka's principal builder names it, or None."""
        try:
            cert = self._tls.getpeercert()
        except ValueError:  # the handshake has not finished
            return None
        return subject_name(cert) if cert else None

    def getsockname(self):
        return self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def pending(self) -> int:
        return self._tls.pending() + self._in.pending

    def unsent(self) -> bool:
        return bool(self._unsent) or self._out.pending > 0

    # -- reading ------------------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Ciphertext from the socket into the TLS input; False when the socket has none now."""
        try:
            raw = self.sock.recv(RAW_READ)
        except (BlockingIOError, InterruptedError):
            return False
        if raw:
            self._in.write(raw)
        else:
            self._in.write_eof()
        return True

    def _gather(self, n: int, read) -> int:
        """Plaintext of as many records as have arrived, up to `n` bytes, through `read(room, at)` (the
        count it took); 0 once the peer has closed, BlockingIOError when no record is complete yet."""
        got = 0
        while got < n:
            try:
                k = read(n - got, got)
            except ssl.SSLWantReadError:
                self.flush_out(must=False)  # the handshake's answers
                if got:
                    break
                if not self._fill():
                    raise BlockingIOError("no TLS record complete yet") from None
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if k == 0:
                break
            got += k
        return got

    def recv_into(self, buf) -> int:
        view = memoryview(buf)
        return self._gather(len(view), lambda room, at: self._tls.read(room, view[at:]))

    def recv(self, n: int) -> bytes:
        parts: list[bytes] = []

        def read(room: int, at: int) -> int:
            parts.append(self._tls.read(room))
            return len(parts[-1])

        self._gather(n, read)
        return b"".join(parts)

    # -- writing ------------------------------------------------------------------------------------------

    def flush_out(self, must: bool = True) -> None:
        """Ciphertext to the socket; with `must`, BlockingIOError while some of it cannot go yet."""
        if self._out.pending:
            self._unsent += self._out.read()
        while self._unsent:
            try:
                n = self.sock.send(self._unsent)
            except (BlockingIOError, InterruptedError):
                if must:
                    raise
                return
            del self._unsent[:n]

    def send(self, data) -> int:
        """Encrypt all of `data` once what came before is out, or nearly; the count taken."""
        self.flush_out(must=len(self._unsent) >= MAX_UNSENT)
        try:
            self._tls.write(data)
        except ssl.SSLWantReadError:  # the handshake is not finished: the client's next bytes finish it
            raise BlockingIOError("TLS handshake in progress") from None
        self.flush_out(must=False)
        return len(data)


# Attribute keywords RFC 2253 (and Java's X500Principal) write by name.
_KEYWORDS = {"commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
             "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
             "domainComponent": "DC", "userId": "UID"}


def subject_name(cert: dict) -> str:
    """An RFC 2253 distinguished name (most specific attribute first), e.g. CN=alice,OU=ops,O=Example,C=DE:
    the name Kafka's default principal builder gives a client certificate's subject."""
    rdns = []
    for rdn in reversed(cert.get("subject", ())):
        rdns.append("+".join(f"{_KEYWORDS.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out
