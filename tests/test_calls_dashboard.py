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

from router.accounting.hedged import HEDGE_WASTED
from router.accounting.ledger import STREAM_UNFINISHED, LedgerRecord, PostgresLedgerSink
from router.accounting.speech import CALL_USAGE_PREFIX
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
        turn = LedgerRecord(
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
        records.append(turn)
        if n % 10 == 1:  # a hedged turn: the loser's record beside it (as router/accounting/hedged.py writes it)
            records.append(
                turn.model_copy(
                    update={
                        "record_id": f"{turn.request_id}:hedge:0",
                        "error_type": HEDGE_WASTED,
                        "cost_usd": 0.0005 * (n + 1),
                        "baseline_cost_usd": 0.0,
                    }
                )
            )
    for call in ("call-0", "call-1"):  # the calls' usage reports: speech, no LLM spend, no turn
        records.append(
            LedgerRecord(
                record_id=f"{CALL_USAGE_PREFIX}{('acme', 'globex')[int(call[-1]) % 2]}:{call}",
                request_id=f"req-usage-{call}",
                ts=now - timedelta(minutes=2),
                tenant=("acme", "globex")[int(call[-1]) % 2],
                call_id=call,
                status=200,
                stt_cost_usd=0.01,
                voice_call_seconds=120.0,
            )
        )
    return records


def is_turn(record: LedgerRecord) -> bool:
    return record.error_type != HEDGE_WASTED and not record.record_id.startswith(CALL_USAGE_PREFIX)


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
    losers = [r for r in in_range if r.error_type == HEDGE_WASTED]
    assert losers and total > sum(r.cost_usd for r in in_range if is_turn(r))
    outcomes = {row["outcome"]: row["requests"] for row in results["Cost per outcome"]}
    assert outcomes["stream cut by a gateway stop"] == sum(r.error_type == STREAM_UNFINISHED for r in in_range)
    assert outcomes["call usage report"] == 2
    # A hedge loser is spend, not a request: its cost is in the panel, its row is not counted.
    assert outcomes["hedge lost (cancelled attempt)"] == 0
    assert sum(outcomes.values()) == len(in_range) - len(losers)
    assert sum(row["cost_usd"] for row in results["Cost per outcome"]) == pytest.approx(total)
    calls = {row["call_id"]: row for row in results["Cost per call"]}
    for call, row in calls.items():
        of_call = [r for r in in_range if r.call_id == call]
        assert row["turns"] == sum(is_turn(r) for r in of_call), call
        assert row["cost_usd"] == pytest.approx(sum(r.cost_usd for r in of_call)), call
        assert row["hedge_wasted_usd"] == pytest.approx(sum(r.cost_usd for r in of_call if r in losers)), call
    every = results["Calls explorer: every turn"]
    assert len(every) == len(in_range)
    assert [row["kind"] for row in every].count("hedge loser") == len(losers)
