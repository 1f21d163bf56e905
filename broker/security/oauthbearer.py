"""SASL/OAUTHBEARER (RFC 7628, Kafka's KIP-255 and KIP-768): a client logs in with a JSON Web Token.

The token is checked as Kafka's validators check it:
- with `sasl.oauthbearer.jwks.endpoint.url` set, it must be signed (RS256/384/512, PS256/384/512,
  ES256/384/512) by a key of that JWKS, within its lifetime (give or take
  `sasl.oauthbearer.clock.skew.seconds`), for the expected audience and issuer when those are configured;
- without it, unsecured tokens (alg "none") are accepted, as Kafka's default validator accepts them. That is
  for development only, and the broker says so when it starts.

The principal is the token's `sasl.oauthbearer.sub.claim.name` claim ("sub"). A login lasts until the token
expires when `connections.max.reauth.ms` is set (the client logs in again with a fresh token), as KIP-368
has it. A refused token is answered with RFC 7628's JSON error; the client acknowledges it with a lone
0x01 and the login then fails with SASL_AUTHENTICATION_FAILED, as in Kafka.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.request

from broker.logfmt import Log

log = Log("hpbroker.sasl")

KVSEP = "\x01"
# gs2-header, then key=value pairs each ended by 0x01, then a final 0x01 (RFC 7628 section 3.1)
_RESPONSE = re.compile(r"n,(?:a=(?P<authzid>[^,]*))?,\x01(?P<kvpairs>(?:[A-Za-z]+=[\x21-\x7E \t\r\n]*\x01)*)\x01",
                       re.DOTALL)
_BEARER = re.compile(r"[Bb]earer +(?P<token>[A-Za-z0-9\-._~+/]+=*)")
MAX_TOKEN = 64 * 1024


class TokenRefused(Exception):
    """The token does not authenticate anyone; the text goes into the client's error and the broker log."""


def parse_response(data: bytes) -> tuple[str, str | None, dict[str, str]]:
    """(token, authzid, extensions) of a client's initial response; raises TokenRefused."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise TokenRefused("Invalid OAUTHBEARER client first message: not UTF-8") from None
    m = _RESPONSE.fullmatch(text)
    if m is None:
        raise TokenRefused("Invalid OAUTHBEARER client first message")
    pairs = {}
    for item in m.group("kvpairs").split(KVSEP)[:-1]:
        key, _, value = item.partition("=")
        pairs[key] = value
    auth = pairs.pop("auth", None)
    bearer = _BEARER.fullmatch(auth or "")
    if bearer is None:
        raise TokenRefused("Invalid OAUTHBEARER client first message: no 'auth=Bearer <token>'")
    return bearer.group("token"), m.group("authzid") or None, pairs


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_part(part: str, what: str) -> dict:
    try:
        doc = json.loads(_b64(part))
    except (ValueError, UnicodeDecodeError):
        raise TokenRefused(f"the token's {what} is not base64url JSON") from None
    if not isinstance(doc, dict):
        raise TokenRefused(f"the token's {what} is not a JSON object")
    return doc


class Validator:
    """Checks a token and names its principal; `keys` (a `Jwks`) None accepts unsecured tokens only."""

    def __init__(self, keys=None, audience: tuple[str, ...] = (), issuer: str | None = None,
                 sub_claim: str = "sub", skew_s: int = 30):
        self.keys = keys
        self.audience = tuple(audience)
        self.issuer = issuer
        self.sub_claim = sub_claim
        self.skew_s = skew_s

    def validate(self, token: str, now: float | None = None) -> tuple[str, float]:
        """(principal, expiry in seconds since the epoch); raises TokenRefused."""
        if len(token) > MAX_TOKEN:
            raise TokenRefused("the token is too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRefused("the token is not a JWS (header.payload.signature)")
        header = _json_part(parts[0], "header")
        claims = _json_part(parts[1], "payload")
        alg = header.get("alg")
        if self.keys is None:
            if alg != "none" or parts[2]:
                raise TokenRefused("only unsecured tokens (alg none) are accepted: no JWKS endpoint is configured")
        else:
            if alg == "none" or not isinstance(alg, str):
                raise TokenRefused("the token is not signed")
            try:
                signature = _b64(parts[2])
            except ValueError:
                raise TokenRefused("the token's signature is not base64url") from None
            key = self.keys.key(header.get("kid"), alg)
            if key is None:
                raise TokenRefused(f"no key {header.get('kid')!r} for {alg} in the JWKS")
            if not verify(key, alg, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
                raise TokenRefused("the token's signature does not verify")
        return self._check_claims(claims, time.time() if now is None else now)

    def _check_claims(self, claims: dict, now: float) -> tuple[str, float]:
        skew = self.skew_s
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise TokenRefused("the token has no expiration time (exp)")
        if exp + skew <= now:
            raise TokenRefused("the token has expired")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, (int, float)) or value - skew > now):
                raise TokenRefused(f"the token's {name} is in the future")
        sub = claims.get(self.sub_claim)
        if not isinstance(sub, str) or not sub.strip():
            raise TokenRefused(f"the token has no {self.sub_claim} claim naming its principal")
        if self.keys is not None:
            if self.audience:
                aud = claims.get("aud")
                auds = aud if isinstance(aud, list) else [aud]
                if not any(a in self.audience for a in auds):
                    raise TokenRefused("the token is not for this audience")
            if self.issuer is not None and claims.get("iss") != self.issuer:
                raise TokenRefused("the token is not from the expected issuer")
        return sub, float(exp)


def verify(key, alg: str, signed: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}.get(alg[2:])
    if digest is None:
        return False
    try:
        if alg[:2] in ("RS", "PS") and isinstance(key, rsa.RSAPublicKey):
            pad = padding.PKCS1v15() if alg[0] == "R" else padding.PSS(padding.MGF1(digest()),
                                                                     padding.PSS.DIGEST_LENGTH)
            key.verify(signature, signed, pad, digest())
            return True
        if alg[:2] == "ES" and isinstance(key, ec.EllipticCurvePublicKey):
            half = len(signature) // 2
            if len(signature) % 2 or half != (key.curve.key_size + 7) // 8:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                       int.from_bytes(signature[half:], "big"))
            key.verify(der, signed, ec.ECDSA(digest()))
            return True
    except InvalidSignature:
        return False
    return False


def public_keys(doc: dict) -> dict[str | None, object]:
    """{kid: public key} of a JWKS document's RSA and EC signing keys (others are skipped)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    curves = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
    out: dict = {}
    for jwk in doc.get("keys", ()):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        try:
            if jwk.get("kty") == "RSA":
                key = rsa.RSAPublicNumbers(int.from_bytes(_b64(jwk["e"]), "big"),
                                           int.from_bytes(_b64(jwk["n"]), "big")).public_key()
            elif jwk.get("kty") == "EC" and jwk.get("crv") in curves:
                key = ec.EllipticCurvePublicNumbers(int.from_bytes(_b64(jwk["x"]), "big"),
                                                    int.from_bytes(_b64(jwk["y"]), "big"),
                                                    curves[jwk["crv"]]()).public_key()
            else:
                continue
        except (KeyError, ValueError, TypeError):
            continue
        out[jwk.get("kid")] = key
    return out


