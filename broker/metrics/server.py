"""The /metrics HTTP endpoint: a daemon thread in the supervisor, off its control loop and the data path."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from broker.logfmt import Log

log = Log("hpbroker.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    def __init__(self, host: str, port: int, render):
        self._render = render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805 - the server object is `self` of the outer class
                if handler.path.split("?")[0] not in ("/metrics", "/"):
                    handler.send_error(404)
                    return
                try:
                    body = render().encode()
                except Exception as e:
                    log.error("metrics render failed", exc_info=True, error=repr(e))
                    handler.send_error(500)
                    return
                handler.send_response(200)
                handler.send_header("Content-Type", CONTENT_TYPE)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805
                pass

        server = _ThreadingHTTPServer6 if ":" in host else ThreadingHTTPServer
        self.httpd = server((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
