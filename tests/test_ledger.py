from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from router.accounting.cli import ledger as ledger_cli
from router.accounting.ledger import (
    DEFAULT_STREAM,
    LEDGER_COLUMNS,
    STREAM_UNFINISHED,
    Ledger,
    LedgerRecord,
    LedgerSink,
    LedgerUnavailable,
    PostgresLedgerSink,
    SQLiteLedgerSink,
    export_stream,
    usage_fields,
)
from router.accounting.usage import Usage
from router.db import open_postgres
from router.metrics import Metrics
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_record(n: int, tenant: str = "acme", call_id: str | None = None, **fields: object) -> LedgerRecord:
    return LedgerRecord(
        request_id=f"req-{n}",
        ts=T0 + timedelta(seconds=n),
        tenant=tenant,
        call_id=call_id,
        agent="support",
        risks={"medical": 0.1 * (n % 3)},
        status=200,
        cost_usd=0.001 * n,
        **usage_fields(Usage(prompt_tokens=100 + n, completion_tokens=20, cached_prompt_tokens=50)),
        **fields,
    )


class FlakySink:
    """An in-memory sink that refuses writes while ``up`` is False, as Redis does when it is down."""

    def __init__(self) -> None:
        self.up = True
        self.batches: list[list[LedgerRecord]] = []
        self.closed = False

    @property
    def records(self) -> list[LedgerRecord]:
        return [r for batch in self.batches for r in batch]

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None:
        if not self.up:
            raise ConnectionError("sink down")
        self.batches.append(list(records))

    async def query(self, tenant: str, call_id=None, since=None, until=None) -> list[LedgerRecord]:
        return [r for r in self.records if r.tenant == tenant]

    async def count(self) -> int:
        return len(self.records)

    async def settled_spend(self, since: datetime) -> list:
        return []

    async def call_spend(self, active_since: datetime) -> list:
        return []

    async def aclose(self) -> None:
        self.closed = True


async def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def fill_legacy_stream(redis_server: RedisServer, records: Sequence[LedgerRecord]) -> None:
    """A ledger stream as gateways before 0.2 wrote it (one JSON record per entry, field ``r``)."""
    with redis_server.client() as client:
        for record in records:
            client.xadd(DEFAULT_STREAM, {"r": record.model_dump_json()})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
async def sink(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerSink]:
    if request.param == "sqlite":
        sqlite = SQLiteLedgerSink(tmp_path / "ledger.db")
        yield sqlite
        await sqlite.aclose()
        return
    pool = await open_postgres(request.getfixturevalue("postgres_url"))
    yield PostgresLedgerSink(pool)
    await pool.close()


def test_record_rejects_prompt_fields_and_normalises_time() -> None:
    with pytest.raises(ValueError, match="prompt"):
        LedgerRecord(request_id="r", tenant="t", status=200, prompt="secret")  # type: ignore[call-arg]
    naive = LedgerRecord(request_id="r", tenant="t", status=200, ts=datetime(2025, 1, 1, 9))
    assert naive.ts == datetime(2025, 1, 1, 9, tzinfo=UTC)
    assert json.loads(naive.model_dump_json())["ts"] == "2025-01-01T09:00:00.000000Z"


async def test_sqlite_round_trip_in_wal_mode_with_indexes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    sink = SQLiteLedgerSink(path)
    records = [make_record(n, call_id=f"call-{n % 3}") for n in range(30)]
    records.append(make_record(99, tenant="other", call_id="call-0"))
    await sink.write_batch(records[:10])
    await sink.write_batch(records[10:])
    await sink.write_batch(records[:10])  # a replayed batch is not written twice
    assert await sink.count() == 31

    by_call = await sink.query("acme", call_id="call-0")
    assert [r.request_id for r in by_call] == [f"req-{n}" for n in range(0, 30, 3)]
    assert by_call[0] == records[0]  # every field survives, risks and timestamps included

    window = await sink.query("acme", since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=8))
    assert [r.request_id for r in window] == ["req-5", "req-6", "req-7"]
    assert [r.request_id for r in await sink.query("other")] == ["req-99"]
    await sink.aclose()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[1]: row for row in conn.execute("PRAGMA index_list(ledger)")}
        assert {"ledger_tenant_call", "ledger_ts"} <= set(indexes)
        columns = [row[2] for row in conn.execute("PRAGMA index_info(ledger_tenant_call)")]
        assert columns == ["tenant", "call_id"]
        assert [row[1] for row in conn.execute("PRAGMA table_info(ledger)")] == list(LEDGER_COLUMNS)


