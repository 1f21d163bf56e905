"""SASL on SASL_PLAINTEXT listeners: PLAIN (RFC 4616), SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and OAUTHBEARER
(RFC 7628, in `broker.security.oauthbearer`), sans-IO:
a token in, the answer out. The server side serves the broker's listeners; the client side
(`client_exchange`) lets the CLI log in to any Kafka broker.

A connection on such a listener starts in a `Session` that admits only ApiVersions and the SASL requests,
in Kafka's order (SaslHandshake, then SaslAuthenticate tokens, or raw tokens after a v0 handshake), and is
served like any other once a mechanism has accepted its user.

SCRAM keeps what RFC 5802 has a server store (salt, stored key, server key), derived once from the
configured password with Kafka's 4096 iterations; the password is never compared during an exchange.
Credentials made with AlterUserScramCredentials (KIP-554) arrive as a salted password, are kept as the same
three values, and take precedence over `sasl.users` for SCRAM logins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from netio.codec import ErrorCode

SCRAM_ITERATIONS = 4096  # Kafka's minimum for SCRAM credentials
MAX_SCRAM_ITERATIONS = 16384  # and its maximum
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_MECHANISM_CODES = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}  # ScramMechanism on the wire

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
OAUTHBEARER = "OAUTHBEARER"


class AuthenticationFailed(Exception):
    """The client's credentials or its token were refused; the connection is closed after the answer."""

    error_code = ErrorCode.SASL_AUTHENTICATION_FAILED


class ScramCredential:
    __slots__ = ("salt", "stored_key", "server_key", "iterations")

    def __init__(self, hash_name: str, password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS):
        self._derive(hash_name, hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations), salt,
                     iterations)

    def _derive(self, hash_name: str, salted: bytes, salt: bytes, iterations: int) -> None:
        self.salt = salt
        self.iterations = iterations
        self.stored_key = hashlib.new(hash_name, hmac.digest(salted, b"Client Key", hash_name)).digest()
        self.server_key = hmac.digest(salted, b"Server Key", hash_name)

    @classmethod
    def from_salted(cls, hash_name: str, salted_password: bytes, salt: bytes, iterations: int) -> "ScramCredential":
        """What AlterUserScramCredentials sends: Hi(password, salt, iterations), computed by the client."""
        cred = cls.__new__(cls)
        cred._derive(hash_name, salted_password, salt, iterations)
        return cred

    @classmethod
    def from_stored(cls, salt: bytes, iterations: int, stored_key: bytes, server_key: bytes) -> "ScramCredential":
        cred = cls.__new__(cls)
        cred.salt, cred.iterations, cred.stored_key, cred.server_key = salt, iterations, stored_key, server_key
        return cred

    def to_json(self) -> list:
        return [base64.b64encode(self.salt).decode(), self.iterations, base64.b64encode(self.stored_key).decode(),
                base64.b64encode(self.server_key).decode()]

    @classmethod
    def from_json(cls, doc: list) -> "ScramCredential":
        return cls.from_stored(base64.b64decode(doc[0]), int(doc[1]), base64.b64decode(doc[2]),
                               base64.b64decode(doc[3]))


class Credentials:
    """The users a SASL listener accepts: `sasl.users`, with their SCRAM credentials derived on first use,
    and the SCRAM credentials stored through AlterUserScramCredentials (`stored`), which win."""

    def __init__(self, users: dict[str, str]):
        self.users = dict(users)
        self._scram: dict[tuple[str, str], ScramCredential] = {}
        self.stored: dict[tuple[str, str], ScramCredential] = {}  # (mechanism, user)

    def set_stored(self, doc: dict) -> None:
        """The metadata snapshot's credentials: {user: {mechanism: ScramCredential.to_json()}}."""
        self.stored = {(mech, user): ScramCredential.from_json(v) for user, mechs in doc.items()
                       for mech, v in mechs.items()}

    @classmethod
    def from_config(cls, entries) -> "Credentials":
        from broker.config import sasl_passwords

        return cls(sasl_passwords(entries))

    def check_password(self, user: str, password: str) -> bool:
        known = self.users.get(user)
        if known is None:
            return False
        return hmac.compare_digest(known.encode(), password.encode())

    def scram(self, mechanism: str, user: str) -> ScramCredential | None:
        stored = self.stored.get((mechanism, user))
        if stored is not None:
            return stored
        password = self.users.get(user)
        if password is None:
            return None
        key = (mechanism, user)
        cred = self._scram.get(key)
        if cred is None:
            cred = self._scram[key] = ScramCredential(SCRAM_HASHES[mechanism], password, os.urandom(16))
        return cred