class Jwks:
    """The keys of a JWKS endpoint (an http(s): or file: URL), fetched when the network worker starts and
    every `refresh_s` after on a thread of its own, so a login never waits for the endpoint (every
    `min_refresh_s` while no key could be read). A token naming a key not seen yet asks for
    an early fetch (at most one every `min_refresh_s`): keys rotate, and the new one should not wait an hour."""

    def __init__(self, url: str, refresh_s: float = 3600.0, min_refresh_s: float = 10.0, timeout_s: float = 10.0):
        self.url = url
        self.refresh_s = refresh_s
        self.min_refresh_s = min_refresh_s
        self.timeout_s = timeout_s
        self._keys: dict = {}
        self._fetched = 0.0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Fetch now (raises OSError or ValueError when the endpoint cannot be read or parsed)."""
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as r:
            doc = json.loads(r.read(4 << 20))
        keys = public_keys(doc)
        self._keys = keys
        self._fetched = time.monotonic()

    def start(self) -> None:
        try:
            self.load()
        except (OSError, ValueError) as e:
            log.error("jwks endpoint unreadable", url=self.url, error=repr(e))
        self._thread = threading.Thread(target=self._run, name="jwks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.refresh_s if self._keys else self.min_refresh_s)  # none yet: keep trying
            self._wake.clear()
            if self._stop:
                return
            try:
                self.load()
            except (OSError, ValueError) as e:
                log.warning("jwks refresh failed", url=self.url, error=repr(e))

    def key(self, kid, alg: str):
        keys = self._keys
        key = keys.get(kid) if kid is not None else (next(iter(keys.values())) if len(keys) == 1 else None)
        if key is None and time.monotonic() - self._fetched >= self.min_refresh_s:
            self._fetched = time.monotonic()
            self._wake.set()
        return key

    def stop(self) -> None:
        self._stop = True
        self._wake.set()


class OAuthBearer:
    """The server side of one login: the client's response in, nothing (success) or RFC 7628's error out."""

    def __init__(self, validator: Validator):
        self.validator = validator
        self.principal: str | None = None
        self.expires: float | None = None  # the token's exp, seconds since the epoch
        self.complete = False
        self._refused: str | None = None

    def step(self, token: bytes) -> bytes:
        from broker.security.sasl import AuthenticationFailed

        if self._refused is not None:  # the client's 0x01 after our error: the login fails now
            raise AuthenticationFailed(f"Authentication failed: {self._refused}")
        try:
            jwt, authzid, _extensions = parse_response(token)
        except TokenRefused as e:  # not a client first message at all: no error exchange, as in Kafka
            raise AuthenticationFailed(str(e)) from None
        try:
            principal, expires = self.validator.validate(jwt)
            if authzid is not None and authzid != principal:
                raise TokenRefused(f"authorization id {authzid!r} is not the token's principal")
        except TokenRefused as e:
            self._refused = str(e)
            return json.dumps({"status": "invalid_token"}, separators=(",", ":")).encode()
        self.principal, self.expires = principal, expires
        self.complete = True
        return b""