class SlowSink(FlakySink):
    """A sink whose commits take a while, like an fsync: concurrent commits must share one."""

    async def write_batch(self, records: Sequence[LedgerRecord]) -> None:
        await asyncio.sleep(0.02)
        await super().write_batch(records)


async def test_commit_returns_once_durable_and_concurrent_commits_share_a_batch(tmp_path: Path) -> None:
    sink = SlowSink()
    waits: list[float] = []
    ledger = Ledger(sink, tmp_path / "spool.jsonl", batch_size=100, on_commit_wait=waits.append)
    await ledger.start()
    started = time.perf_counter()
    await ledger.commit(make_record(0))
    assert [r.request_id for r in sink.records] == ["req-0"]  # durable when commit returns
    assert len(waits) == 1 and 0 < waits[0] <= time.perf_counter() - started  # the commit wait, measured

    await asyncio.gather(*(ledger.commit(make_record(n)) for n in range(1, 251)))
    assert [r.request_id for r in sink.records] == [f"req-{n}" for n in range(251)]
    assert len(sink.batches) <= 5  # group commit: 250 commits in a handful of batches of at most 100
    assert max(len(b) for b in sink.batches) == 100

    for n in range(251, 260):  # fire-and-forget records are written too
        ledger.record(make_record(n))
    await ledger.aclose()
    assert len(sink.records) == 260
    assert sink.closed and ledger.healthy
    with pytest.raises(RuntimeError):
        ledger.record(make_record(0))


async def test_a_cancelled_waiter_does_not_cancel_its_batch(tmp_path: Path) -> None:
    sink = SlowSink()
    ledger = Ledger(sink, tmp_path / "spool.jsonl")
    await ledger.start()
    waiter = asyncio.ensure_future(ledger.commit(make_record(1)))
    await asyncio.sleep(0.005)
    waiter.cancel()  # the client hung up
    await ledger.commit(make_record(2))
    await ledger.aclose()
    assert [r.request_id for r in sink.records] == ["req-1", "req-2"]