class Plain:
    """RFC 4616: one token, [authzid] NUL authcid NUL password; the server answers with nothing."""

    def __init__(self, credentials: Credentials):
        self.credentials = credentials
        self.principal: str | None = None

    def step(self, token: bytes) -> bytes:
        parts = bytes(token).split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (p.decode() for p in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        if not user or not password:
            raise AuthenticationFailed("Authentication failed: username or password not specified")
        if authzid and authzid != user:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                       "different from username")
        if not self.credentials.check_password(user, password):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        self.principal = user
        return b""


def _attributes(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        name, eq, value = item.partition("=")
        if not eq or len(name) != 1:
            raise AuthenticationFailed(f"Invalid SCRAM message: bad attribute {item!r}")
        out.append((name, value))
    return out


def _saslname(value: str) -> str:
    """RFC 5802's escaping of ',' and '=' in user names."""
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise AuthenticationFailed("Invalid SCRAM message: bad user name")
    return value.replace("=2C", ",").replace("=3D", "=")


class Scram:
    """RFC 5802 without channel binding: client-first, server-first, client-final, server-final."""

    def __init__(self, credentials: Credentials, mechanism: str, server_nonce: str | None = None):
        self.credentials = credentials
        self.mechanism = mechanism
        self.server_nonce = server_nonce  # the server's part of the nonce; random unless given
        self.hash_name = SCRAM_HASHES[mechanism]
        self.principal: str | None = None
        self._state = 0
        self._first_bare = self._server_first = self._gs2 = self._nonce = ""
        self._cred: ScramCredential | None = None

    def step(self, token: bytes) -> bytes:
        try:
            text = bytes(token).decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SCRAM message: not UTF-8") from None
        if self._state == 0:
            return self._client_first(text)
        if self._state == 1:
            return self._client_final(text)
        raise AuthenticationFailed("Invalid SCRAM exchange: already complete")

    def _client_first(self, text: str) -> bytes:
        cbind, _, rest = text.partition(",")
        authzid, comma, bare = rest.partition(",")
        if not comma or cbind not in ("n", "y"):
            raise AuthenticationFailed("Invalid SCRAM client-first message (channel binding is not supported)")
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise AuthenticationFailed("Invalid SCRAM client-first message")
        user = _saslname(attrs[0][1])
        if authzid and (not authzid.startswith("a=") or _saslname(authzid[2:]) != user):
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                       "different from username")
        self._cred = self.credentials.scram(self.mechanism, user)
        if self._cred is None:
            raise AuthenticationFailed("Authentication failed: Invalid user credentials")
        self.principal = user
        self._gs2 = f"{cbind},{authzid},"
        self._first_bare = bare
        self._nonce = attrs[1][1] + (self.server_nonce or base64.b64encode(os.urandom(18)).decode())
        self._server_first = (f"r={self._nonce},s={base64.b64encode(self._cred.salt).decode()},"
                              f"i={self._cred.iterations}")
        self._state = 1
        return self._server_first.encode()

    def _client_final(self, text: str) -> bytes:
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise AuthenticationFailed("Invalid SCRAM client-final message: no proof")
        attrs = dict(_attributes(without_proof))
        if attrs.get("c") != base64.b64encode(self._gs2.encode()).decode():
            raise AuthenticationFailed("Invalid SCRAM client-final message: channel binding does not match")
        # Kafka accepts a nonce that ends with the one it sent: librdkafka before 2.x sends its own nonce
        # in front of the whole server nonce (which already starts with it).
        if not attrs.get("r", "").endswith(self._nonce):
            raise AuthenticationFailed("Invalid SCRAM client-final message: nonce does not match")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise AuthenticationFailed("Invalid SCRAM client-final message: proof is not base64") from None
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        cred = self._cred
        signature = hmac.digest(cred.stored_key, auth_message, self.hash_name)
        if len(proof) != len(signature):
            raise AuthenticationFailed(f"Authentication failed during authentication due to invalid credentials "
                                       f"with SASL mechanism {self.mechanism}")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(), cred.stored_key):
            raise AuthenticationFailed(f"Authentication failed during authentication due to invalid credentials "
                                       f"with SASL mechanism {self.mechanism}")
        self._state = 2
        server_signature = hmac.digest(cred.server_key, auth_message, self.hash_name)
        return b"v=" + base64.b64encode(server_signature)

    @property
    def complete(self) -> bool:
        return self._state == 2


