"""Run the simulator with uvicorn in a background thread, for tests and the gateway's embedded mode."""

from __future__ import annotations

from router.background import BackgroundServer
from router.simulator.app import SimulatorApp, create_simulator_app
from router.simulator.settings import SimulatorSettings


class SimulatorServer(BackgroundServer):
    """A simulator listening on ``host:port`` (port 0 picks a free one) from a daemon thread.

    Use as a context manager, or call ``start()`` (which returns once connections are accepted) and ``stop()``.
    The OpenAI base URL is ``base_url + "/v1"``; the Anthropic one is ``base_url``.
    """

    app: SimulatorApp

    def __init__(self, settings: SimulatorSettings, host: str = "127.0.0.1", port: int = 0) -> None:
        # Long hangs (timeout faults) must not hold a test's teardown for their full length.
        super().__init__(create_simulator_app(settings), host, port, name="simulator", graceful_shutdown=1.0)
