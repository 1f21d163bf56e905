"""`hpbroker demo`: a broker in a temporary directory, a moderate load against it, and the dashboard.

Everything it starts is its own child process, and everything it creates is under one temporary
directory: quitting the dashboard (q or Ctrl-C) stops the load and the broker and removes the directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import click

TOPIC = "demo"
PARTITIONS = 4


def load(bootstrap: str, rate: int, size: int) -> None:
    """Produce about `rate` records/s of `size` bytes to the demo topic and consume them in a group."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].exception(timeout=10)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "none"})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-consumers",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    payload = os.urandom(size // 2).hex().encode()[:size]
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    n = 0
    next_t = time.monotonic()
    while True:
        for _ in range(per_tick):
            try:
                producer.produce(TOPIC, payload, key=str(n % 64).encode())
            except BufferError:
                producer.poll(0.01)
            n += 1
        producer.poll(0)
        for m in consumer.consume(num_messages=1000, timeout=0):
            pass
        next_t += tick
        time.sleep(max(0.0, next_t - time.monotonic()))


@click.command()
@click.option("--rate", default=5000, show_default=True, help="Records per second the demo load produces.")
@click.option("--size", default=512, show_default=True, help="Bytes per record.")
@click.option("--network-threads", default=2, show_default=True)
@click.option("--io-threads", default=2, show_default=True)
def demo(rate: int, size: int, network_threads: int, io_threads: int) -> None:
    """Start a throwaway broker with a moderate load and open the dashboard.

    A broker runs in a temporary directory on a free port, a producer and a consumer group drive it,
    and `hpbroker top` shows what happens. q or Ctrl-C stops everything and removes what it created.
    """
    from tools.testing import BrokerProcess
    from tools.top.app import run

    tmp = tempfile.TemporaryDirectory(prefix="hpbroker-demo-")
    click.echo(f"starting a broker in {tmp.name} ...")
    broker = BrokerProcess(data_dir=tmp.name, settings={"metrics.listener": "127.0.0.1:0"},
                           network_threads=network_threads, io_threads=io_threads)
    loader = None
    try:
        broker.start()
        click.echo(f"broker at {broker.bootstrap}, metrics at {broker.metrics_url}; starting the load ...")
        loader = subprocess.Popen([sys.executable, "-m", "tools.demo", broker.bootstrap, str(rate), str(size)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        run(broker.metrics_url)
    except KeyboardInterrupt:
        pass
    finally:
        if loader is not None:
            loader.send_signal(signal.SIGTERM)
            try:
                loader.wait(10)
            except subprocess.TimeoutExpired:
                loader.kill()
                loader.wait()
        broker.stop()
        tmp.cleanup()
        click.echo("demo stopped; its broker and data are gone")


if __name__ == "__main__":
    load(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
