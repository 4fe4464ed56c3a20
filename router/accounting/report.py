"""Finance reports from the ledger: requests, tokens, cost and savings against the baseline, grouped.

The source is the system of record itself, read directly: a PostgreSQL URL or a SQLite ledger
(``SQLiteLedgerSink``'s file, or a ``ledger export --format sqlite``); or Parquet exports: one file or a
directory of them.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd

from router.accounting.hedged import HEDGE_WASTED
from router.accounting.ledger import LEDGER_COLUMNS, LEDGER_TABLE, TS_FORMAT, ColumnKind, LedgerRecord, format_ts
from router.accounting.speech import CALL_USAGE_PREFIX, SPEECH_KINDS

ReportFormat = Literal["csv", "parquet", "markdown"]
TIME_GROUPS = {"day": "%Y-%m-%d", "month": "%Y-%m"}
GROUPABLE = (
    *TIME_GROUPS,
    *(name for name, kind in LEDGER_COLUMNS.items() if kind in (ColumnKind.TEXT, ColumnKind.BOOLEAN)),
)
DEFAULT_GROUPS = ("tenant", "agent", "model", "day")
TOKEN_COLUMNS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)
TOTAL_LABEL = "TOTAL"
MISSING_LABEL = "(none)"
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def _utc_timestamp(value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def is_database_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(("postgresql://", "postgres://"))


async def _fetch_postgres(url: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    import asyncpg

    clauses, params = [], []
    for operator, bound in ((">=", start), ("<", end)):
        if bound is not None:
            params.append(_utc_timestamp(bound).to_pydatetime())
            clauses.append(f"ts {operator} ${len(params)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    columns = ", ".join(LEDGER_COLUMNS)
    connection = await asyncpg.connect(url)
    try:
        # One read-only snapshot, so a report never blocks or sees half of a gateway's batch.
        async with connection.transaction(readonly=True, isolation="repeatable_read"):
            rows = await connection.fetch(f"SELECT {columns} FROM {LEDGER_TABLE}{where} ORDER BY ts", *params)
    finally:
        await connection.close()
    return pd.DataFrame([tuple(row) for row in rows], columns=list(LEDGER_COLUMNS))


def load_ledger(source: str | Path, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Ledger rows with ``start <= ts < end`` (either bound optional; naive means UTC), ``ts`` in UTC."""
    if is_database_url(source):
        frame = asyncio.run(_fetch_postgres(str(source), start, end))
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame
    path = Path(source)
    if _is_sqlite(path):
        clauses, params = [], []
        if start is not None:
            clauses.append("ts >= ?")
            params.append(format_ts(start))
        if end is not None:
            clauses.append("ts < ?")
            params.append(format_ts(end))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # Read-only, so a report never takes a write lock on the gateway's live ledger.
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            frame = pd.read_sql_query(f"SELECT * FROM {LEDGER_TABLE}{where}", conn, params=params)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format=TS_FORMAT)
        return frame
    frame = pd.read_parquet(path)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= frame["ts"] >= _utc_timestamp(start)
    if end is not None:
        keep &= frame["ts"] < _utc_timestamp(end)
    return frame[keep].reset_index(drop=True)


