"""TLS for the SSL and SASL_SSL listeners: the server context built from the broker's ssl.* settings.

A TLS connection cannot hand file ranges to `os.sendfile` (the kernel would send them unencrypted), so its
responses are read into memory and encrypted (`Connection._flush_tls`); plaintext listeners keep the
zero-copy path.
"""

from __future__ import annotations

import ssl

TLS_LISTENERS = ("SSL", "SASL_SSL")
SASL_LISTENERS = ("SASL_PLAINTEXT", "SASL_SSL")

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