class Session:
    """A connection on a SASL listener until it has authenticated: which requests it may send next.

    Kafka's order: ApiVersions (optional) and SaslHandshake; after a v1 handshake, SaslAuthenticate
    requests carry the tokens; after a v0 handshake the tokens come as bare size-prefixed frames (`raw`).
    Anything else closes the connection."""

    __slots__ = ("credentials", "mechanisms", "max_receive", "name", "mechanism", "raw", "expects", "tokens")

    def __init__(self, credentials: Credentials, mechanisms: tuple[str, ...], max_receive: int, tokens=None):
        self.credentials = credentials
        self.mechanisms = mechanisms
        self.max_receive = max_receive
        self.tokens = tokens  # broker.security.oauthbearer.Validator when OAUTHBEARER is enabled
        self.name: str | None = None
        self.mechanism: Plain | Scram | None = None
        self.raw = False
        self.expects = (API_VERSIONS, SASL_HANDSHAKE)

    def handshake(self, name: str, version: int) -> bool:
        """The client's choice of mechanism; False when it is not offered (the connection is then closed)."""
        if name not in self.mechanisms:
            return False
        self.name = name
        if name == "PLAIN":
            self.mechanism = Plain(self.credentials)
        elif name == OAUTHBEARER:
            from broker.security.oauthbearer import OAuthBearer

            self.mechanism = OAuthBearer(self.tokens)
        else:
            self.mechanism = Scram(self.credentials, name)
        self.raw = version == 0
        self.expects = () if self.raw else (SASL_AUTHENTICATE,)
        return True

    def expires(self) -> float | None:
        """When the credential the client logged in with ends (a token's expiry, seconds since the epoch),
        or None for a password."""
        return getattr(self.mechanism, "expires", None)

    def step(self, token: bytes) -> tuple[bytes, str | None]:
        """The server's answer to one token, and the authenticated user once the mechanism is satisfied.
        Raises `AuthenticationFailed`, after which the session admits nothing more: the refusal is
        answered later (a delay against guessing) and any request meanwhile closes the connection."""
        mech = self.mechanism
        try:
            out = mech.step(token)
        except AuthenticationFailed:
            self.expects, self.raw = (), False
            raise
        done = isinstance(mech, Plain) or mech.complete
        return out, (mech.principal if done else None)


class ScramClient:
    """RFC 5802's client: client-first, then client-final from the server-first, then the server's proof."""

    def __init__(self, mechanism: str, user: str, password: str, client_nonce: str | None = None):
        self.hash_name = SCRAM_HASHES[mechanism]
        self.password = password
        self.nonce = client_nonce or base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={self.nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = bytes(server_first).decode()
        attrs = dict(_attributes(text))
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce) or not iterations.isdigit():
            raise AuthenticationFailed("Invalid SCRAM server-first message")
        salted = hashlib.pbkdf2_hmac(self.hash_name, self.password.encode(), base64.b64decode(salt),
                                     int(iterations))
        client_key = hmac.digest(salted, b"Client Key", self.hash_name)
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self.hash_name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = hmac.digest(hmac.digest(salted, b"Server Key", self.hash_name), auth_message,
                                             self.hash_name)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        if bytes(server_final) != b"v=" + base64.b64encode(self._server_signature):
            raise AuthenticationFailed("SCRAM server-final message does not prove the server knows the password")


def client_exchange(mechanism: str, user: str, password: str, send) -> None:
    """Log in as `user`: `send(token) -> answer` carries each token to the broker (a SaslAuthenticate
    round trip). Raises `AuthenticationFailed` when the broker's answers do not check out. For OAUTHBEARER
    `password` is the token (`user` is unused: the token names its principal)."""
    if mechanism == "PLAIN":
        send(f"\0{user}\0{password}".encode())
        return
    if mechanism == OAUTHBEARER:
        if send(f"n,,\x01auth=Bearer {password}\x01\x01".encode()):  # the broker's error: acknowledge it,
            send(b"\x01")  # and it refuses the login (send raises)
            raise AuthenticationFailed("the broker refused the token")
        return
    client = ScramClient(mechanism, user, password)
    server_first = send(client.first())
    client.verify(send(client.final(server_first)))
