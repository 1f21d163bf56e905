"""SASL mechanisms (broker/security/sasl.py) against the RFCs' own examples and an independent client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.security.sasl import (
    API_VERSIONS, SASL_AUTHENTICATE, SASL_HANDSHAKE, AuthenticationFailed, Credentials, Plain, Scram, ScramCredential,
    Session,
)


def rfc7677_credentials() -> Credentials:
    """RFC 7677 section 3: user "user", password "pencil", the salt and iteration count of its example."""
    creds = Credentials({"user": "pencil"})
    creds._scram[("SCRAM-SHA-256", "user")] = ScramCredential(
        "sha256", "pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    return creds


def test_scram_sha256_matches_rfc7677_example():
    server = Scram(rfc7677_credentials(), "SCRAM-SHA-256", server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = server.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.complete and server.principal == "user"


def test_scram_rfc7677_example_with_a_wrong_proof_is_refused():
    server = Scram(rfc7677_credentials(), "SCRAM-SHA-256", server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    proof = bytearray(base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
    proof[0] ^= 1
    with pytest.raises(AuthenticationFailed, match="invalid credentials"):
        server.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=" + base64.b64encode(proof))
    assert not server.complete


def scram_client(mechanism: str, user: str, password: str, server, nonce_prefix: bool = False) -> bytes:
    """RFC 5802's client side, written from the RFC: the exchange against `server`; its server-final."""
    name = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    cnonce = base64.b64encode(os.urandom(12)).decode()
    bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={cnonce}"
    server_first = server.step(f"n,,{bare}".encode()).decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce)
    salted = hashlib.pbkdf2_hmac(name, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", name).digest()
    stored = hashlib.new(name, client_key).digest()
    nonce = (cnonce if nonce_prefix else "") + attrs["r"]
    without_proof = f"c=biws,r={nonce}"
    auth = f"{bare},{server_first},{without_proof}".encode()
    proof = bytes(a ^ b for a, b in zip(client_key, hmac.new(stored, auth, name).digest()))
    final = server.step(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    server_key = hmac.new(salted, b"Server Key", name).digest()
    assert final == b"v=" + base64.b64encode(hmac.new(server_key, auth, name).digest())
    return final


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_exchange_with_an_independent_client(mechanism):
    creds = Credentials({"al,i=ce": "s3cr:et"})
    server = Scram(creds, mechanism)
    scram_client(mechanism, "al,i=ce", "s3cr:et", server)
    assert server.complete and server.principal == "al,i=ce"


def test_scram_accepts_librdkafka_1x_nonce_with_the_client_part_twice():
    server = Scram(Credentials({"alice": "pw"}), "SCRAM-SHA-256")
    scram_client("SCRAM-SHA-256", "alice", "pw", server, nonce_prefix=True)
    assert server.complete


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_refuses_wrong_password_and_unknown_user(mechanism):
    with pytest.raises(AuthenticationFailed, match="invalid credentials"):
        scram_client(mechanism, "alice", "wrong", Scram(Credentials({"alice": "pw"}), mechanism))
    with pytest.raises(AuthenticationFailed, match="Invalid user credentials"):
        Scram(Credentials({"alice": "pw"}), mechanism).step(b"n,,n=mallory,r=abc")


@pytest.mark.parametrize("message", [b"p=tls-unique,,n=alice,r=abc", b"n,,r=abc,n=alice", b"n,,m=ext,n=alice,r=a",
                                     b"n,a=bob,n=alice,r=abc", b"n,,n=al=ice,r=abc", b"", b"\xff\xfe"])
def test_scram_refuses_malformed_client_first(message):
    with pytest.raises(AuthenticationFailed):
        Scram(Credentials({"alice": "pw", "al=ice": "pw"}), "SCRAM-SHA-256").step(message)


def test_scram_client_final_must_carry_the_servers_nonce_and_binding():
    server = Scram(Credentials({"alice": "pw"}), "SCRAM-SHA-256")
    server.step(b"n,,n=alice,r=abc")
    with pytest.raises(AuthenticationFailed, match="nonce"):
        server.step(b"c=biws,r=abcother,p=AAAA")
    server = Scram(Credentials({"alice": "pw"}), "SCRAM-SHA-256")
    first = server.step(b"n,,n=alice,r=abc").decode()
    with pytest.raises(AuthenticationFailed, match="channel binding"):
        server.step(f"c=eSws,{first.split(',')[0]},p=AAAA".encode())


def test_plain():
    creds = Credentials({"alice": "pw"})
    assert Plain(creds).step(b"\0alice\0pw") == b""
    p = Plain(creds)
    p.step(b"alice\0alice\0pw")
    assert p.principal == "alice"
    for token, reason in [(b"\0alice\0nope", "Invalid username or password"),
                          (b"\0bob\0pw", "Invalid username or password"),
                          (b"bob\0alice\0pw", "authorization id"),
                          (b"alice\0pw", "expected 3 tokens"), (b"\0\0pw", "not specified")]:
        with pytest.raises(AuthenticationFailed, match=reason):
            Plain(creds).step(token)


def test_session_admits_requests_in_kafkas_order():
    s = Session(Credentials({"alice": "pw"}), ("PLAIN", "SCRAM-SHA-256"), 1024)
    assert s.expects == (API_VERSIONS, SASL_HANDSHAKE)
    assert not s.handshake("GSSAPI", 1)
    assert s.handshake("PLAIN", 1) and not s.raw and s.expects == (SASL_AUTHENTICATE,)
    assert s.step(b"\0alice\0pw") == (b"", "alice")
    refused = Session(Credentials({"alice": "pw"}), ("PLAIN",), 1024)
    refused.handshake("PLAIN", 0)
    with pytest.raises(AuthenticationFailed):
        refused.step(b"\0alice\0guess")
    assert refused.expects == () and not refused.raw  # no second guess on this connection
    v0 = Session(Credentials({"alice": "pw"}), ("PLAIN", "SCRAM-SHA-256"), 1024)
    assert v0.handshake("SCRAM-SHA-256", 0) and v0.raw and v0.expects == ()
    token, user = v0.step(b"n,,n=alice,r=xyz")
    assert token.startswith(b"r=xyz") and user is None


def test_credentials_from_config_split_at_the_first_colon():
    creds = Credentials.from_config(("alice:pa:ss", "bob:x"))
    assert creds.check_password("alice", "pa:ss") and creds.check_password("bob", "x")
    assert not creds.check_password("alice", "pa") and not creds.check_password("carol", "")


@settings(max_examples=300, deadline=None)
@given(mechanism=st.sampled_from(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
       tokens=st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_any_token_is_answered_or_refused(mechanism, tokens):
    """Whatever a client sends, a mechanism answers or raises AuthenticationFailed, never anything else."""
    s = Session(Credentials({"alice": "pw"}), ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), 1024)
    s.handshake(mechanism, 1)
    try:
        for t in tokens:
            s.step(t)
    except AuthenticationFailed:
        pass


def test_scram_client_matches_rfc7677_example():
    from broker.security.sasl import ScramClient

    c = ScramClient("SCRAM-SHA-256", "user", "pencil", client_nonce="rOprNGfwEbeRWgbNEkqO")
    assert c.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = c.final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(AuthenticationFailed, match="does not prove"):
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=")
    with pytest.raises(AuthenticationFailed, match="server-first"):
        ScramClient("SCRAM-SHA-256", "user", "pencil", client_nonce="abc").final(b"r=xyz,s=AAAA,i=4096")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_client_exchange_against_the_server(mechanism):
    from broker.security.sasl import client_exchange

    s = Session(Credentials({"alice": "pw"}), ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), 1024)
    s.handshake(mechanism, 1)
    users = []

    def send(token):
        answer, user = s.step(token)
        users.append(user)
        return answer

    client_exchange(mechanism, "alice", "pw", send)
    assert users[-1] == "alice"
    s = Session(Credentials({"alice": "pw"}), ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), 1024)
    s.handshake(mechanism, 1)
    with pytest.raises(AuthenticationFailed):
        client_exchange(mechanism, "alice", "wrong", lambda t: s.step(t)[0])