async def test_commit_fails_when_neither_sink_nor_spool_takes_the_record(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.up = False
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spool's directory should be")
    ledger = Ledger(sink, blocked / "spool.jsonl", retry_interval_s=0.05)
    await ledger.start()
    with pytest.raises(LedgerUnavailable) as refused:
        await ledger.commit(make_record(1))
    assert refused.value.status_code == 503
    assert ledger.pending == 1  # kept, and written once a destination recovers
    sink.up = True
    await wait_until(lambda: ledger.pending == 0)
    await ledger.aclose()
    assert [r.request_id for r in sink.records] == ["req-1"]


async def test_ledger_spools_while_sink_is_down_and_replays_in_order(tmp_path: Path) -> None:
    sink = FlakySink()
    spool = tmp_path / "spool.jsonl"
    metrics = Metrics()
    ledger = Ledger(sink, spool, batch_size=10, probe_interval_s=0.1, on_spooled=metrics.ledger_spooled.set)
    await ledger.start()
    ledger.record(make_record(0))
    await wait_until(lambda: len(sink.records) == 1)

    sink.up = False
    for n in range(1, 26):
        ledger.record(make_record(n))
        await asyncio.sleep(0.002)
    await wait_until(lambda: ledger.pending == 0 and spool.exists())
    assert not ledger.healthy
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert metrics.ledger_spooled._value.get() == ledger.spooled_batches == len(spooled) > 0
    assert [r["request_id"] for line in spooled for r in line["records"]] == [f"req-{n}" for n in range(1, 26)]

    sink.up = True
    for n in range(26, 30):  # recorded after recovery, written after the spooled ones
        ledger.record(make_record(n))
    await wait_until(lambda: ledger.healthy, timeout_s=2)
    assert metrics.ledger_spooled._value.get() == 0
    await ledger.aclose()
    assert [r.request_id for r in sink.records] == [f"req-{n}" for n in range(30)]
    assert not spool.exists()


async def test_spool_survives_close_and_is_replayed_by_the_next_ledger(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    down = FlakySink()
    down.up = False
    first = Ledger(down, spool, batch_size=7)
    await first.start()
    for n in range(20):
        first.record(make_record(n))
    await first.aclose()  # everything ends in the spool, fsync'd
    assert first.spooled_batches >= 3 and down.records == []

    # A torn last line (crash mid-append, never acknowledged) is skipped, not fatal.
    with spool.open("a") as f:
        f.write('{"records":[{"request_id":')
    sink = FlakySink()
    second = Ledger(sink, spool, probe_interval_s=0.05)
    assert not second.healthy
    await second.start()
    await wait_until(lambda: second.healthy)
    await second.aclose()
    assert [r.request_id for r in sink.records] == [f"req-{n}" for n in range(20)]


async def test_sinks_query_by_call_and_by_time(sink: LedgerSink) -> None:
    records = [make_record(n, call_id=f"c{n % 2}") for n in range(10)]
    records.append(make_record(10, tenant="globex", call_id="c0"))
    await sink.write_batch(records[:6])
    await sink.write_batch(records[6:])
    await sink.write_batch(records[:6])  # replay of an acknowledged-but-lost batch: no change
    assert await sink.count() == 11

    call = await sink.query("acme", call_id="c0")
    assert [r.request_id for r in call] == ["req-0", "req-2", "req-4", "req-6", "req-8"]
    assert call[1] == records[2]  # every field survives, risks and timestamps included
    assert [r.request_id for r in await sink.query("globex", call_id="c0")] == ["req-10"]
    window = await sink.query("acme", since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=5))
    assert [r.request_id for r in window] == ["req-3", "req-4"]
    spend = {(row.tenant, row.day): row.cost_usd for row in await sink.settled_spend(T0)}
    assert spend == {("acme", "2025-03-01"): pytest.approx(0.045), ("globex", "2025-03-01"): pytest.approx(0.010)}
    # Calls with a record at or after T0+8s: all of each such call's records count, older ones included.
    calls = {(c.tenant, c.call_id): c for c in await sink.call_spend(T0 + timedelta(seconds=8))}
    assert set(calls) == {("acme", "c0"), ("acme", "c1"), ("globex", "c0")}
    assert calls["acme", "c0"].cost_usd == pytest.approx(0.020)  # 0 + 2 + 4 + 6 + 8 thousandths
    assert calls["acme", "c1"].last_ts == T0 + timedelta(seconds=9)
    assert calls["acme", "c1"].agent == "support"
    assert [c.call_id for c in await sink.call_spend(T0 + timedelta(seconds=10))] == ["c0"]


async def test_a_final_record_replaces_only_a_provisional_one(sink: LedgerSink) -> None:
    provisional = make_record(1, error_type=STREAM_UNFINISHED, interrupted=True)
    final = make_record(1, total_ms=99.0).model_copy(update={"record_id": provisional.record_id})
    await sink.write_batch([provisional])
    assert (await sink.query("acme"))[0].error_type == STREAM_UNFINISHED
    await sink.write_batch([final])
    await sink.write_batch([provisional])  # a late replay of the provisional record changes nothing
    rows = await sink.query("acme")
    assert len(rows) == 1 and rows[0] == final
    other = make_record(2, error_type=STREAM_UNFINISHED)
    await sink.write_batch([make_record(3), other, other.model_copy(update={"error_type": None})])
    errors = {r.request_id: r.error_type for r in await sink.query("acme")}
    assert errors == {"req-1": None, "req-2": None, "req-3": None}


@pytest.mark.e2e
async def test_the_migrated_postgres_ledger_has_the_record_columns_in_order(postgres_url: str) -> None:
    # PostgresLedgerSink inserts whole rows of the table's composite type, so the order must be LedgerRecord's.
    pool = await open_postgres(postgres_url)
    columns = await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'ledger' ORDER BY ordinal_position"
    )
    await pool.close()
    assert [row[0] for row in columns] == list(LEDGER_COLUMNS)


