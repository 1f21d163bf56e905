"""The `hpbroker top` command."""

from __future__ import annotations

import click

from tools.top.collector import DEFAULT_URL


@click.command()
@click.option("--metrics", "url", default=None, metavar="URL",
              help=f"The broker's metrics endpoint; host:port is enough.  [default: {DEFAULT_URL}, or the "
                   "metrics.listener of --config]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The broker's server.properties: read its metrics.listener.")
@click.option("--frames", type=int, default=None, hidden=True)
def top(url: str | None, config_path: str | None, frames: int | None) -> None:
    """Live dashboard of a running broker: throughput, workers, partitions, groups, latency.

    It reads the broker's Prometheus endpoint (metrics.listener) once a second. Press q or Ctrl-C to quit.
    """
    from tools.top.app import run

    if url is None:
        url = DEFAULT_URL
        if config_path is not None:
            from broker.config import ConfigError, hostport, load_config

            try:
                where = load_config(config_path, ()).metrics_listener
            except ConfigError as e:
                raise click.UsageError(f"configuration error: {e}") from None
            if where is None:
                raise click.UsageError(f"{config_path} disables metrics (metrics.listener=none)")
            host = "127.0.0.1" if where[0] in ("0.0.0.0", "") else where[0]
            url = f"http://{hostport(host, where[1])}/metrics"
    raise SystemExit(run(url, frames=frames))
