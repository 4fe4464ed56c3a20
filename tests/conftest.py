"""Shared fixtures: real servers on 127.0.0.1 and free ports, started and stopped per test or module."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY_DISABLED", "true")

from router.app import create_app
from router.background import BackgroundServer
from router.server import server_options
from router.settings import Settings
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings

REPO = Path(__file__).resolve().parent.parent

# Fixtures that start a server: a test using one is in the e2e tier whether or not it says so.
SERVER_FIXTURES = frozenset({"simulator", "gateway", "postgres_server", "postgres_url", "redis_server"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@contextlib.contextmanager
def _servers_refused(item: pytest.Item) -> Iterator[None]:
    """Outside the e2e tier, starting a server fails the test: the fast tier (``-m "not e2e"``) stays fast."""
    if item.get_closest_marker("e2e") is not None:
        yield
        return
    from tests.gateway_process import GatewayProcess
    from tests.postgres_server import PostgresServer
    from tests.prometheus_server import PrometheusServer
    from tests.redis_server import RedisServer

    def refuse(*_: Any, **__: Any) -> Any:
        pytest.fail(f"{item.nodeid} starts a server: mark it @pytest.mark.e2e", pytrace=False)

    with pytest.MonkeyPatch.context() as patch:
        for server in (BackgroundServer, GatewayProcess, PostgresServer, PrometheusServer, RedisServer):
            patch.setattr(server, "start", refuse)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _servers_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _servers_refused(item):
        return (yield)


def gateway_config(sim_url: str, tiers: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    """A gateway config whose deployments all point at a test-controlled simulator (OpenAI wire format)."""
    tiers = tiers or {"small": ["small-a", "small-b"], "standard": ["standard-a"], "frontier": ["frontier-a"]}
    names = [n for chain in tiers.values() for n in chain]
    models = {
        "small-a": "gpt-4o-mini",
        "small-b": "gpt-4.1-mini",
        "standard-a": "gpt-4o",
        "frontier-a": "gpt-4.1",
    }
    return {
        "deployments": [
            {
                "name": n,
                "model": f"openai/{models.get(n, n)}",
                "api_base": f"{sim_url}/v1",
                "timeouts": {"connect": 1, "first_token": 2, "total": 5},
            }
            for n in names
        ],
        "tiers": tiers,
        "policy": str(REPO / "policies" / "default.yaml"),
        **extra,
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class GatewayServer(BackgroundServer):
    def __init__(self, settings: Settings) -> None:
        super().__init__(create_app(settings), name="gateway", **server_options(settings))
        self.settings = settings

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour()}, seed=7)) as server:
        yield server


def make_gateway(tmp_path: Path, config: dict[str, Any], **settings: Any) -> GatewayServer:
    """A gateway on ``config`` (not started: use it as a context manager)."""
    config_path = write_yaml(tmp_path / "gateway.yaml", config)
    options: dict[str, Any] = {"config": config_path, "data_dir": tmp_path / "data", "classifier": "off"}
    options.update(settings)
    return GatewayServer(Settings(**options))


@pytest.fixture
def gateway(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    with make_gateway(tmp_path, gateway_config(simulator.base_url)) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL cluster for the session; tests take a fresh database each (``postgres_url``)."""
    from tests.postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    import uuid

    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