def _group_keys(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    keys = pd.DataFrame(index=frame.index)
    for name in by:
        if name in TIME_GROUPS:
            keys[name] = frame["ts"].dt.strftime(TIME_GROUPS[name])
        else:
            keys[name] = frame[name].astype("object").where(frame[name].notna(), MISSING_LABEL).astype(str)
    return keys


def _with_every_column(frame: pd.DataFrame) -> pd.DataFrame:
    """A ledger (or export) written before a column existed reads as if that column held its default."""
    missing = [name for name in LEDGER_COLUMNS if name not in frame.columns]
    if not missing:
        return frame
    frame = frame.copy()
    for name in missing:
        default = LedgerRecord.model_fields[name].get_default(call_default_factory=True)
        frame[name] = None if isinstance(default, dict) else default
    return frame


def _call_figures(frame: pd.DataFrame, cost: float) -> dict[str, float | int]:
    """Speech spend, hedge waste and outcomes: the whole cost of the calls and cost per resolved call.

    A call's outcome is the last one reported for it (a turn's ``metadata.voice.outcome`` or its usage report)."""
    speech = {f"{kind}_cost_usd": float(frame[f"{kind}_cost_usd"].sum()) for kind in SPEECH_KINDS}
    total = cost + sum(speech.values())
    with_call = frame[frame["call_id"].notna()]
    outcomes = with_call[with_call["call_outcome"].notna()].sort_values("ts").groupby("call_id")["call_outcome"].last()
    calls = int(with_call["call_id"].nunique())
    resolved = int((outcomes == "resolved").sum())
    return {
        "hedge_wasted_usd": float(frame.loc[frame["error_type"] == HEDGE_WASTED, "cost_usd"].sum()),
        **speech,
        "total_cost_usd": total,
        "calls": calls,
        "resolved_calls": resolved,
        "cost_per_resolved_call_usd": total / resolved if resolved else math.nan,
        "transferred_share": float((outcomes == "transferred").sum()) / calls if calls else math.nan,
    }


def _is_turn(frame: pd.DataFrame) -> pd.Series:
    """Rows that are requests: not a hedge loser's record, nor a call's usage report."""
    return (frame["error_type"] != HEDGE_WASTED) & ~frame["record_id"].astype(str).str.startswith(CALL_USAGE_PREFIX)


def _summarise(frame: pd.DataFrame) -> dict[str, float | int]:
    tokens = {name: int(frame[name].sum()) for name in TOKEN_COLUMNS}
    cost = float(frame["cost_usd"].sum())
    baseline = float(frame["baseline_cost_usd"].sum())
    savings = baseline - cost
    turns = frame[_is_turn(frame)]
    return {
        "requests": len(turns),
        "errors": int((turns["status"] >= 400).sum()),
        **tokens,
        "total_tokens": tokens["prompt_tokens"] + tokens["completion_tokens"],
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "savings_usd": savings,
        "savings_pct": 100 * savings / baseline if baseline else math.nan,
        "interrupted_cost_usd": float(frame["interrupted_cost_usd"].sum()),
        **_call_figures(frame, cost),
    }


def summarise(frame: pd.DataFrame, by: Sequence[str] = DEFAULT_GROUPS) -> pd.DataFrame:
    """One row per group of ``by`` (sorted), then a totals row labelled ``TOTAL``.

    Savings are ``baseline - cost`` and signed; ``savings_pct`` is relative to the baseline (NaN when
    the baseline cost nothing).
    """
    unknown = [name for name in by if name not in GROUPABLE]
    if unknown:
        raise ValueError(f"cannot group by {unknown}; choose from {', '.join(GROUPABLE)}")
    frame = _with_every_column(frame)
    by = list(by)
    rows = []
    if by and not frame.empty:
        keys = _group_keys(frame, by)
        for values, group in frame.groupby([keys[name] for name in by], sort=True):
            rows.append(dict(zip(by, values, strict=True)) | _summarise(group))
    total_labels = {name: TOTAL_LABEL if i == 0 else "" for i, name in enumerate(by)}
    rows.append(total_labels | _summarise(frame))
    return pd.DataFrame(rows)


def build_report(
    source: str | Path,
    start: datetime | None = None,
    end: datetime | None = None,
    by: Sequence[str] = DEFAULT_GROUPS,
) -> pd.DataFrame:
    """The finance report of the ledger at ``source`` for ``start <= ts < end``."""
    return summarise(load_ledger(source, start, end), by)


def _markdown_cell(column: str, value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.1f}" if column == "savings_pct" else f"{value:.6f}"
    return str(value)


def to_markdown(report: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned."""
    columns = list(report.columns)
    numeric = [pd.api.types.is_numeric_dtype(report[c]) for c in columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    for row in report.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(c, v) for c, v in zip(columns, row, strict=True)) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: pd.DataFrame, format: ReportFormat, out: Path | None) -> str | None:
    """Write ``report`` to ``out``; without ``out``, return it as text (Parquet needs a file)."""
    if format == "parquet":
        if out is None:
            raise ValueError("a Parquet report needs an output file")
        report.to_parquet(out, index=False)
        return None
    text = report.to_csv(index=False) if format == "csv" else to_markdown(report)
    if out is None:
        return text
    out.write_text(text)
    return None
