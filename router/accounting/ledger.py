"""The cost ledger: one record per gateway request, written in batches to a durable sink.

``Ledger.record()`` never blocks the event loop and never loses a record: a background task writes
batches to a ``LedgerSink``; when the sink fails (Redis down, disk locked) the batch goes to a local,
fsync'd JSONL spool, which is replayed in order once a periodic probe finds the sink working again.
Replays are idempotent: the SQLite sink ignores known ``record_id``s and the Redis sink refuses a
batch it has already appended, so a batch whose acknowledgement was lost is not written twice.

Prompts and completions are never recorded: ``LedgerRecord`` forbids unknown fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
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
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from redis.asyncio import Redis

from router.accounting.usage import Usage
from router.redisclient import redis_client

logger = logging.getLogger(__name__)

LEDGER_TABLE = "ledger"
DEFAULT_STREAM = "switchboard:ledger"
# Fixed-width timestamps sort lexicographically in time order, which the SQLite ``ts`` index relies on.
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_CLOCK_SKEW_MS = 5 * 60 * 1000


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


def batch_digest(records: Sequence[LedgerRecord]) -> str:
    """A stable name for a batch, identical when the same batch is replayed from the spool."""
    return hashlib.blake2b("\n".join(r.record_id for r in records).encode(), digest_size=16).hexdigest()


class LedgerSink(Protocol):
    """Where ledger records are kept. ``write_batch`` must be atomic and idempotent per batch."""

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None: ...

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


class SQLiteLedgerSink:
    """A SQLite ledger in WAL mode; each call runs in a worker thread so the event loop never blocks.

    One connection is shared under a lock: SQLite serialises writers anyway, and WAL lets reports read
    the file from other processes while the gateway writes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        columns = ", ".join(
            f"{name} {_SQLITE_TYPES[kind]}{' PRIMARY KEY' if name == 'record_id' else ''}"
            for name, kind in LEDGER_COLUMNS.items()
        )
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ({columns})")
        self._conn.execute(f"CREATE INDEX IF NOT EXISTS ledger_tenant_call ON {LEDGER_TABLE} (tenant, call_id)")
        self._conn.execute(f"CREATE INDEX IF NOT EXISTS ledger_ts ON {LEDGER_TABLE} (ts)")
        placeholders = ", ".join(f":{name}" for name in LEDGER_COLUMNS)
        self._insert_sql = f"INSERT OR IGNORE INTO {LEDGER_TABLE} VALUES ({placeholders})"

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

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._conn.close()


# Appends a batch to the stream unless that batch was appended before (its digest key exists), and
# indexes each entry under its call so per-call queries need not scan the stream. Atomic, so a batch
# is either wholly in the stream or not at all.
# KEYS[1] stream, KEYS[2] batch digest key, KEYS[3..] call index keys.
# ARGV[1] digest TTL (0: no dedupe), ARGV[2] call index TTL, then per record: index of its call key in
# KEYS (0: no call), record JSON.
_APPEND_BATCH_LUA = """
local dedupe_ttl = tonumber(ARGV[1])
if dedupe_ttl > 0 and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', dedupe_ttl) then
  return 0
end
local index_ttl = tonumber(ARGV[2])
local appended = 0
for i = 3, #ARGV, 2 do
  local id = redis.call('XADD', KEYS[1], '*', 'r', ARGV[i + 1])
  local key_index = tonumber(ARGV[i])
  if key_index > 0 then
    redis.call('RPUSH', KEYS[key_index], id)
    redis.call('EXPIRE', KEYS[key_index], index_ttl)
  end
  appended = appended + 1
end
return appended
"""


class RedisStreamLedgerSink:
    """Ledger records as JSON entries (field ``r``) of a Redis stream, for multi-replica gateways.

    Per-call queries use a secondary list per (tenant, call) of stream entry ids, kept for
    ``call_index_ttl_s`` after the call's last request. Other queries scan the stream (from a little
    before ``since``, as entry ids are insertion times): fine for the modest size
    the stream has between ``switchboard ledger export`` runs, which move it to Parquet/SQLite.
    Replay dedupe keys live ``dedupe_ttl_s``: a batch replayed later than that after an ambiguous
    failure (written, acknowledgement lost) would be appended twice.
    """

    def __init__(
        self,
        redis_url: str,
        stream: str = DEFAULT_STREAM,
        *,
        dedupe_ttl_s: int = 3600,
        call_index_ttl_s: int = 7 * 86400,
        timeout_s: float = 2.0,
    ) -> None:
        self.stream = stream
        self._dedupe_ttl_s = dedupe_ttl_s
        self._call_index_ttl_s = call_index_ttl_s
        self._redis = redis_client(redis_url, timeout_s)
        self._append_batch = self._redis.register_script(_APPEND_BATCH_LUA)

    def _call_key(self, tenant: str, call_id: str) -> str:
        digest = hashlib.blake2b(f"{tenant}\0{call_id}".encode(), digest_size=16).hexdigest()
        return f"{self.stream}:call:{digest}"

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None:
        if not records:
            return
        keys = [self.stream, f"{self.stream}:batch:{batch_digest(records)}"]
        args: list[Any] = [self._dedupe_ttl_s, self._call_index_ttl_s]
        for record in records:
            key_index = 0
            if record.call_id is not None:
                call_key = self._call_key(record.tenant, record.call_id)
                if call_key not in keys:
                    keys.append(call_key)
                key_index = keys.index(call_key) + 1
            args += [key_index, record.model_dump_json()]
        await self._append_batch(keys=keys, args=args)

    async def _entries_of_call(self, tenant: str, call_id: str) -> list[bytes]:
        ids = await self._redis.lrange(self._call_key(tenant, call_id), 0, -1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.stream, entry_id, entry_id)
            results = await pipe.execute()
        # An id whose entry was exported and trimmed yields no entry.
        return [fields[b"r"] for entries in results for _, fields in entries]

    async def _scan(self, since: datetime | None, chunk: int = 1000) -> list[bytes]:
        # Entry ids come from Redis's clock and ``ts`` from the gateway's: start early enough to
        # cover skew between the two; the exact bound is applied to ``ts`` afterwards.
        start = "-" if since is None else f"{max(int(since.timestamp() * 1000) - _CLOCK_SKEW_MS, 0)}-0"
        found: list[bytes] = []
        while True:
            entries = await self._redis.xrange(self.stream, start, "+", count=chunk)
            found += [fields[b"r"] for _, fields in entries]
            if len(entries) < chunk:
                return found
            start = "(" + entries[-1][0].decode()

    async def query(
        self,
        tenant: str,
        call_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LedgerRecord]:
        raw = await (self._entries_of_call(tenant, call_id) if call_id is not None else self._scan(since))
        records = (LedgerRecord.model_validate_json(entry) for entry in raw)
        return [
            r
            for r in records
            if r.tenant == tenant
            and (call_id is None or r.call_id == call_id)
            and (since is None or r.ts >= _utc(since))
            and (until is None or r.ts < _utc(until))
        ]

    async def count(self) -> int:
        return int(await self._redis.xlen(self.stream))

    async def aclose(self) -> None:
        await self._redis.aclose()


