"""Run the simulator with uvicorn in a background thread, for tests and the gateway's embedded mode."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from router.simulator.app import SimulatorApp, create_simulator_app
from router.simulator.settings import SimulatorSettings

_STARTUP_TIMEOUT_SECONDS = 10.0
_STARTUP_POLL_SECONDS = 0.005
# Long hangs (timeout faults) must not hold a test's teardown for their full length.
_GRACEFUL_SHUTDOWN_SECONDS = 1
# A server bound to every address is reached by local clients through loopback.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class SimulatorServer:
    """A simulator listening on ``host:port`` (port 0 picks a free one) from a daemon thread.

    Use as a context manager, or call ``start()`` (which returns once connections are accepted)
    and ``stop()``. The OpenAI base URL is ``base_url + "/v1"``; the Anthropic one is ``base_url``.
    """

    def __init__(self, settings: SimulatorSettings, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app: SimulatorApp = create_simulator_app(settings)
        self._config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            access_log=False,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the simulator is not running; call start() first")
        host = _WILDCARD_TO_LOOPBACK.get(self._config.host, self._config.host)
        return f"http://[{host}]:{self._port}" if ":" in host else f"http://{host}:{self._port}"

    def start(self) -> SimulatorServer:
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        server = uvicorn.Server(self._config)
        thread = threading.Thread(target=server.run, name="switchboard-simulator", daemon=True)
        thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the simulator failed to start on {self._config.host}:{self._config.port}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError("the simulator did not start in time")
            time.sleep(_STARTUP_POLL_SECONDS)
        self._server, self._thread = server, thread
        self._port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=_GRACEFUL_SHUTDOWN_SECONDS + 5)
        self._server, self._thread, self._port = None, None, None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
