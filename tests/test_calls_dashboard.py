"""The PostgreSQL "call explorer" dashboard: its structure (Grafana 11 models, grid, provisioned datasource) and
its SQL, run against a real PostgreSQL holding a ledger, with Grafana's macros expanded as Grafana documents them."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as grafana

from router.accounting.ledger import STREAM_UNFINISHED, LedgerRecord, PostgresLedgerSink
from router.db import open_postgres
from tests.test_dashboards import (
    DASHBOARDS,
    DATASOURCE_PROVISIONING,
    GRAFANA_11_SCHEMAS,
    GRID_COLUMNS,
    all_panels,
    strings_in,
    variable_references,
    variables,
)

CALLS = DASHBOARDS / "calls.json"
PG_TYPE = "grafana-postgresql-datasource"
TEMPLATED = {"type": PG_TYPE, "uid": "${datasource}"}


@pytest.fixture
def board() -> dict[str, Any]:
    return json.loads(CALLS.read_text())


def sql_targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["rawSql"]) for panel in all_panels(board) for target in panel["targets"]]


def test_decodes_into_grafana_11_models(board: dict[str, Any]) -> None:
    register_default_plugins()  # the typed panel options (table, timeseries)
    model = grafana.Dashboard.from_json(board)
    assert model.schema_version in GRAFANA_11_SCHEMAS
    assert model.panels and all(not isinstance(panel.options, dict) for panel in model.panels)
    assert {panel["type"] for panel in all_panels(board)} <= {"table", "timeseries"}


def test_panels_fit_the_grid_and_do_not_overlap(board: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in all_panels(board):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area
    assert len({panel["id"] for panel in all_panels(board)}) == len(all_panels(board))


def test_every_query_reads_the_provisioned_postgresql_datasource(board: dict[str, Any]) -> None:
    datasources = yaml.safe_load(DATASOURCE_PROVISIONING.read_text())["datasources"]
    (postgres,) = [d for d in datasources if d["type"] == PG_TYPE]
    datasource = variables(board)["datasource"]
    assert datasource["query"] == PG_TYPE and datasource["current"]["value"] == postgres["uid"]
    assert variables(board)["tenant"]["datasource"] == TEMPLATED
    for panel in all_panels(board):
        assert panel["datasource"] == TEMPLATED, panel["title"]
        assert all(t["datasource"] == TEMPLATED and t["rawSql"] for t in panel["targets"]), panel["title"]
    used: set[str] = set()
    for text in strings_in(board["panels"]):
        used |= variable_references(text)
    assert used <= set(variables(board)) | {"__timeFilter", "__timeGroupAlias"}, used


def test_the_dashboard_shows_cost_per_call_per_tenant_and_per_outcome(board: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in all_panels(board)}
    assert {"Cost per call", "Cost per tenant", "Cost per outcome"} <= titles


# Grafana's PostgreSQL macros and formats, as documented (grafana.com/docs/grafana/latest/datasources/postgres/).
_TIME_FILTER = re.compile(r"\$__timeFilter\((\w+)\)")
_TIME_GROUP_ALIAS = re.compile(r"\$__timeGroupAlias\((\w+),\s*'(\d+)([smhd])'\)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def expand(sql: str, start: datetime, end: datetime, tenants: list[str]) -> str:
    sql = _TIME_FILTER.sub(lambda m: f"{m[1]} BETWEEN '{start:%Y-%m-%dT%H:%M:%SZ}' AND '{end:%Y-%m-%dT%H:%M:%SZ}'", sql)
    sql = _TIME_GROUP_ALIAS.sub(
        lambda m: (
            f'floor(extract(epoch from {m[1]})/{int(m[2]) * _SECONDS[m[3]]})*{int(m[2]) * _SECONDS[m[3]]} AS "time"'
        ),
        sql,
    )
    sql = sql.replace("${tenant:sqlstring}", ",".join(f"'{t}'" for t in tenants))
    assert "$" not in sql, sql
    return sql


def _ledger(now: datetime) -> list[LedgerRecord]:
    records = []
    for n in range(60):
        tenant = ("acme", "globex")[n % 2]
        outcome: dict[str, Any] = {}
        if n % 10 == 3:
            outcome = {"error_type": STREAM_UNFINISHED, "interrupted": True, "stream": True}
        elif n % 10 == 5:
            outcome = {"status": 502, "error_type": "upstream_error"}
        elif n % 10 == 7:
            outcome = {"interrupted": True, "status": 499}
        records.append(
            LedgerRecord(
                request_id=f"req-{n}",
                ts=now - timedelta(minutes=5 * n),
                tenant=tenant,
                call_id=f"call-{n % 6}",
                cost_usd=0.001 * (n + 1),
                baseline_cost_usd=0.002 * (n + 1),
                voice_call_seconds=30.0 * (n % 4 + 1),
                status=outcome.pop("status", 200),
                **outcome,
            )
        )
    return records


@pytest.mark.e2e
def test_every_query_runs_on_postgresql_and_adds_up(board: dict[str, Any], postgres_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    records = _ledger(now)
    start, end = now - timedelta(hours=3), now + timedelta(minutes=1)
    in_range = [r for r in records if start <= r.ts <= end]

    async def run() -> dict[str, list[dict[str, Any]]]:
        pool = await open_postgres(postgres_url)
        try:
            await PostgresLedgerSink(pool).write_batch(records)
            (tenant_query,) = [v["query"] for v in board["templating"]["list"] if v["name"] == "tenant"]
            tenants = [row[0] for row in await pool.fetch(tenant_query)]
            assert tenants == ["acme", "globex"]
            return {
                title: [dict(row) for row in await pool.fetch(expand(sql, start, end, tenants))]
                for title, sql in sql_targets(board)
            }
        finally:
            await pool.close()

    results = asyncio.run(run())
    assert all(results.values()), [title for title, rows in results.items() if not rows]
    total = sum(r.cost_usd for r in in_range)
    per_tenant = {}
    for row in results["Cost per tenant"]:
        per_tenant[row["metric"]] = per_tenant.get(row["metric"], 0.0) + row["cost_usd"]
    assert per_tenant == pytest.approx(
        {t: sum(r.cost_usd for r in in_range if r.tenant == t) for t in ("acme", "globex")}
    )
    outcomes = {row["outcome"]: row["requests"] for row in results["Cost per outcome"]}
    assert outcomes["stream cut by a gateway stop"] == sum(r.error_type == STREAM_UNFINISHED for r in in_range)
    assert sum(outcomes.values()) == len(in_range)
    assert sum(row["cost_usd"] for row in results["Cost per outcome"]) == pytest.approx(total)
    calls = {row["call_id"]: row["cost_usd"] for row in results["Cost per call"]}
    assert calls == pytest.approx({c: sum(r.cost_usd for r in in_range if r.call_id == c) for c in calls})
    assert len(results["Calls explorer: every turn"]) == len(in_range)