class _Spool:
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


class Ledger:
    """The ledger writer: ``record()`` queues in memory, a background task writes batches.

    A batch is flushed when ``batch_size`` records are queued or every ``flush_interval_s``. While the
    spool holds batches, new batches are spooled behind them (to keep order) and the sink is probed by
    replaying the spool every ``probe_interval_s``. ``aclose()`` writes everything still queued, to the
    sink or the spool, and closes the sink.
    """

    def __init__(
        self,
        sink: LedgerSink,
        spool_path: str | Path,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.05,
        probe_interval_s: float = 1.0,
    ) -> None:
        self.sink = sink
        self._spool = _Spool(Path(spool_path))
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._probe_interval_s = probe_interval_s
        self._queue: deque[LedgerRecord] = deque()
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
        """Records queued in memory, not yet in the sink or the spool."""
        return len(self._queue)

    @property
    def spooled_batches(self) -> int:
        return self._spool.batches

    def record(self, record: LedgerRecord) -> None:
        """Queue a record; returns at once. Raises after ``aclose()``, when nothing would write it."""
        if self._closed:
            raise RuntimeError("ledger is closed")
        self._queue.append(record)
        if self._wakeup is not None and len(self._queue) >= self._batch_size:
            self._wakeup.set()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval_s)
            self._wakeup.clear()
            try:
                await self._flush()
            except Exception:
                # The spool itself failed (disk full?): the batch went back to the queue; try again.
                logger.exception("ledger flush failed; records kept in memory")

    async def _flush(self) -> None:
        if self._spool.batches and time.monotonic() >= self._next_probe:
            await self._replay_spool()
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                await self._deliver(batch)
            except BaseException:
                self._queue.extendleft(reversed(batch))
                raise

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
        await asyncio.to_thread(self._spool.append, batch)

    async def _replay_spool(self) -> None:
        offset = replayed = 0
        try:
            while True:
                batch, next_offset = await asyncio.to_thread(self._spool.read_at, offset)
                if batch is None:
                    offset = next_offset
                    break
                await self.sink.write_batch(batch)
                offset, replayed = next_offset, replayed + 1
            self._sink_failed = False
        except Exception as exc:
            logger.info("ledger sink still failing (%s); batches stay spooled", exc)
            self._sink_failed = True
            self._next_probe = time.monotonic() + self._probe_interval_s
        if offset:
            await asyncio.to_thread(self._spool.drop_before, offset)
            logger.info("ledger replayed %d spooled batches", replayed)

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


async def _stream_batches(redis: Redis, stream: str, last_id: str, chunk: int) -> AsyncIterator[list[LedgerRecord]]:
    start = "-"
    while entries := await redis.xrange(stream, start, last_id, count=chunk):
        yield [LedgerRecord.model_validate_json(fields[b"r"]) for _, fields in entries]
        start = "(" + entries[-1][0].decode()


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
    """Move the stream's records, up to its newest entry now, to a Parquet file or a SQLite ledger.

    A Parquet file is written whole and must not exist yet; a SQLite ledger is appended to
    (idempotently by ``record_id``). The stream is trimmed only after the file is written, and only up
    to the last exported entry, so records appended meanwhile stay. Returns how many were exported.
    """
    out_path = Path(out_path)
    if format == "parquet" and out_path.exists():
        raise FileExistsError(f"{out_path} exists; Parquet exports are never overwritten")
    redis = redis_client(redis_url, timeout_s=10.0)
    try:
        newest = await redis.xrevrange(stream, "+", "-", count=1)
        if not newest:
            return 0
        last_id = newest[0][0].decode()
        write = _write_parquet if format == "parquet" else _write_sqlite
        exported = await write(_stream_batches(redis, stream, last_id, chunk), out_path)
        if trim:
            await redis.xtrim(stream, minid=_next_stream_id(last_id), approximate=False)
        return exported
    finally:
        await redis.aclose()
