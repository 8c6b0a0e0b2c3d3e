"""Serving the sandbox: in the foreground (``autobiz sandbox``) or on a background thread
(tests and the demo, which need a real socket but not a second process)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from autobiz.settings import Settings
from sandbox.app import build_app


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run until interrupted."""
    uvicorn.run(
        build_app(settings),
        host=host or settings.sandbox.host,
        port=port if port is not None else settings.sandbox.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=2,
    )


class ServerThread:
    """Any ASGI app served by uvicorn on a daemon thread; ``port=0`` picks a free port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        port: int = sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
