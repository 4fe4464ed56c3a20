"""The cost ledger: one record per gateway request, committed to the system of record before the answer ends.

``await Ledger.commit(record)`` returns once the record is durable: committed by the sink (SQLite with
``synchronous=FULL``, or PostgreSQL) or, when the sink fails, appended to a local fsync'd JSONL spool that
is replayed in order at start and once a periodic probe finds the sink working again. Group commit: one
writer task takes everything queued, writes it as one batch (one fsync), and wakes every request waiting
on that batch, so concurrent turns share a commit. ``Ledger.record(record)`` queues without waiting (for
rejections, whose answers are not bills).

Writes are upserts keyed by ``record_id`` that only ever replace a *provisional* row (``error_type =
STREAM_UNFINISHED``, committed before a stream's first byte): a replayed batch changes nothing, and a
stream's final record replaces its provisional one whatever order they arrive in. A gateway killed
mid-stream leaves the provisional row, so a stream that delivered a byte is never unbilled.

Prompts and completions are never recorded: ``LedgerRecord`` forbids unknown fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import types
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, Union, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from redis.asyncio import Redis

from router.accounting.usage import Usage
from router.errors import GatewayError
from router.redisclient import decoded, redis_client

logger = logging.getLogger(__name__)

LEDGER_TABLE = "ledger"
DEFAULT_STREAM = "switchboard:ledger"  # where gateways before 0.2 kept the ledger
# Fixed-width timestamps sort lexicographically in time order, which the SQLite ``ts`` index relies on.
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# The error_type of a stream's provisional record: the gateway stopped before the stream ended, so the
# completion tokens are unknown and only the prompt is billed (an estimate, ``usage_estimated``).
STREAM_UNFINISHED = "stream_unfinished"


class LedgerUnavailable(GatewayError):
    """Neither the system of record nor the local spool took the record: the answer is not delivered unbilled."""

    status_code = 503
    default_code = "ledger_unavailable"


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Settled spend of one tenant's agent on one UTC day, from the ledger (for rebuilding budgets)."""

    tenant: str
    agent: str | None
    day: str  # YYYY-MM-DD
    cost_usd: float


@dataclass(frozen=True, slots=True)
class CallSpend:
    """Settled spend of one call (all its records) and its last record's time, from the ledger (for rebuilding
    per-call budgets)."""

    tenant: str
    agent: str | None
    call_id: str
    cost_usd: float
    last_ts: datetime


def _utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; naive datetimes are taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_ts(value: datetime) -> str:
    return _utc(value).strftime(TS_FORMAT)


class LedgerRecord(BaseModel):
    """What one request did and cost. Token counts follow ``Usage``'s conventions.

    ``cost_usd`` is everything the upstream billed; when the client cancelled (``interrupted``) it
    includes ``interrupted_cost_usd``, the cost of the tokens generated for nobody.
    ``baseline_cost_usd`` is the same tokens priced on the baseline deployment (see
    ``PriceBook.baseline_cost``), so savings are ``baseline_cost_usd - cost_usd`` and may be negative.

    ``total_ms`` runs from the request's arrival until the answer was complete (the last upstream byte relayed),
    *before* the wait for this record's own durable commit, which cannot be known when the record is written;
    that wait is ``switchboard_ledger_commit_seconds`` (and ``bench/durable_write.py``).
    """

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    request_id: str
    ts: datetime = Field(default_factory=lambda: datetime.now(UTC))
    call_id: str | None = None
    caller_id: str | None = None
    tenant: str
    agent: str | None = None
    key_id: str | None = None
    requested_model: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    risks: dict[str, float] = Field(default_factory=dict)
    high_stakes: bool = False
    rule: str | None = None
    tier: str | None = None
    deployment: str | None = None
    model: str | None = None
    policy_version: str | None = None
    shadow_rule: str | None = None
    shadow_tier: str | None = None
    shadow_deployment: str | None = None
    shadow_cost_usd: float | None = None
    fallbacks: int = 0
    stream: bool = False
    status: int
    error_type: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    interrupted: bool = False
    interrupted_cost_usd: float = 0.0
    classification_ms: float | None = None
    overhead_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    voice_call_seconds: float | None = None
    # Speech besides the LLM (router/accounting/speech.py): a turn's metadata.voice or a call's usage report.
    stt_seconds: float | None = None
    tts_characters: int | None = None
    telephony_seconds: float | None = None
    stt_cost_usd: float = 0.0
    tts_cost_usd: float = 0.0
    telephony_cost_usd: float = 0.0
    speech_vendors: dict[str, str] = Field(default_factory=dict)
    call_outcome: str | None = None  # resolved | transferred | abandoned, on a call's usage report
    handoff: str | None = None  # "<policy handoff>: <reason>" when a human handoff was recommended

    @field_validator("ts")
    @classmethod
    def _ts_in_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_serializer("ts")
    def _ts_fixed_width(self, value: datetime) -> str:
        return format_ts(value)


