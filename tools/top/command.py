"""The `hpbroker top` command."""

from __future__ import annotations

import click

from tools.top.collector import DEFAULT_URL


@click.command()
@click.option("--metrics", "url", default=DEFAULT_URL, show_default=True, metavar="URL",
              help="The broker's metrics endpoint (its metrics.listener); host:port is enough.")
@click.option("--frames", type=int, default=None, hidden=True)
def top(url: str, frames: int | None) -> None:
    """Live dashboard of a running broker: throughput, workers, partitions, groups, latency.

    It reads the broker's Prometheus endpoint once a second; the broker needs metrics.listener set
    (the default 127.0.0.1:9404 is what this command reads by default). Press q or Ctrl-C to quit.
    """
    from tools.top.app import run

    raise SystemExit(run(url, frames=frames))
