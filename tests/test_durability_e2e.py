"""kill -9 of real gateway processes under mixed streamed / non-streamed load: every answer a client received
(every non-streamed 200, every stream that delivered a byte) has exactly one ledger row after a restart. And with
two replicas on PostgreSQL the ledger's spend is Prometheus's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.accounting.ledger import STREAM_UNFINISHED
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import gateway_config, make_gateway, write_yaml
from tests.gateway_process import GatewayProcess, MixedLoad, run_mixed_load
from tests.postgres_server import PostgresServer
from tests.prometheus_server import PrometheusServer, ScrapeTarget

pytestmark = pytest.mark.e2e


@pytest.fixture
def paced_simulator() -> SimulatorServer:
    # Streams take ~100 ms, so a kill lands with many of them half sent.
    behaviour = ModelBehaviour(ttft_ms=15, tokens_per_second=400, output_tokens=40)
    with SimulatorServer(SimulatorSettings(models={"*": behaviour}, seed=11)) as server:
        yield server


def _env(tmp_path: Path, simulator: SimulatorServer, name: str, **extra: str) -> dict[str, str]:
    config = write_yaml(tmp_path / "gateway.yaml", gateway_config(simulator.base_url))
    return {
        "SWITCHBOARD_CONFIG": str(config),
        "SWITCHBOARD_CLASSIFIER": "off",
        "SWITCHBOARD_WATCH_POLICY": "false",
        "SWITCHBOARD_DATA_DIR": str(tmp_path / name),
        **extra,
    }


def delivered_at_least(count: int) -> Callable[[MixedLoad], bool]:
    """Run until clients received ``count`` non-streamed answers and ``count`` streams had delivered bytes."""
    return lambda load: len(load.completed) >= count and len(load.streamed) >= count


def _check(load: MixedLoad, rows: dict[str, tuple[int, str | None]], total_rows: int, minimum: int) -> None:
    delivered = load.delivered
    lost = sorted(delivered - rows.keys())
    print(
        f"kill -9: {load.requests} requests, {len(load.completed)} non-streamed 200s, {len(load.streamed)} streams "
        f"with a byte ({len(load.finished_streams)} finished), {total_rows} ledger rows, lost {len(lost)}; "
        f"client errors {load.failures}"
    )
    assert len(load.completed) >= minimum and len(load.streamed) >= minimum
    assert load.failures, "the kill hit no request in flight"
    assert lost == []
    # A finished stream or a non-streamed answer has its final record, not the provisional one.
    for request_id in load.completed | load.finished_streams:
        status, error_type = rows[request_id]
        assert status == 200 and error_type != STREAM_UNFINISHED, request_id


def _sqlite_rows(path: Path) -> tuple[dict[str, tuple[int, str | None]], int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT request_id, status, error_type FROM ledger").fetchall()
    by_id = {request_id: (status, error_type) for request_id, status, error_type in rows}
    assert len(by_id) == len(rows)  # exactly one row per request
    return by_id, len(rows)


def test_kill_9_loses_no_delivered_answer_sqlite(tmp_path: Path, paced_simulator: SimulatorServer) -> None:
    gateway = GatewayProcess(_env(tmp_path, paced_simulator, "data"), log=tmp_path / "gateway.log")
    gateway.start()
    try:
        load = asyncio.run(run_mixed_load([gateway.base_url], until=delivered_at_least(60), kill=gateway.kill))
        gateway.start()  # the restart replays whatever the killed process spooled
    finally:
        gateway.stop()
    rows, total = _sqlite_rows(tmp_path / "data" / "ledger.sqlite3")
    _check(load, rows, total, minimum=60)


def _postgres_rows(server: PostgresServer, database: str) -> tuple[dict[str, tuple[int, str | None]], int]:
    text = server.query(
        "SELECT string_agg(request_id || '|' || status || '|' || coalesce(error_type, ''), E'\\n') FROM ledger",
        database,
    )
    by_id: dict[str, tuple[int, str | None]] = {}
    for line in text.splitlines():
        request_id, status, error_type = line.split("|")
        assert request_id not in by_id
        by_id[request_id] = (int(status), error_type or None)
    return by_id, len(by_id)


def test_kill_9_of_two_replicas_on_postgres_loses_nothing(
    tmp_path: Path, paced_simulator: SimulatorServer, postgres_server: PostgresServer, postgres_url: str
) -> None:
    replicas = [
        GatewayProcess(
            _env(tmp_path, paced_simulator, f"data-{i}", SWITCHBOARD_DATABASE_URL=postgres_url),
            log=tmp_path / f"gateway-{i}.log",
        )
        for i in range(2)
    ]
    for replica in replicas:
        replica.start()

    def kill_both() -> None:
        replicas[0].kill()
        replicas[1].kill()

    try:
        load = asyncio.run(run_mixed_load([r.base_url for r in replicas], until=delivered_at_least(40), kill=kill_both))
        for replica in replicas:
            replica.start()
    finally:
        for replica in replicas:
            replica.stop()
    rows, total = _postgres_rows(postgres_server, postgres_url.rsplit("/", 1)[1])
    _check(load, rows, total, minimum=40)


def test_ledger_totals_equal_prometheus_spend_with_two_replicas_on_postgres(
    tmp_path: Path, paced_simulator: SimulatorServer, postgres_server: PostgresServer, postgres_url: str
) -> None:
    config = gateway_config(paced_simulator.base_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = {"database_url": postgres_url}
    with (
        make_gateway(tmp_path / "a", config, **settings) as one,
        make_gateway(tmp_path / "b", config, **settings) as two,
    ):
        targets = [ScrapeTarget(job=f"replica-{i}", address=f"127.0.0.1:{g.port}") for i, g in enumerate((one, two))]
        with PrometheusServer(targets) as prometheus:
            load = asyncio.run(
                run_mixed_load([one.base_url, two.base_url], until=delivered_at_least(20), concurrency=8)
            )
            after = datetime.now(UTC)
            final = max(prometheus.wait_for_scrape(t.job, after=after) for t in targets)
            (metric,) = prometheus.query("sum(switchboard_cost_usd_total)", at=final.timestamp())
    database = postgres_url.rsplit("/", 1)[1]
    rows, ledger_total = postgres_server.query("SELECT count(*) || ' ' || sum(cost_usd) FROM ledger", database).split()
    print(f"two replicas: {load.requests} requests, {rows} ledger rows, {ledger_total} USD in both")
    assert int(rows) == load.requests and len(load.completed) > 10 and len(load.finished_streams) > 10
    assert abs(float(metric["value"][1]) - float(ledger_total)) <= 1e-9
    # Each replica recorded the policy version it started with in the history.
    assert int(postgres_server.query("SELECT count(*) FROM policy_versions", database)) == 2