def usage_fields(usage: Usage) -> dict[str, Any]:
    """The ``LedgerRecord`` token fields of ``usage``: ``LedgerRecord(**usage_fields(u), ...)``."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_prompt_tokens": usage.cached_prompt_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_estimated": usage.estimated,
    }


class ColumnKind(enum.StrEnum):
    TEXT = "TEXT"
    INTEGER = "INTEGER"
    REAL = "REAL"
    BOOLEAN = "BOOLEAN"
    TIMESTAMP = "TIMESTAMP"
    JSON = "JSON"


def _column_kind(annotation: Any) -> ColumnKind:
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = (arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is dict:
        return ColumnKind.JSON
    kinds = {
        str: ColumnKind.TEXT,
        int: ColumnKind.INTEGER,
        float: ColumnKind.REAL,
        bool: ColumnKind.BOOLEAN,
        datetime: ColumnKind.TIMESTAMP,
    }
    return kinds[annotation]


# The flat, tabular shape of a record shared by the SQLite sink, Parquet exports and reports.
LEDGER_COLUMNS: Mapping[str, ColumnKind] = types.MappingProxyType(
    {name: _column_kind(field.annotation) for name, field in LedgerRecord.model_fields.items()}
)


def record_to_row(record: LedgerRecord) -> dict[str, Any]:
    """A record as flat column values: timestamps as fixed-width text, dicts as JSON text."""
    row = record.model_dump(mode="json")
    for name, kind in LEDGER_COLUMNS.items():
        if kind is ColumnKind.JSON:
            row[name] = json.dumps(row[name], sort_keys=True)
    return row


def row_to_record(row: Mapping[str, Any]) -> LedgerRecord:
    values = dict(row)
    for name, kind in LEDGER_COLUMNS.items():
        if kind is ColumnKind.JSON and isinstance(values.get(name), str):
            values[name] = json.loads(values[name])
    return LedgerRecord.model_validate(values)


class LedgerSink(Protocol):
    """Where ledger records are kept. ``write_batch`` must be durable once it returns, atomic and idempotent."""

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None: ...

    async def settled_spend(self, since: datetime) -> list[SpendRow]:
        """Spend per (tenant, agent, UTC day) of the records with ``ts >= since``."""
        ...

    async def call_spend(self, active_since: datetime) -> list[CallSpend]:
        """Spend per (tenant, agent, call) of every call with a record at or after ``active_since``."""
        ...

    async def query(
        self,
        tenant: str,
        call_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LedgerRecord]:
        """The tenant's records, oldest first; ``since`` inclusive, ``until`` exclusive."""
        ...

    async def count(self) -> int: ...

    async def aclose(self) -> None: ...


_SQLITE_TYPES = {
    ColumnKind.TEXT: "TEXT",
    ColumnKind.INTEGER: "INTEGER",
    ColumnKind.REAL: "REAL",
    ColumnKind.BOOLEAN: "INTEGER",
    ColumnKind.TIMESTAMP: "TEXT",
    ColumnKind.JSON: "TEXT",
}


