"""`hpbroker demo`: a broker in a temporary directory, a moderate load against it, and the dashboard.

The load is `hpbroker perf e2e` (produce at a fixed rate and consume) plus a consumer group reading the
same topic, so every panel of the dashboard has something to show.

Everything it starts is its own child process, and everything it creates is under one temporary
directory: quitting the dashboard (q or Ctrl-C) stops the load and the broker and removes the directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import click

TOPIC = "demo"
PARTITIONS = 4


def perf_load(bootstrap: str, rate: int, size: int) -> list[str]:
    """`hpbroker perf e2e`: produce at `rate` records/s and consume them, for an hour at most."""
    return [sys.executable, "-m", "tools.cli", "perf", "e2e", "--bootstrap", bootstrap, "--topic", TOPIC,
            "--partitions", str(PARTITIONS), "--rate", str(rate), "--record-size", str(size),
            "--num-records", str(rate * 3600), "--time-limit", "3600"]


def group_reader(bootstrap: str) -> None:
    """A consumer group reading the demo topic, so the dashboard has a group and its lag to show."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-readers",
                         "auto.offset.reset": "earliest", "auto.commit.interval.ms": 1000})
    consumer.subscribe([TOPIC])
    while True:
        consumer.consume(num_messages=500, timeout=0.5)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--rate", default=5000, show_default=True, help="Records per second the demo load produces.")
@click.option("--size", default=512, show_default=True, help="Bytes per record.")
@click.option("--network-threads", default=2, show_default=True)
@click.option("--io-threads", default=2, show_default=True)
def demo(rate: int, size: int, network_threads: int, io_threads: int) -> None:
    """Start a throwaway broker with a moderate load and open the dashboard.

    A broker runs in a temporary directory on a free port, `hpbroker perf e2e` produces and consumes
    at --rate, a consumer group reads along, and `hpbroker top` shows what happens. q or Ctrl-C stops
    everything and removes what it created.
    """
    from tools.testing import BrokerProcess
    from tools.top.app import run

    # A closed terminal (SIGHUP) or a kill (SIGTERM) stops the demo the way q does, so the broker and the
    # load it started do not outlive it.
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    tmp = tempfile.TemporaryDirectory(prefix="hpbroker-demo-")
    click.echo(f"starting a broker in {tmp.name} ...")
    broker = BrokerProcess(data_dir=tmp.name, settings={"metrics.listener": "127.0.0.1:0"},
                           network_threads=network_threads, io_threads=io_threads)
    loaders: list[subprocess.Popen] = []
    try:
        broker.start()
        click.echo(f"broker at {broker.bootstrap}, metrics at {broker.metrics_url}; starting the load ...")
        for cmd in (perf_load(broker.bootstrap, rate, size), [sys.executable, "-m", "tools.demo", broker.bootstrap]):
            loaders.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True))
        run(broker.metrics_url)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in loaders:
            proc.send_signal(signal.SIGTERM)
        for proc in loaders:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        broker.stop()
        tmp.cleanup()
        click.echo("demo stopped; its broker and data are gone")


if __name__ == "__main__":
    group_reader(sys.argv[1])
