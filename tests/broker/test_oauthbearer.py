"""OAUTHBEARER, sans-IO: the client's first message, tokens as Kafka's validators judge them (unsecured
without a JWKS, signed with one), and the RFC 7628 error exchange."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.security.oauthbearer import Jwks, OAuthBearer, TokenRefused, Validator, parse_response, public_keys
from broker.security.sasl import AuthenticationFailed
from tests.broker import oauth_tokens as tok

RSA = tok.rsa_key()
EC = tok.ec_key()
OTHER = tok.rsa_key()


class Keys:
    """A JWKS already fetched."""

    def __init__(self, doc: dict):
        self.keys = public_keys(doc)

    def key(self, kid, alg):
        return self.keys.get(kid)


SIGNED = Validator(Keys(tok.jwks((RSA, "r1"), (EC, "e1"))), audience=("kafka",), issuer="https://idp.example")


def good(**more) -> dict:
    return tok.claims(aud="kafka", iss="https://idp.example", **more)


def test_client_first_message():
    assert parse_response(tok.client_first("abc.def.")) == ("abc.def.", None, {})
    assert parse_response(tok.client_first("a.b.c", authzid="alice", traceId="7")) == ("a.b.c", "alice", {"traceId": "7"})
    for bad in (b"", b"n,,\x01auth=Bearer x\x01", b"y,,\x01auth=Bearer x\x01\x01", b"n,,\x01\x01",
                b"n,,\x01auth=Basic x\x01\x01", b"\xff\xfe"):
        with pytest.raises(TokenRefused):
            parse_response(bad)


def test_unsecured_tokens_without_a_jwks():
    v = Validator()
    principal, exp = v.validate(tok.unsecured(tok.claims("alice")))
    assert principal == "alice" and exp > time.time()
    cases = {
        "expired": tok.unsecured(tok.claims(lifetime_s=-60)),
        "no exp": tok.unsecured({"sub": "alice"}),
        "no sub": tok.unsecured({"exp": time.time() + 60}),
        "iat ahead": tok.unsecured(tok.claims(iat=int(time.time()) + 3600)),
        "signed": tok.signed(tok.claims(), RSA),
        "two parts": "a.b",
        "not json": "eyJh.eyJh.",
    }
    for what, t in cases.items():
        with pytest.raises(TokenRefused):
            v.validate(t)
            pytest.fail(what)


def test_clock_skew_is_allowed():
    assert Validator(skew_s=30).validate(tok.unsecured(tok.claims(lifetime_s=-10)))[0] == "alice"
    with pytest.raises(TokenRefused):
        Validator(skew_s=0).validate(tok.unsecured(tok.claims(lifetime_s=-10)))


@pytest.mark.parametrize("key,kid,alg", [(RSA, "r1", "RS256"), (RSA, "r1", "RS512"), (RSA, "r1", "PS256"),
                                         (EC, "e1", "ES256")])
def test_signed_tokens_verify_with_the_jwks_key(key, kid, alg):
    assert SIGNED.validate(tok.signed(good(sub="svc-orders"), key, kid, alg))[0] == "svc-orders"


def test_signed_tokens_are_refused_when_anything_is_off():
    cases = {
        "unsecured": tok.unsecured(good()),
        "other key": tok.signed(good(), OTHER, "r1"),
        "unknown kid": tok.signed(good(), RSA, "nope"),
        "wrong audience": tok.signed(tok.claims(aud="other", iss="https://idp.example"), RSA, "r1"),
        "wrong issuer": tok.signed(tok.claims(aud="kafka", iss="https://evil.example"), RSA, "r1"),
        "expired": tok.signed(good(lifetime_s=-3600), RSA, "r1"),
        "ec key, rsa alg": tok.signed(good(), EC, "e1").replace(tok._json({"alg": "ES256", "typ": "JWT", "kid": "e1"}),
                                                                tok._json({"alg": "RS256", "typ": "JWT", "kid": "e1"})),
    }
    payload = tok.signed(good(sub="alice"), RSA, "r1").split(".")
    forged = json.loads(tok.base64.urlsafe_b64decode(payload[1] + "==")) | {"sub": "admin"}
    cases["payload changed"] = f"{payload[0]}.{tok._json(forged)}.{payload[2]}"
    for what, t in cases.items():
        try:
            SIGNED.validate(t)
        except TokenRefused:
            continue
        pytest.fail(f"accepted: {what}")


def test_audience_list_and_no_audience_check():
    assert SIGNED.validate(tok.signed(tok.claims(aud=["x", "kafka"], iss="https://idp.example"), RSA, "r1"))[0]
    plain = Validator(Keys(tok.jwks((RSA, "r1"))))
    assert plain.validate(tok.signed(tok.claims(), RSA, "r1"))[0] == "alice"


def test_the_error_exchange():
    m = OAuthBearer(Validator())
    assert json.loads(m.step(tok.client_first(tok.unsecured(tok.claims(lifetime_s=-600))))) == {"status": "invalid_token"}
    assert not m.complete
    with pytest.raises(AuthenticationFailed, match="expired"):
        m.step(b"\x01")
    m = OAuthBearer(Validator())
    assert m.step(tok.client_first(tok.unsecured(tok.claims("bob")))) == b""
    assert m.complete and m.principal == "bob" and m.expires > time.time()
    m = OAuthBearer(Validator())
    m.step(tok.client_first(tok.unsecured(tok.claims("bob")), authzid="alice"))
    assert not m.complete
    with pytest.raises(AuthenticationFailed):
        OAuthBearer(Validator()).step(b"not a client first message")


def test_jwks_from_a_file_and_a_key_not_seen_yet(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(tok.jwks((RSA, "r1"))))
    keys = Jwks(path.as_uri(), refresh_s=3600, min_refresh_s=0.0)
    keys.start()
    try:
        v = Validator(keys)
        assert v.validate(tok.signed(tok.claims(), RSA, "r1"))[0] == "alice"
        path.write_text(json.dumps(tok.jwks((RSA, "r1"), (OTHER, "r2"))))  # the provider rotates keys
        with pytest.raises(TokenRefused):
            v.validate(tok.signed(tok.claims(), OTHER, "r2"))  # unknown yet: refused, and a fetch is asked for
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                assert v.validate(tok.signed(tok.claims(), OTHER, "r2"))[0] == "alice"
                break
            except TokenRefused:
                time.sleep(0.05)
        else:
            pytest.fail("the rotated key was never fetched")
    finally:
        keys.stop()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_answered_or_refused(data):
    m = OAuthBearer(SIGNED)
    try:
        out = m.step(data)
    except AuthenticationFailed:
        return
    assert not m.complete and json.loads(out) == {"status": "invalid_token"}