def upsert_sql(columns: Sequence[str], values: str) -> str:
    """``INSERT ... VALUES`` that replaces an existing row only while it is a stream's provisional record."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != "record_id")
    return (
        f"INSERT INTO {LEDGER_TABLE} ({', '.join(columns)}) {values} ON CONFLICT (record_id) DO UPDATE SET "
        f"{updates} WHERE {LEDGER_TABLE}.error_type = '{STREAM_UNFINISHED}'"
    )


class SQLiteLedgerSink:
    """A SQLite ledger in WAL mode; each call runs in a worker thread so the event loop never blocks.

    One connection is shared under a lock: SQLite serialises writers anyway, and WAL lets reports read
    the file from other processes while the gateway writes. ``synchronous=FULL`` fsyncs every commit, so a
    committed batch survives a power cut, not only a killed process.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        columns = ", ".join(
            f"{name} {_SQLITE_TYPES[kind]}{' PRIMARY KEY' if name == 'record_id' else ''}"
            for name, kind in LEDGER_COLUMNS.items()
        )
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ({columns})")
        self._add_new_columns()
        self._conn.execute(f"CREATE INDEX IF NOT EXISTS ledger_tenant_call ON {LEDGER_TABLE} (tenant, call_id)")
        self._conn.execute(f"CREATE INDEX IF NOT EXISTS ledger_ts ON {LEDGER_TABLE} (ts)")
        placeholders = ", ".join(f":{name}" for name in LEDGER_COLUMNS)
        self._insert_sql = upsert_sql(list(LEDGER_COLUMNS), f"VALUES ({placeholders})")

    def _add_new_columns(self) -> None:
        """A ledger file written by an earlier version gets the columns added since (as Alembic does for
        PostgreSQL), at the end and empty: JSON columns hold ``{}``, numbers their record default."""
        present = {row[1] for row in self._conn.execute(f"PRAGMA table_info({LEDGER_TABLE})")}
        for name, kind in LEDGER_COLUMNS.items():
            if name in present:
                continue
            default = LedgerRecord.model_fields[name].get_default(call_default_factory=True)
            value = json.dumps(default) if kind is ColumnKind.JSON else default
            literal = "NULL" if value is None else f"'{value}'" if isinstance(value, str) else repr(value)
            self._conn.execute(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN {name} {_SQLITE_TYPES[kind]} DEFAULT {literal}")

    def write_batch_sync(self, records: Sequence[LedgerRecord]) -> None:
        rows = [record_to_row(r) for r in records]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(self._insert_sql, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None:
        if records:
            await asyncio.to_thread(self.write_batch_sync, records)

    def _select(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    async def query(
        self,
        tenant: str,
        call_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LedgerRecord]:
        clauses, params = ["tenant = ?"], [tenant]
        if call_id is not None:
            clauses.append("call_id = ?")
            params.append(call_id)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(format_ts(since))
        if until is not None:
            clauses.append("ts < ?")
            params.append(format_ts(until))
        sql = f"SELECT * FROM {LEDGER_TABLE} WHERE {' AND '.join(clauses)} ORDER BY ts, rowid"
        rows = await asyncio.to_thread(self._select, sql, params)
        return [row_to_record(dict(row)) for row in rows]

    async def count(self) -> int:
        rows = await asyncio.to_thread(self._select, f"SELECT COUNT(*) FROM {LEDGER_TABLE}", ())
        return int(rows[0][0])

    async def settled_spend(self, since: datetime) -> list[SpendRow]:
        sql = (
            f"SELECT tenant, agent, substr(ts, 1, 10) AS day, SUM(cost_usd) FROM {LEDGER_TABLE} "
            "WHERE ts >= ? GROUP BY tenant, agent, day"
        )
        rows = await asyncio.to_thread(self._select, sql, (format_ts(since),))
        return [SpendRow(row[0], row[1], row[2], float(row[3] or 0.0)) for row in rows]

    async def call_spend(self, active_since: datetime) -> list[CallSpend]:
        sql = (
            f"SELECT tenant, agent, call_id, SUM(cost_usd), MAX(ts) FROM {LEDGER_TABLE} WHERE (tenant, call_id) IN "
            f"(SELECT tenant, call_id FROM {LEDGER_TABLE} WHERE ts >= ? AND call_id IS NOT NULL) "
            "GROUP BY tenant, agent, call_id"
        )
        rows = await asyncio.to_thread(self._select, sql, (format_ts(active_since),))
        return [
            CallSpend(
                row[0], row[1], row[2], float(row[3] or 0.0), datetime.strptime(row[4], TS_FORMAT).replace(tzinfo=UTC)
            )
            for row in rows
        ]

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._conn.close()


def one_row_per_record(records: Sequence[LedgerRecord]) -> list[LedgerRecord]:
    """The batch with one record per ``record_id`` (a stream's final record over its provisional one), as one
    PostgreSQL statement may not upsert a row twice."""
    chosen: dict[str, LedgerRecord] = {}
    for record in records:
        kept = chosen.get(record.record_id)
        if kept is None or kept.error_type == STREAM_UNFINISHED:
            chosen[record.record_id] = record
    return list(chosen.values())


class PostgresLedgerSink:
    """The ledger in PostgreSQL (schema by ``router/db/migrations``), shared by every replica.

    A batch is one multi-row statement (``unnest`` of an array of ``ledger`` rows): one round trip and one
    commit, which PostgreSQL makes durable before it answers. The pool belongs to the caller.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        columns = list(LEDGER_COLUMNS)
        self._insert_sql = upsert_sql(columns, f"SELECT * FROM unnest($1::{LEDGER_TABLE}[])")

    @staticmethod
    def _row(record: LedgerRecord) -> tuple[Any, ...]:
        return tuple(
            json.dumps(getattr(record, name), sort_keys=True) if kind is ColumnKind.JSON else getattr(record, name)
            for name, kind in LEDGER_COLUMNS.items()
        )

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None:
        if records:
            await self._pool.execute(self._insert_sql, [self._row(r) for r in one_row_per_record(records)])

    async def query(
        self,
        tenant: str,
        call_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LedgerRecord]:
        clauses: list[str] = ["tenant = $1"]
        params: list[object] = [tenant]
        for clause, value in (("call_id = ", call_id), ("ts >= ", since), ("ts < ", until)):
            if value is not None:
                params.append(_utc(value) if isinstance(value, datetime) else value)
                clauses.append(f"{clause}${len(params)}")
        sql = f"SELECT * FROM {LEDGER_TABLE} WHERE {' AND '.join(clauses)} ORDER BY ts, record_id"
        return [row_to_record(dict(row)) for row in await self._pool.fetch(sql, *params)]

    async def count(self) -> int:
        return int(await self._pool.fetchval(f"SELECT count(*) FROM {LEDGER_TABLE}"))

    async def settled_spend(self, since: datetime) -> list[SpendRow]:
        rows = await self._pool.fetch(
            f"SELECT tenant, agent, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, sum(cost_usd) AS cost "
            f"FROM {LEDGER_TABLE} WHERE ts >= $1 GROUP BY 1, 2, 3",
            _utc(since),
        )
        return [SpendRow(row["tenant"], row["agent"], row["day"], float(row["cost"] or 0.0)) for row in rows]

    async def call_spend(self, active_since: datetime) -> list[CallSpend]:
        rows = await self._pool.fetch(
            f"SELECT tenant, agent, call_id, sum(cost_usd) AS cost, max(ts) AS last_ts FROM {LEDGER_TABLE} "
            f"WHERE (tenant, call_id) IN (SELECT tenant, call_id FROM {LEDGER_TABLE} "
            "WHERE ts >= $1 AND call_id IS NOT NULL) GROUP BY 1, 2, 3",
            _utc(active_since),
        )
        return [
            CallSpend(row["tenant"], row["agent"], row["call_id"], float(row["cost"] or 0.0), _utc(row["last_ts"]))
            for row in rows
        ]

    async def aclose(self) -> None:
        return None


class Spool:
    """Batches the sink refused, one JSON line each, appended with fsync so a crash keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.batches = self._count_lines()

    def _count_lines(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    @staticmethod
    def _encode(batch: Sequence[LedgerRecord]) -> bytes:
        return ('{"records":[' + ",".join(r.model_dump_json() for r in batch) + "]}\n").encode()

    def append(self, batch: Sequence[LedgerRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(self._encode(batch))
            f.flush()
            os.fsync(f.fileno())
        self.batches += 1

    def read_at(self, offset: int) -> tuple[list[LedgerRecord] | None, int]:
        """The first readable batch at or after byte ``offset`` (None at the end) and the offset after it.

        Reading one batch at a time keeps a probe of a long outage's spool cheap: it reads one line.
        Unreadable lines are skipped, and counted in the offset so that replay drops them too.
        """
        with self.path.open("rb") as f:
            f.seek(offset)
            while line := f.readline():
                offset += len(line)
                if not line.strip():
                    continue
                try:
                    return [LedgerRecord.model_validate(r) for r in json.loads(line)["records"]], offset
                except ValueError:
                    # Only a write cut short by a crash (never fsync'd, never acknowledged) is torn.
                    logger.error("ledger spool %s: skipping unreadable line ending at byte %d", self.path, offset)
        return None, offset

    async def replay_into(self, sink: LedgerSink) -> int:
        """Write the spooled batches to ``sink`` in order, dropping each replayed one; raises when the sink fails
        (what was replayed until then is dropped, the rest stays). Returns how many batches were replayed."""
        offset = replayed = 0
        try:
            while True:
                batch, next_offset = await asyncio.to_thread(self.read_at, offset)
                if batch is None:
                    offset = next_offset
                    return replayed
                await sink.write_batch(batch)
                offset, replayed = next_offset, replayed + 1
        finally:
            if offset:
                await asyncio.to_thread(self.drop_before, offset)
                logger.info("ledger replayed %d spooled batches from %s", replayed, self.path)

    def drop_before(self, offset: int) -> None:
        """Remove the replayed first ``offset`` bytes, atomically (a crash leaves old or new spool)."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with self.path.open("rb") as source, tmp.open("wb") as target:
            source.seek(offset)
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
            remaining = target.tell()
        if remaining:
            os.replace(tmp, self.path)
            self.batches = self._count_lines()
        else:
            tmp.unlink()
            self.path.unlink()
            self.batches = 0


@dataclass(slots=True)
class _Queued:
    record: LedgerRecord
    durable: asyncio.Future[None] | None  # set once the record is in the sink or the spool
    queued_at: float = 0.0  # time.perf_counter() when committed, for the commit wait


class Ledger:
    """The ledger writer: group commit of queued records to the sink, or to the spool when the sink fails.

    One writer task takes up to ``batch_size`` queued records at a time and writes them in one
    transaction, so requests that finish while a commit is in flight share the next one. While the spool
    holds batches, new batches are spooled behind them (to keep order) and the sink is probed by replaying
    the spool every ``probe_interval_s``. ``start()`` replays what an earlier process spooled before the
    gateway serves. ``aclose()`` writes everything still queued, to the sink or the spool, and closes the sink.

    ``on_spooled(batches)`` hears how many batches the spool holds whenever that may have changed (the
    ``switchboard_ledger_spooled_batches`` gauge); ``on_commit_wait(seconds)`` hears, for every committed record,
    how long ``commit()`` took to make it durable (``switchboard_ledger_commit_seconds``): the part of a turn's
    latency that its ledger record's ``total_ms`` cannot contain, since that record is written before it is known.
    """

    def __init__(
        self,
        sink: LedgerSink,
        spool_path: str | Path,
        *,
        batch_size: int = 256,
        probe_interval_s: float = 1.0,
        retry_interval_s: float = 0.2,
        on_spooled: Callable[[int], None] | None = None,
        on_commit_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.sink = sink
        self._spool = Spool(Path(spool_path))
        self._on_spooled = on_spooled
        self._on_commit_wait = on_commit_wait
        self._batch_size = batch_size
        self._probe_interval_s = probe_interval_s
        self._retry_interval_s = retry_interval_s
        self._queue: deque[_Queued] = deque()
        self._in_flight = 0  # records taken from the queue whose batch is being written
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._sink_failed = False
        self._next_probe = 0.0

    @property
    def healthy(self) -> bool:
        """False while the sink fails or spooled batches wait for replay (``/readyz`` degraded)."""
        return not self._sink_failed and self._spool.batches == 0

    @property
    def pending(self) -> int:
        """Records in memory, not yet in the sink or the spool."""
        return len(self._queue) + self._in_flight

    @property
    def spooled_batches(self) -> int:
        return self._spool.batches

    def _enqueue(self, record: LedgerRecord, durable: asyncio.Future[None] | None, queued_at: float = 0.0) -> None:
        if self._closed:
            raise RuntimeError("ledger is closed")
        self._queue.append(_Queued(record, durable, queued_at))
        if self._wakeup is not None:
            self._wakeup.set()

    def record(self, record: LedgerRecord) -> None:
        """Queue a record without waiting for it to be durable. Raises after ``aclose()``."""
        self._enqueue(record, None)

    def commit(self, record: LedgerRecord) -> asyncio.Future[None]:
        """Queue a record now; the result resolves once it is durable (sink or spool), or raises
        ``LedgerUnavailable`` if neither took it. Such a record stays queued and is written when one recovers.
        Raises at once after ``aclose()``.
        """
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(record, durable, time.perf_counter())
        # Shielded: a client that hangs up cancels its request, not the batch its record is in.
        return asyncio.shield(durable)

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._spool.batches:
            await self._replay_spool()
        self._report_spool()
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                timeout = self._probe_interval_s if self._spool.batches else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                self._wakeup.clear()
            if self._closing:
                return
            try:
                await self._flush()
            except Exception:
                # The spool itself failed (disk full?): the records stay queued; try again shortly.
                logger.exception("ledger: neither the sink nor the spool took a batch; records kept in memory")
                await asyncio.sleep(self._retry_interval_s)

    async def _flush(self) -> None:
        if self._spool.batches and time.monotonic() >= self._next_probe:
            await self._replay_spool()
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            try:
                await self._deliver([q.record for q in batch])
            except BaseException as exc:
                self._in_flight = 0
                # Waiting requests learn at once that their record is not durable; the records stay queued.
                self._queue.extendleft(_Queued(q.record, None) for q in reversed(batch))
                for queued in batch:
                    if queued.durable is not None and not queued.durable.done():
                        queued.durable.set_exception(LedgerUnavailable(f"the ledger cannot record this turn: {exc}"))
                raise
            self._in_flight = 0
            durable_at = time.perf_counter()
            for queued in batch:
                if queued.durable is not None and not queued.durable.done():
                    queued.durable.set_result(None)
                    if self._on_commit_wait is not None:
                        self._on_commit_wait(durable_at - queued.queued_at)

    def _report_spool(self) -> None:
        if self._on_spooled is not None:
            self._on_spooled(self._spool.batches)

    async def _deliver(self, batch: list[LedgerRecord]) -> None:
        if not self._spool.batches:
            try:
                await self.sink.write_batch(batch)
                self._sink_failed = False
                return
            except Exception as exc:
                logger.warning("ledger sink failed (%s); spooling to %s", exc, self._spool.path)
                self._sink_failed = True
                self._next_probe = time.monotonic() + self._probe_interval_s
        try:
            await asyncio.to_thread(self._spool.append, batch)
        finally:
            self._report_spool()

    async def _replay_spool(self) -> None:
        try:
            await self._spool.replay_into(self.sink)
            self._sink_failed = False
        except Exception as exc:
            logger.info("ledger sink still failing (%s); batches stay spooled", exc)
            self._sink_failed = True
            self._next_probe = time.monotonic() + self._probe_interval_s
        finally:
            self._report_spool()

    async def aclose(self) -> None:
        """Stop the writer, write what is queued (sink, else spool) and close the sink."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            await self._task
        self._next_probe = 0.0
        await self._flush()
        await self.sink.aclose()


def _arrow_schema() -> Any:
    import pyarrow as pa

    types_by_kind = {
        ColumnKind.TEXT: pa.string(),
        ColumnKind.INTEGER: pa.int64(),
        ColumnKind.REAL: pa.float64(),
        ColumnKind.BOOLEAN: pa.bool_(),
        ColumnKind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        ColumnKind.JSON: pa.string(),
    }
    return pa.schema([(name, types_by_kind[kind]) for name, kind in LEDGER_COLUMNS.items()])


def records_to_arrow(records: Iterable[LedgerRecord]) -> Any:
    """Records as a ``pyarrow.Table`` with the ledger's column schema (dicts as JSON text)."""
    import pyarrow as pa

    rows = []
    for record in records:
        row = record_to_row(record)
        row["ts"] = record.ts
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=_arrow_schema())


def _next_stream_id(entry_id: str) -> str:
    millis, seq = entry_id.split("-")
    return f"{millis}-{int(seq) + 1}"


StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]  # what XRANGE answers a client that does not decode


async def _stream_batches(redis: Redis, stream: str, last_id: str, chunk: int) -> AsyncIterator[list[LedgerRecord]]:
    start = "-"
    while entries := cast(StreamEntries, await redis.xrange(stream, start, last_id, count=chunk)):
        yield [LedgerRecord.model_validate_json(fields[b"r"]) for _, fields in entries]
        start = "(" + decoded(entries[-1][0])


async def _write_parquet(batches: AsyncIterator[list[LedgerRecord]], out_path: Path) -> int:
    import pyarrow.parquet as pq

    # Written under a temporary name so a failed export never leaves a truncated file behind.
    tmp_path = out_path.with_name(out_path.name + ".partial")
    exported = 0
    try:
        with pq.ParquetWriter(tmp_path, _arrow_schema()) as writer:
            async for records in batches:
                writer.write_table(records_to_arrow(records))
                exported += len(records)
        os.replace(tmp_path, out_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return exported


async def _write_sqlite(batches: AsyncIterator[list[LedgerRecord]], out_path: Path) -> int:
    sink = SQLiteLedgerSink(out_path)
    exported = 0
    try:
        async for records in batches:
            await sink.write_batch(records)
            exported += len(records)
    finally:
        await sink.aclose()
    return exported


async def export_stream(
    redis_url: str,
    out_path: str | Path,
    format: Literal["parquet", "sqlite"] = "parquet",
    trim: bool = True,
    stream: str = DEFAULT_STREAM,
    chunk: int = 5000,
) -> int:
    """Move a ledger stream left in Redis by gateways before 0.2 (which kept the ledger there when REDIS_URL
    was set), up to its newest entry now, to a Parquet file or a SQLite ledger.

    A Parquet file is written whole and must not exist yet; a SQLite ledger is appended to
    (idempotently by ``record_id``). The stream is trimmed only after the file is written, and only up
    to the last exported entry, so records appended meanwhile stay. Returns how many were exported.
    """
    out_path = Path(out_path)
    if format == "parquet" and out_path.exists():
        raise FileExistsError(f"{out_path} exists; Parquet exports are never overwritten")
    redis = redis_client(redis_url, timeout_s=10.0)
    try:
        newest = cast(StreamEntries, await redis.xrevrange(stream, "+", "-", count=1))
        if not newest:
            return 0
        last_id = decoded(newest[0][0])
        write = _write_parquet if format == "parquet" else _write_sqlite
        exported = await write(_stream_batches(redis, stream, last_id, chunk), out_path)
        if trim:
            await redis.xtrim(stream, minid=_next_stream_id(last_id), approximate=False)
        return exported
    finally:
        await redis.aclose()
