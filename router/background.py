"""Serve an ASGI app with uvicorn from a daemon thread: the embedded simulator, tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

import uvicorn

from router.logs import BACKGROUND_THREAD_PREFIX

_STARTUP_POLL_SECONDS = 0.005
T = TypeVar("T")


class BackgroundServer:
    """``start()`` returns once connections are accepted; port 0 picks a free port; other options go to uvicorn."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "server",
        startup_timeout: float = 60.0,
        graceful_shutdown: float = 1.0,
        **uvicorn_options: Any,
    ) -> None:
        self.app = app
        self.name = name
        self._startup_timeout = startup_timeout
        self._graceful_shutdown = graceful_shutdown
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,
            # A server in a thread must leave the process's logging alone: uvicorn's defaults would replace the
            # host's handlers on the shared "uvicorn" loggers and raise their level (the gateway's own uvicorn
            # then never says "Application startup complete"). Its info chatter is filtered by thread name.
            log_config=None,
            log_level=None,
            lifespan="on",
            timeout_graceful_shutdown=int(max(1, graceful_shutdown)),
            **uvicorn_options,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"the {self.name} is not running; call start() first")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self._config.host, self._config.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} is already running")
        server = uvicorn.Server(self._config)
        thread = threading.Thread(
            target=self._run, args=(server,), name=f"{BACKGROUND_THREAD_PREFIX}{self.name}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the {self.name} failed to start on {self._config.host}:{self._config.port}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError(f"the {self.name} did not start in time")
            time.sleep(_STARTUP_POLL_SECONDS)
        self._server, self._thread = server, thread
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def _run(self, server: uvicorn.Server) -> None:
        with asyncio.Runner(loop_factory=self._config.get_loop_factory()) as runner:
            runner.run(self._serve(server))

    async def _serve(self, server: uvicorn.Server) -> None:
        self.loop = asyncio.get_running_loop()
        await server.serve()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's own event loop (its services belong to that loop) and wait for it."""
        if self.loop is None:
            raise RuntimeError(f"the {self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=self._graceful_shutdown + 10)
        self._server, self._thread, self.port = None, None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
