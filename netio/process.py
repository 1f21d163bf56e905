"""Entry point of a forked network worker: warm the kernels, build the handler context, serve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from broker.config import BrokerConfig
from broker.metadata import MetadataView


@dataclass
class NetContext:
    """What request handlers in a network worker may use."""

    config: BrokerConfig
    metadata: MetadataView
    worker_index: int
    auto_create_topics: Callable[[list[str]], dict] | None = None


def run_network_worker(sup, index: int) -> None:
    from broker.api import Dispatcher
    from netio.worker import NetworkWorker

    try:
        import hotpath

        hotpath.warmup()
    except ImportError:
        pass
    cfg = sup.config
    ctx = NetContext(config=cfg, metadata=sup.metadata_view(), worker_index=index)
    socks = [b.sockets[index] for b in sup.bound]
    for b in sup.bound:  # close the other workers' copies so a dead worker's socket really goes away
        for i, s in enumerate(b.sockets):
            if i != index:
                s.close()
    worker = NetworkWorker(index, socks, Dispatcher(ctx), cfg["socket.request.max.bytes"],
                           sndbuf=cfg["socket.send.buffer.bytes"], rcvbuf=cfg["socket.receive.buffer.bytes"])
    sup.notify_ready()
    worker.run()
