from __future__ import annotations

import asyncio
import io
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from router.accounting.cli import report as report_cli
from router.accounting.ledger import LedgerRecord, SQLiteLedgerSink, records_to_arrow
from router.accounting.report import TOTAL_LABEL, build_report

START = datetime(2025, 4, 1, tzinfo=UTC)


def make_records(count: int = 400, seed: int = 3) -> list[LedgerRecord]:
    rng = random.Random(seed)
    records = []
    for n in range(count):
        prompt = rng.randint(50, 5000)
        completion = rng.randint(1, 800)
        records.append(
            LedgerRecord(
                request_id=f"req-{n}",
                ts=START + timedelta(hours=rng.randint(0, 24 * 5 - 1), seconds=rng.randint(0, 3599)),
                tenant=rng.choice(["acme", "globex"]),
                agent=rng.choice(["triage", "billing", None]),
                model=rng.choice(["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]),
                status=rng.choice([200, 200, 200, 502]),
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_prompt_tokens=rng.randint(0, prompt),
                reasoning_tokens=rng.randint(0, completion),
                cost_usd=round(rng.uniform(0, 0.05), 9),
                baseline_cost_usd=round(rng.uniform(0, 0.08), 9),
            )
        )
    return records


@pytest.fixture
def records() -> list[LedgerRecord]:
    return make_records()


@pytest.fixture
def sqlite_ledger(tmp_path: Path, records: list[LedgerRecord]) -> Path:
    path = tmp_path / "ledger.db"

    async def write() -> None:
        sink = SQLiteLedgerSink(path)
        await sink.write_batch(records)
        await sink.aclose()

    asyncio.run(write())
    return path


@pytest.fixture
def parquet_dir(tmp_path: Path, records: list[LedgerRecord]) -> Path:
    import pyarrow.parquet as pq

    folder = tmp_path / "exports"
    folder.mkdir()
    pq.write_table(records_to_arrow(records[:150]), folder / "part-1.parquet")
    pq.write_table(records_to_arrow(records[150:]), folder / "part-2.parquet")
    return folder


def test_totals_row_equals_the_sum_of_records(sqlite_ledger: Path, records: list[LedgerRecord]) -> None:
    report = build_report(sqlite_ledger)
    total = report.iloc[-1]
    assert total["tenant"] == TOTAL_LABEL
    assert total["requests"] == len(records)
    assert total["errors"] == sum(r.status >= 400 for r in records)
    assert total["prompt_tokens"] == sum(r.prompt_tokens for r in records)
    assert total["cached_prompt_tokens"] == sum(r.cached_prompt_tokens for r in records)
    assert total["total_tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in records)
    assert total["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    baseline = sum(r.baseline_cost_usd for r in records)
    cost = sum(r.cost_usd for r in records)
    assert total["savings_usd"] == pytest.approx(baseline - cost)
    assert total["savings_pct"] == pytest.approx(100 * (baseline - cost) / baseline)
    groups = report.iloc[:-1]
    # The groups partition the records: their sums are the totals.
    for column in ("requests", "prompt_tokens", "reasoning_tokens", "cost_usd", "savings_usd"):
        assert groups[column].sum() == pytest.approx(total[column])


def test_groups_match_a_hand_filter(sqlite_ledger: Path, records: list[LedgerRecord]) -> None:
    report = build_report(sqlite_ledger, by=["tenant", "agent", "model", "day"])
    assert list(report.columns[:4]) == ["tenant", "agent", "model", "day"]
    row = report[
        (report["tenant"] == "acme")
        & (report["agent"] == "(none)")
        & (report["model"] == "openai/gpt-4o-mini")
        & (report["day"] == "2025-04-03")
    ].iloc[0]
    expected = [
        r
        for r in records
        if r.tenant == "acme" and r.agent is None and r.model == "openai/gpt-4o-mini" and r.ts.day == 3
    ]
    assert row["requests"] == len(expected)
    assert row["cost_usd"] == pytest.approx(sum(r.cost_usd for r in expected))
    keys = list(report.iloc[:-1][["tenant", "agent", "model", "day"]].itertuples(index=False))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_time_window_is_start_inclusive_end_exclusive(sqlite_ledger: Path, records: list[LedgerRecord]) -> None:
    start, end = START + timedelta(days=1), START + timedelta(days=3)
    report = build_report(sqlite_ledger, start, end, by=["day"])
    assert report["day"].tolist() == ["2025-04-02", "2025-04-03", TOTAL_LABEL]
    assert report.iloc[-1]["requests"] == sum(start <= r.ts < end for r in records)


def test_parquet_exports_give_the_same_report(sqlite_ledger: Path, parquet_dir: Path) -> None:
    from_sqlite = build_report(sqlite_ledger, START, START + timedelta(days=2), by=["tenant", "month"])
    from_parquet = build_report(parquet_dir, START, START + timedelta(days=2), by=["tenant", "month"])
    pd.testing.assert_frame_equal(from_sqlite, from_parquet)


def test_empty_window_and_bad_group(sqlite_ledger: Path) -> None:
    empty = build_report(sqlite_ledger, datetime(2030, 1, 1), datetime(2030, 2, 1), by=["tenant"])
    assert len(empty) == 1 and empty.iloc[0]["requests"] == 0
    assert math.isnan(empty.iloc[0]["savings_pct"])
    with pytest.raises(ValueError, match="cannot group by"):
        build_report(sqlite_ledger, by=["cost_usd"])


def test_cli_report_formats(sqlite_ledger: Path, tmp_path: Path, records: list[LedgerRecord]) -> None:
    runner = CliRunner()
    markdown = runner.invoke(
        report_cli, ["--ledger", str(sqlite_ledger), "--from", "2025-04-02", "--to", "2025-04-03", "--by", "day"]
    )
    assert markdown.exit_code == 0, markdown.output
    lines = markdown.output.splitlines()
    assert lines[0].startswith("| day | requests |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 2025-04-02", "| 2025-04-03", f"| {TOTAL_LABEL}"]

    csv = runner.invoke(
        report_cli, ["--ledger", str(sqlite_ledger), "--by", "tenant", "--by", "agent", "--format", "csv"]
    )
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(io.StringIO(csv.output))
    assert frame.iloc[-1]["requests"] == len(records)

    out = tmp_path / "report.parquet"
    written = runner.invoke(report_cli, ["--ledger", str(sqlite_ledger), "--format", "parquet", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert pd.read_parquet(out).iloc[-1]["requests"] == len(records)
    no_file = runner.invoke(report_cli, ["--ledger", str(sqlite_ledger), "--format", "parquet"])
    assert no_file.exit_code != 0 and "needs an output file" in no_file.output
    bad = runner.invoke(report_cli, ["--ledger", str(sqlite_ledger), "--by", "colour"])
    assert bad.exit_code != 0 and "unknown" in bad.output


@pytest.mark.e2e
def test_postgres_gives_the_same_report_as_sqlite(
    sqlite_ledger: Path, records: list[LedgerRecord], postgres_url: str
) -> None:
    from router.accounting.ledger import PostgresLedgerSink
    from router.db import open_postgres

    async def write() -> None:
        pool = await open_postgres(postgres_url)
        await PostgresLedgerSink(pool).write_batch(records)
        await pool.close()

    asyncio.run(write())
    window = (START + timedelta(days=1), START + timedelta(days=3))
    by = ["tenant", "agent", "model", "day"]
    from_postgres = build_report(postgres_url, *window, by=by)
    pd.testing.assert_frame_equal(from_postgres, build_report(sqlite_ledger, *window, by=by))
    assert from_postgres.iloc[-1]["requests"] == sum(window[0] <= r.ts < window[1] for r in records)

    result = CliRunner().invoke(report_cli, ["--by", "tenant"], env={"SWITCHBOARD_DATABASE_URL": postgres_url})
    assert result.exit_code == 0, result.output
    assert f"| {TOTAL_LABEL} | {len(records)} |" in result.stdout
