"""Options every client command shares (--bootstrap, --format) and the mapping of failures to exit codes.

Exit codes of the client commands: 0 success; 1 the broker answered with an error (the Kafka error name
is printed); 2 bad usage; 4 the broker could not be reached.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from broker.config import SERVED_SASL_MECHANISMS
from tools.client import Client, KafkaError

EXIT_KAFKA_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 4
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

EXIT_CODES_HELP = ("Exit codes: 0 success; 1 the broker answered with an error; 2 bad usage; "
                   "4 the broker could not be reached.")


def client_command(f):
    """Adds --bootstrap, --format and the TLS and SASL options, opens a Client, maps KafkaError to an exit
    code."""

    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                  help="Output as aligned text or as JSON.")
    @click.option("--bootstrap", "-b", envvar="HPBROKER_BOOTSTRAP", default=DEFAULT_BOOTSTRAP, show_default=True,
                  help="Broker address(es) host:port[,host:port]; env HPBROKER_BOOTSTRAP.")
    @click.option("--sasl-mechanism", envvar="HPBROKER_SASL_MECHANISM",
                  type=click.Choice(SERVED_SASL_MECHANISMS), default=None,
                  help="Log in to a SASL listener with this mechanism; env HPBROKER_SASL_MECHANISM.")
    @click.option("--sasl-oauthbearer-token", envvar="HPBROKER_SASL_OAUTHBEARER_TOKEN", default=None,
                  help="The JWT to log in with (OAUTHBEARER); env HPBROKER_SASL_OAUTHBEARER_TOKEN.")
    @click.option("--sasl-username", envvar="HPBROKER_SASL_USERNAME", default=None,
                  help="SASL user; env HPBROKER_SASL_USERNAME.")
    @click.option("--sasl-password", envvar="HPBROKER_SASL_PASSWORD", default=None,
                  help="SASL password; env HPBROKER_SASL_PASSWORD (keeps it out of the process list).")
    @click.option("--tls", is_flag=True, envvar="HPBROKER_TLS", default=False,
                  help="Connect with TLS (SSL and SASL_SSL listeners); env HPBROKER_TLS=1.")
    @click.option("--ssl-ca", envvar="HPBROKER_SSL_CA", type=click.Path(dir_okay=False), default=None,
                  help="PEM file of the CAs that sign the broker's certificate (default: the system's); implies --tls.")
    @click.option("--ssl-cert", envvar="HPBROKER_SSL_CERT", type=click.Path(dir_okay=False), default=None,
                  help="PEM client certificate (with --ssl-key) for brokers that ask for one; implies --tls.")
    @click.option("--ssl-key", envvar="HPBROKER_SSL_KEY", type=click.Path(dir_okay=False), default=None,
                  help="PEM private key of --ssl-cert.")
    @functools.wraps(f)
    def wrapper(bootstrap, fmt, sasl_mechanism, sasl_oauthbearer_token, sasl_username, sasl_password, tls, ssl_ca,
                ssl_cert, ssl_key, **kwargs):
        context = None
        if tls or ssl_ca or ssl_cert:
            import ssl

            try:
                context = ssl.create_default_context(cafile=ssl_ca)
                if ssl_cert:
                    context.load_cert_chain(ssl_cert, ssl_key)
            except (OSError, ssl.SSLError) as e:
                raise click.UsageError(f"TLS files: {e}") from None
        sasl = None
        if sasl_mechanism == "OAUTHBEARER":
            if not sasl_oauthbearer_token:
                raise click.UsageError("--sasl-mechanism OAUTHBEARER needs --sasl-oauthbearer-token")
            sasl = (sasl_mechanism, "", sasl_oauthbearer_token)
        elif sasl_mechanism is not None:
            if not sasl_username or sasl_password is None:
                raise click.UsageError("--sasl-mechanism needs --sasl-username and --sasl-password")
            sasl = (sasl_mechanism, sasl_username, sasl_password)
        try:
            with Client(bootstrap, sasl=sasl, tls=context) as client:
                return f(client, fmt, **kwargs)
        except KafkaError as e:
            click.echo(f"hpbroker: {e}", err=True)
            sys.exit(EXIT_UNREACHABLE if e.code is None else EXIT_KAFKA_ERROR)

    return wrapper


def emit(fmt: str, data, text: str) -> None:
    """JSON of `data` or the prepared text."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False))
    elif text:
        click.echo(text)


def parse_pairs(items: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out.append((k, v))
    return out
