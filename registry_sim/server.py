"""Run the simulator on a real loopback socket (threaded werkzeug server), in a thread or in front."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


@dataclass
class ServerHandle:
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class QuietHandler(WSGIRequestHandler):
    """No access log line per request: at thousands of records a second it would drown the real log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> ServerHandle:
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler if quiet else None)
    thread = threading.Thread(target=server.serve_forever, name="registry-sim", daemon=True)
    thread.start()
    return ServerHandle(server, thread)