@pytest.mark.e2e
async def test_no_record_lost_when_postgres_restarts_mid_run(tmp_path: Path) -> None:
    with PostgresServer() as server:
        pool = await open_postgres(server.url)
        ledger = Ledger(PostgresLedgerSink(pool), tmp_path / "spool.jsonl", batch_size=20, probe_interval_s=0.1)
        await ledger.start()
        committed = 0

        async def commit_for(seconds: float) -> None:
            nonlocal committed
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.gather(*(ledger.commit(make_record(committed + i)) for i in range(5)))
                committed += 5

        await commit_for(0.4)
        await asyncio.to_thread(server.stop)
        await commit_for(0.6)  # every commit still returns: the spool took it, fsync'd
        assert not ledger.healthy and ledger.spooled_batches > 0
        await asyncio.to_thread(server.start)
        await commit_for(0.4)
        await wait_until(lambda: ledger.healthy, timeout_s=10)
        await ledger.aclose()
        ids = server.query("SELECT string_agg(request_id, ',' ORDER BY ts) FROM ledger").split(",")
        await pool.close()
    assert committed > 50
    assert ids == [f"req-{n}" for n in range(committed)]  # all of them, once each, in order


async def test_export_to_parquet_and_sqlite_trims_only_what_was_exported(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    fill_legacy_stream(redis_server, [make_record(n, call_id="c") for n in range(25)])
    parquet = tmp_path / "ledger-1.parquet"
    assert await export_stream(redis_server.url, parquet, "parquet", trim=False, chunk=10) == 25
    with redis_server.client() as client:
        assert client.xlen(DEFAULT_STREAM) == 25
    with pytest.raises(FileExistsError):
        await export_stream(redis_server.url, parquet)

    frame = pd.read_parquet(parquet)
    assert list(frame.columns) == list(LEDGER_COLUMNS)
    assert frame["request_id"].tolist() == [f"req-{n}" for n in range(25)]
    assert frame["ts"].iloc[3] == pd.Timestamp(T0 + timedelta(seconds=3))
    assert json.loads(frame["risks"].iloc[1]) == {"medical": 0.1}

    db = tmp_path / "ledger.db"
    assert await export_stream(redis_server.url, db, "sqlite", trim=True, chunk=10) == 25
    with redis_server.client() as client:
        assert client.xlen(DEFAULT_STREAM) == 0
    fill_legacy_stream(redis_server, [make_record(n) for n in range(25, 30)])
    assert await export_stream(redis_server.url, db, "sqlite") == 5
    assert await export_stream(redis_server.url, db, "sqlite") == 0
    exported = SQLiteLedgerSink(db)
    assert await exported.count() == 30
    assert len(await exported.query("acme", call_id="c")) == 25
    await exported.aclose()


def test_cli_export(redis_server: RedisServer, tmp_path: Path) -> None:
    fill_legacy_stream(redis_server, [make_record(n) for n in range(4)])
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        ledger_cli, ["export", "--redis-url", redis_server.url, "--out", str(out), "--format", "parquet"]
    )
    assert result.exit_code == 0, result.output
    assert "4 records" in result.output
    assert len(pd.read_parquet(out)) == 4
    with redis_server.client() as client:
        assert client.xlen("switchboard:ledger") == 0


def test_spool_slots_are_exclusive_per_process_and_adopted_after_a_crash(tmp_path: Path) -> None:
    from router.recorder import claim_spool

    first, first_lock = claim_spool(tmp_path)
    second, second_lock = claim_spool(tmp_path)
    assert first != second  # two live workers never share a spool
    first_lock.close()  # the first worker died
    adopted, adopted_lock = claim_spool(tmp_path)
    assert adopted == first  # its successor replays what it left behind
    second_lock.close()
    adopted_lock.close()


async def test_orphaned_spools_are_replayed_and_live_ones_left_alone(tmp_path: Path) -> None:
    from router.accounting.ledger import Spool
    from router.recorder import adopt_orphan_spools, claim_spool

    mine, my_lock = claim_spool(tmp_path)
    live, live_lock = claim_spool(tmp_path)  # another worker, running
    orphan = tmp_path / "ledger-spool-7.jsonl"  # a worker that crashed, whose slot nobody took again
    for path, first in ((mine, 0), (live, 10), (orphan, 20)):
        Spool(path).append([make_record(n) for n in range(first, first + 3)])
    sink = SQLiteLedgerSink(tmp_path / "ledger.db")
    await adopt_orphan_spools(tmp_path, sink)
    assert sorted(r.request_id for r in await sink.query("acme")) == ["req-20", "req-21", "req-22"]
    assert not orphan.exists() and mine.exists() and live.exists()
    await sink.aclose()
    my_lock.close()
    live_lock.close()
