"""The `hpbroker` command: noun-verb subcommands, one place that maps failures to exit codes.

Exit codes: 0 success; 1 the broker could not start (port in use, data directory unusable) or a command
failed; 2 bad usage or configuration (unknown key, bad value); 3 a worker kept failing at start.
"""

from __future__ import annotations

import sys

import click

from broker.config import KEYS, BrokerConfig, ConfigError, load_config

EXIT_USAGE = 2


def _config_options(f):
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override one configuration key (repeatable), e.g. --set num.io.threads=4.")(f)
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="A server.properties file with Kafka-style key=value lines.")(f)
    return f


def _load(config_path: str | None, overrides: tuple[str, ...]) -> BrokerConfig:
    try:
        return load_config(config_path, overrides)
    except ConfigError as e:
        click.echo(f"hpbroker: configuration error: {e}", err=True)
        sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpbroker")
def main() -> None:
    """hpbroker: a Kafka-compatible message broker.

    Kafka clients (librdkafka/confluent-kafka, kafka-python, aiokafka, kafkajs, kcat) connect to it
    unchanged. `hpbroker start` runs a broker; the other commands inspect and configure it.
    """


@main.command()
@_config_options
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default="INFO", show_default=True)
def start(config_path, overrides, log_format, log_level):
    """Start a broker in the foreground.

    With no options it listens on 127.0.0.1:9092 and keeps its data in ./hpbroker-data. It prints one
    line containing `ready` once it accepts connections; SIGINT or SIGTERM stop it cleanly.
    """
    from broker.logfmt import setup_logging
    from broker.supervisor import run_broker

    cfg = _load(config_path, overrides)
    setup_logging(log_level, log_format)
    sys.exit(run_broker(cfg))


@main.group()
def config():
    """Inspect the broker configuration."""


@config.command("show")
@_config_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def config_show(config_path, overrides, fmt):
    """Print the effective configuration and where each value came from (default, file, flag)."""
    cfg = _load(config_path, overrides)
    if fmt == "json":
        import json

        click.echo(json.dumps({k.name: {"value": cfg.display_value(k.name), "source": cfg.sources[k.name]}
                               for k in KEYS}, indent=2))
        return
    width = max(len(k.name) for k in KEYS)
    for k in KEYS:
        click.echo(f"{k.name:<{width}}  {cfg.display_value(k.name):<40}  ({cfg.sources[k.name]})")


from tools.commands.acl import acl_group  # noqa: E402
from tools.commands.cluster import cluster  # noqa: E402
from tools.commands.data import consume, produce  # noqa: E402
from tools.commands.group import group  # noqa: E402
from tools.commands.quota import quota  # noqa: E402
from tools.commands.topic import topic  # noqa: E402
from tools.commands.user import user  # noqa: E402

for _command in (topic, group, produce, consume, cluster, user, quota):
    main.add_command(_command)
main.add_command(acl_group, name="acl")
main.add_command(__import__("perf.cli", fromlist=["perf"]).perf)
main.add_command(__import__("tools.top.command", fromlist=["top"]).top)
main.add_command(__import__("tools.demo", fromlist=["demo"]).demo)


if __name__ == "__main__":
    main()
