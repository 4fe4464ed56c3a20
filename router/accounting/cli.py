"""``switchboard ledger export`` and ``switchboard report``: click commands to mount on the main CLI."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path

import click

from router.accounting.ledger import DEFAULT_STREAM, export_stream
from router.accounting.report import DEFAULT_GROUPS, GROUPABLE, build_report, is_database_url, write_report


@click.group("ledger")
def ledger() -> None:
    """The cost ledger."""


@ledger.command("export")
@click.option("--redis-url", envvar="SWITCHBOARD_REDIS_URL", required=True, help="Redis holding the stream.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", type=click.Choice(["parquet", "sqlite"]), default="parquet", show_default=True)
@click.option("--stream", default=DEFAULT_STREAM, show_default=True)
@click.option("--trim/--no-trim", default=True, show_default=True, help="Remove exported entries from Redis.")
def export(redis_url: str, out: Path, fmt: str, stream: str, trim: bool) -> None:
    """Move the ledger stream from Redis to a Parquet file (new) or a SQLite ledger (appended)."""
    try:
        count = asyncio.run(export_stream(redis_url, out, fmt, trim=trim, stream=stream))  # type: ignore[arg-type]
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"exported {count} records to {out}")


def _bound(value: str | None, *, end: bool) -> datetime | None:
    """A UTC bound from ISO text; a bare date as ``--to`` includes that whole day."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} is not an ISO date or datetime") from exc
    return datetime.combine(day + timedelta(days=1) if end else day, time())


def _groups(value: tuple[str, ...]) -> list[str]:
    groups = [name.strip() for item in value for name in item.split(",") if name.strip()]
    unknown = [name for name in groups if name not in GROUPABLE]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(GROUPABLE)}")
    return groups


@click.command("report")
@click.option(
    "--ledger",
    "ledger_source",
    envvar="SWITCHBOARD_DATABASE_URL",
    required=True,
    help="A postgresql:// URL (default: SWITCHBOARD_DATABASE_URL), a SQLite ledger, a Parquet export, or a "
    "directory of Parquet exports.",
)
@click.option("--from", "start", help="First day or instant (UTC), inclusive.")
@click.option("--to", "end", help="Last day (inclusive) or instant (exclusive), UTC.")
@click.option(
    "--by",
    multiple=True,
    default=[",".join(DEFAULT_GROUPS)],
    show_default=True,
    help="Comma-separated groups.",
)
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "parquet"]), default="markdown")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
def report(
    ledger_source: str, start: str | None, end: str | None, by: tuple[str, ...], fmt: str, out: Path | None
) -> None:
    """Requests, tokens, cost and savings against the baseline, grouped, with a totals row."""
    source: str | Path = ledger_source if is_database_url(ledger_source) else Path(ledger_source)
    if isinstance(source, Path) and not source.exists():
        raise click.BadParameter(f"{ledger_source} does not exist", param_hint="--ledger")
    frame = build_report(source, _bound(start, end=False), _bound(end, end=True), _groups(by))
    try:
        text = write_report(frame, fmt, out)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if text is not None:
        click.echo(text, nl=False)
