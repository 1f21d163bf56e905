"""How a broker connects to brokers (replica fetchers to leaders, the supervisor to its own listener for the
group lag metrics): through `inter.broker.listener.name` (default: the first listener), with TLS when that
listener has it and logged in as `inter.broker.sasl.user` when it asks for SASL, as a client would.
"""

from __future__ import annotations

import socket

from broker.config import SASL_LISTENERS, TLS_LISTENERS, sasl_passwords


class InterBroker:
    def __init__(self, cfg):
        self.listener = cfg["inter.broker.listener.name"] or cfg.listeners[0].name
        self.tls = None
        if self.listener in TLS_LISTENERS:
            from netio.tls import client_context

            self.tls = client_context(cfg)
        self.sasl = None
        user = cfg["inter.broker.sasl.user"]
        if self.listener in SASL_LISTENERS and user:  # a single node may go without (no lag metrics then)
            self.sasl = (cfg["sasl.mechanism.inter.broker.protocol"], user, sasl_passwords(cfg["sasl.users"])[user])

    def connect(self, host: str, port: int, timeout: float):
        """A `tools.client.Connection` to a broker's inter-broker listener, TLS and login done. Raises
        tools.client.KafkaError."""
        from tools.client import Connection

        conn = Connection(host, port, timeout, sasl=self.sasl, tls=self.tls)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn
