"""JSON Web Tokens and JWKS documents for OAUTHBEARER tests, made with `cryptography` (what an identity
provider would issue)."""

from __future__ import annotations

import base64
import json
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(doc: dict) -> str:
    return b64(json.dumps(doc, separators=(",", ":")).encode())


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def claims(sub: str = "alice", lifetime_s: float = 3600, **more) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + lifetime_s, **more}


def unsecured(doc: dict) -> str:
    return f"{_json({'alg': 'none'})}.{_json(doc)}."


def signed(doc: dict, key, kid: str = "k1", alg: str | None = None) -> str:
    alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    head = f"{_json({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{_json(doc)}".encode()
    digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]()
    if alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(head, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif alg.startswith("PS"):
        sig = key.sign(head, padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH), digest)
    else:
        sig = key.sign(head, padding.PKCS1v15(), digest)
    return f"{head.decode()}.{b64(sig)}"


def jwk(key, kid: str = "k1") -> dict:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
                "e": b64(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}
    n = pub.public_numbers()
    size = (pub.curve.key_size + 7) // 8
    return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
            "x": b64(n.x.to_bytes(size, "big")), "y": b64(n.y.to_bytes(size, "big"))}


def jwks(*keys_and_kids) -> dict:
    return {"keys": [jwk(k, kid) for k, kid in keys_and_kids]}


def client_first(token: str, authzid: str | None = None, **extensions) -> bytes:
    gs2 = f"n,a={authzid}," if authzid else "n,,"
    pairs = "".join(f"{k}={v}\x01" for k, v in extensions.items())
    return f"{gs2}\x01auth=Bearer {token}\x01{pairs}\x01".encode()


def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
