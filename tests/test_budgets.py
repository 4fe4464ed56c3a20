from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from router.accounting.budgets import (
    BudgetConfig,
    BudgetExceeded,
    BudgetLimit,
    BudgetPolicy,
    BudgetStoreUnavailable,
    InProcessBudgets,
    RedisBudgets,
    Reservation,
    to_nano,
)
from router.accounting.ledger import LedgerRecord, SQLiteLedgerSink
from router.redisclient import MAX_CONNECTIONS, SharedRedis
from tests.redis_server import RedisServer

CONFIG = BudgetConfig.model_validate(
    {
        "tenants": {
            "acme": {
                "daily": {"soft_usd": 0.5, "hard_usd": 1.0},
                "monthly": {"hard_usd": 20},
                "per_call": {"hard_usd": 0.3},
                "agents": {"triage": {"daily": {"hard_usd": 0.2}, "per_call": {"hard_usd": 0.05}}},
                "default_agent": {"daily": {"soft_usd": 0.1}},
            }
        },
        "default_tenant": {"daily": {"hard_usd": 0.25}},
    }
)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis_budgets(redis_server: RedisServer) -> AsyncIterator[RedisBudgets]:
    shared = SharedRedis(redis_server.url)
    budgets = RedisBudgets(shared, BudgetPolicy(CONFIG))
    yield budgets
    await budgets.aclose()
    await shared.aclose()


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError, match="soft_usd must not exceed"):
        BudgetLimit(soft_usd=2, hard_usd=1)
    with pytest.raises(ValidationError, match="needs soft_usd"):
        BudgetLimit()
    with pytest.raises(ValidationError):
        BudgetConfig.model_validate({"tenants": {"a": {"weekly": {"hard_usd": 1}}}})


def test_scopes_follow_the_configuration() -> None:
    policy = BudgetPolicy(CONFIG)
    now = datetime(2025, 2, 14, 23, 30, tzinfo=UTC)
    names = [s.name for s in policy.scopes_for("acme", "triage", "call:1", now=now)]
    assert names == [
        "tenant:acme:daily:2025-02-14",
        "tenant:acme:monthly:2025-02",
        "agent:acme:triage:daily:2025-02-14",
        "call:acme:call%3A1",
    ]
    call = policy.scopes_for("acme", "triage", "call:1", now=now)[-1]
    assert call.hard_usd == 0.05  # the agent's per-call limit wins over the tenant's
    daily = policy.scopes_for("acme", now=now)[0]
    assert daily.expires_at == int(datetime(2025, 2, 15, tzinfo=UTC).timestamp()) + CONFIG.settle_grace_s
    monthly = policy.scopes_for("acme", now=now)[1]
    assert monthly.expires_at == int(datetime(2025, 3, 1, tzinfo=UTC).timestamp()) + CONFIG.settle_grace_s
    # Unlisted agents get the default agent's limits; their calls the tenant's per-call limit.
    other = policy.scopes_for("acme", "writer", "c", now=now)
    assert [s.name for s in other][2:] == ["agent:acme:writer:daily:2025-02-14", "call:acme:c"]
    assert other[-1].hard_usd == 0.3
    assert [s.name for s in policy.scopes_for("globex", "x", "c", now=now)] == ["tenant:globex:daily:2025-02-14"]
    assert BudgetPolicy(BudgetConfig()).scopes_for("acme", "triage", "c") == []


async def test_in_process_hard_limit_is_atomic_across_scopes() -> None:
    policy = BudgetPolicy(CONFIG)
    budgets = InProcessBudgets(policy)
    scopes = policy.scopes_for("acme", "triage")
    held = [await budgets.reserve(scopes, 0.05) for _ in range(4)]
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.reserve(scopes, 0.05)
    assert refused.value.scope_name.startswith("agent:acme:triage:daily")
    assert refused.value.limit == pytest.approx(0.2)
    tenant_only = policy.scopes_for("acme")
    # The refused request held nothing on the tenant scope either.
    assert (await budgets.remaining("acme"))[0].reserved_usd == pytest.approx(0.2)
    for reservation in held:
        await budgets.settle(reservation, 0.01)
    status = {s.scope.split(":")[0]: s for s in await budgets.remaining("acme", "triage")}
    assert status["agent"].spent_usd == pytest.approx(0.04)
    assert status["agent"].reserved_usd == 0
    assert status["agent"].remaining_usd == pytest.approx(0.16)
    # Soft limits compare settled spend, not what a request might cost.
    big = await budgets.reserve(tenant_only, 0.9)
    assert big.soft_exceeded == ()
    await budgets.settle(big, 0.5)
    assert (await budgets.reserve(tenant_only, 0.01)).soft_exceeded == (tenant_only[0].name,)


async def test_in_process_soft_limit_settle_release_and_window_expiry() -> None:
    clock = FakeClock(datetime(2025, 5, 31, 23, 0, tzinfo=UTC))
    policy = BudgetPolicy(CONFIG, clock=clock)
    budgets = InProcessBudgets(policy)
    scopes = policy.scopes_for("acme")
    first = await budgets.reserve(scopes, 0.4)
    assert first.soft_exceeded == ()
    second = await budgets.reserve(scopes, 0.2)
    assert second.soft_exceeded == ()  # soft limits compare settled spend; 0.6 is only held
    await budgets.release(second)
    await budgets.settle(first, 0.35)
    await budgets.settle(first, 0.35)  # a second settle of the same reservation changes nothing
    daily, monthly = await budgets.remaining("acme")
    assert (daily.spent_usd, daily.reserved_usd, daily.soft_exceeded) == (0.35, 0, False)
    assert monthly.spent_usd == 0.35
    assert daily.resets_at == datetime(2025, 6, 1, tzinfo=UTC)

    clock.now += 2 * 3600  # past midnight and the grace period: a new day and a new month
    daily, monthly = await budgets.remaining("acme")
    assert daily.scope == "tenant:acme:daily:2025-06-01" and daily.spent_usd == 0
    assert monthly.scope == "tenant:acme:monthly:2025-06" and monthly.spent_usd == 0
    await budgets.reserve(policy.scopes_for("acme"), 0.01)
    assert set(budgets._counters) == {s.key for s in policy.scopes_for("acme")}  # old windows swept


@pytest.mark.e2e
async def test_concurrent_reservations_across_replicas_never_pass_the_hard_limit(redis_server: RedisServer) -> None:
    config = BudgetConfig.model_validate({"tenants": {"acme": {"daily": {"soft_usd": 0.6, "hard_usd": 1.0}}}})
    shared = [SharedRedis(redis_server.url) for _ in range(2)]  # two replicas: a client (and pool) each
    replicas = [RedisBudgets(redis, BudgetPolicy(config)) for redis in shared]
    for replica in replicas:
        await replica.rebuild()  # as a gateway does at start: Redis seeded before the burst
    scopes = replicas[0].policy.scopes_for("acme")
    rng = random.Random(7)
    amounts = [rng.choice([0.01, 0.013, 0.02, 0.037]) for _ in range(200)]

    async def attempt(i: int) -> Reservation | None:
        try:
            return await replicas[i % 2].reserve(scopes, amounts[i])
        except BudgetExceeded:
            return None

    # All holds first (no settle frees room meanwhile), so the hard limit alone decides who is refused.
    held = await asyncio.gather(*(attempt(i) for i in range(200)))
    granted_nano = sum(to_nano(amounts[i]) for i, r in enumerate(held) if r is not None)
    refused = [amounts[i] for i, r in enumerate(held) if r is None]
    assert granted_nano <= to_nano(1.0)
    assert refused and all(granted_nano + to_nano(a) > to_nano(1.0) for a in refused)
    assert all(r.backend == "redis" for r in held if r is not None)

    actuals = {r.id: round(r.amount_usd * rng.random(), 9) for r in held if r is not None}
    await asyncio.gather(*(replicas[i % 2].settle(r, actuals[r.id]) for i, r in enumerate(held) if r is not None))
    settled_nano = sum(to_nano(a) for a in actuals.values())
    with redis_server.client() as client:
        counters = client.hgetall(scopes[0].key)
    assert int(counters[b"reserved"]) == 0
    assert int(counters[b"spent"]) == settled_nano
    for replica, redis in zip(replicas, shared, strict=True):
        (status,) = await replica.remaining("acme")
        assert to_nano(status.spent_usd) == settled_nano
        assert not replica.degraded
        await replica.aclose()
        await redis.aclose()


@pytest.mark.e2e
async def test_waiting_for_a_pooled_connection_is_not_an_outage_and_grants_no_hard_budget(
    redis_server: RedisServer,
) -> None:
    shared = SharedRedis(redis_server.url, timeout_s=3.0, pool_wait_s=0.05)
    await shared.connect()  # as at a gateway's start: the pool's connections are open
    budgets = RedisBudgets(shared, BudgetPolicy(CONFIG))
    scopes = budgets.policy.scopes_for("acme")
    # Every pooled connection is busy (blocking reads of an empty list for 1.5 s): a reservation must wait.
    busy = [asyncio.create_task(shared.client.blpop(["nothing"], timeout=1.5)) for _ in range(MAX_CONNECTIONS)]
    await asyncio.sleep(0.3)
    with pytest.raises(BudgetStoreUnavailable) as refused:
        await budgets.reserve(scopes, 0.1)
    assert refused.value.status_code == 503 and refused.value.code == "budget_store_unavailable"
    assert not shared.down and not budgets.degraded  # contention in this process says nothing about Redis
    await asyncio.gather(*busy)
    granted = await budgets.reserve(scopes, 0.1)
    assert granted.backend == "redis"
    await budgets.release(granted)
    await budgets.aclose()
    await shared.aclose()


@pytest.mark.e2e
async def test_redis_soft_flag_hard_refusal_and_idempotent_settle(redis_budgets: RedisBudgets) -> None:
    scopes = redis_budgets.policy.scopes_for("acme", "triage", "call-1")
    small = await redis_budgets.reserve(scopes, 0.04)
    assert small.soft_exceeded == ()
    with pytest.raises(BudgetExceeded) as refused:
        await redis_budgets.reserve(scopes, 0.02)  # 0.06 > the agent's per-call 0.05
    assert refused.value.scope_name == "call:acme:call-1"
    assert refused.value.reserved == pytest.approx(0.04)
    await redis_budgets.settle(small, 0.03)
    await redis_budgets.settle(small, 0.03)
    await redis_budgets.release(small)
    statuses = {s.kind: s for s in await redis_budgets.remaining("acme", "triage", "call-1")}
    assert statuses["call"].spent_usd == pytest.approx(0.03)
    assert statuses["call"].reserved_usd == 0
    assert statuses["tenant"].spent_usd == pytest.approx(0.03)

    tenant_scopes = redis_budgets.policy.scopes_for("acme")
    big = await redis_budgets.reserve(tenant_scopes, 0.6)
    assert big.soft_exceeded == ()  # soft limits compare settled spend
    await redis_budgets.settle(big, 0.6)
    assert (await redis_budgets.reserve(tenant_scopes, 0.01)).soft_exceeded == (tenant_scopes[0].name,)


@pytest.mark.e2e
async def test_redis_window_keys_expire(redis_server: RedisServer) -> None:
    config = BudgetConfig.model_validate(
        {
            "call_ttl_s": 30,
            "settle_grace_s": 60,
            "tenants": {"acme": {"daily": {"hard_usd": 5}, "per_call": {"hard_usd": 1}}},
        }
    )
    shared = SharedRedis(redis_server.url)
    budgets = RedisBudgets(shared, BudgetPolicy(config))
    reservation_time = time.time()
    daily, call = budgets.policy.scopes_for("acme", call_id="c")
    reservation = await budgets.reserve([daily, call], 0.1)
    await budgets.settle(reservation, 0.1)
    with redis_server.client() as client:
        assert client.expiretime(daily.key) == daily.expires_at
        now = datetime.now(UTC)
        end_of_day = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() + 86400
        assert daily.expires_at == int(end_of_day) + 60
        # Redis drops the call's budget call_ttl_s after its last reservation (not waited for: wall time is not
        # this test's to measure on a busy machine).
        assert client.expiretime(call.key) == call.expires_at
        assert 29 < call.expires_at - reservation_time <= 31
        assert client.keys("switchboard:budget:reservation:*") == []
    await budgets.aclose()
    await shared.aclose()


@pytest.mark.e2e
async def test_redis_outage_refuses_hard_limits_judges_soft_ones_and_catches_up(redis_server: RedisServer) -> None:
    config = BudgetConfig.model_validate(
        {"tenants": {"acme": {"daily": {"soft_usd": 0.5, "hard_usd": 1.0}}, "soft": {"daily": {"soft_usd": 0.1}}}}
    )
    shared = SharedRedis(redis_server.url, retry_after_s=0.1)  # refused at once while down
    budgets = RedisBudgets(shared, BudgetPolicy(config))
    scopes = budgets.policy.scopes_for("acme")
    soft_scopes = budgets.policy.scopes_for("soft")
    before = await budgets.reserve(scopes, 0.1)
    assert before.backend == "redis"

    await asyncio.to_thread(redis_server.stop)
    with pytest.raises(BudgetStoreUnavailable) as refused:  # no replica grants hard budget on its own
        await budgets.reserve(scopes, 0.01)
    assert refused.value.headers["retry-after"] == "1"
    assert budgets.degraded and shared.down
    with pytest.raises(BudgetStoreUnavailable):  # not even after the retry time, while Redis stays down
        await asyncio.sleep(0.15)
        await budgets.reserve(scopes, 0.01)
    soft = await budgets.reserve(soft_scopes, 0.2)  # soft-only budgets are judged in-process
    assert soft.backend == "local" and soft.soft_exceeded == ()
    await budgets.settle(before, 0.05)  # a Redis hold settled while Redis is down waits for it
    await budgets.settle(soft, 0.15)
    assert (await budgets.reserve(soft_scopes, 0.01)).soft_exceeded == (soft_scopes[0].name,)

    await asyncio.to_thread(redis_server.start)
    await asyncio.sleep(0.15)
    after = await budgets.reserve(scopes, 0.01)
    assert after.backend == "redis" and not shared.down
    await budgets.release(after)
    assert not budgets.degraded
    (daily,) = await budgets.remaining("acme")
    assert daily.spent_usd == pytest.approx(0.05)  # settled late, once
    assert daily.reserved_usd == 0
    (soft_daily,) = await budgets.remaining("soft")
    assert soft_daily.spent_usd == pytest.approx(0.15)  # spent during the outage, replayed to Redis
    await budgets.aclose()
    await shared.aclose()


async def _ledger_with_spend(path: Path, now: datetime) -> SQLiteLedgerSink:
    """A real SQLite ledger: acme's triage agent spent 0.30 today and 0.50 earlier this month, globex 0.20 today."""
    sink = SQLiteLedgerSink(path)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = [
        ("acme", "triage", now - timedelta(minutes=5), 0.30),
        ("acme", "triage", month_start if now.day > 1 else now - timedelta(minutes=10), 0.50),
        ("acme", "triage", month_start - timedelta(days=1), 9.00),  # last month: counts nowhere
        ("globex", None, now - timedelta(minutes=1), 0.20),
    ]
    await sink.write_batch(
        [
            LedgerRecord(request_id=f"r{n}", ts=ts, tenant=tenant, agent=agent, status=200, cost_usd=cost)
            for n, (tenant, agent, ts, cost) in enumerate(rows)
        ]
    )
    return sink


async def test_in_process_budgets_start_from_the_ledger(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    sink = await _ledger_with_spend(tmp_path / "ledger.sqlite3", now)
    budgets = InProcessBudgets(BudgetPolicy(CONFIG), sink)
    await budgets.rebuild()
    spent = {(s.kind, s.window): s.spent_usd for s in await budgets.remaining("acme", "triage")}
    today = 0.30 + (0.50 if now.day == 1 else 0.0)
    assert spent[("tenant", "daily")] == pytest.approx(today)
    assert spent[("tenant", "monthly")] == pytest.approx(0.80)
    assert spent[("agent", "daily")] == pytest.approx(today)
    await sink.aclose()


@pytest.mark.e2e
async def test_redis_emptied_is_reseeded_from_the_ledger_once(redis_server: RedisServer, tmp_path: Path) -> None:
    config = BudgetConfig.model_validate({"tenants": {"acme": {"monthly": {"hard_usd": 1.0}}}})
    sink = await _ledger_with_spend(tmp_path / "ledger.sqlite3", datetime.now(UTC))
    shared = SharedRedis(redis_server.url)
    budgets = RedisBudgets(shared, BudgetPolicy(config), spend=sink)
    await budgets.rebuild()
    scopes = budgets.policy.scopes_for("acme")
    with pytest.raises(BudgetExceeded):
        await budgets.reserve(scopes, 0.25)  # 0.80 settled this month + 0.25 > 1.00
    held = await budgets.reserve(scopes, 0.15)
    await budgets.settle(held, 0.10)
    with redis_server.client() as client:
        client.flushall()  # Redis loses everything
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.reserve(scopes, 0.25)
    assert refused.value.spent == pytest.approx(0.80)  # reseeded from the ledger (the 0.10 turn was not recorded)
    await budgets.reserve(scopes, 0.15)
    with redis_server.client() as client:
        client.hset(scopes[0].key, "spent", 0)  # a live Redis is never overwritten by a reseed
    await budgets.rebuild()
    (status,) = await budgets.remaining("acme")
    assert status.spent_usd == 0 and not budgets.degraded
    await budgets.aclose()
    await shared.aclose()
    await sink.aclose()


@pytest.mark.e2e
async def test_call_budgets_are_rebuilt_from_the_ledger_for_calls_still_active(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = BudgetConfig.model_validate(
        {
            "call_ttl_s": 3600,
            "tenants": {
                "acme": {"per_call": {"hard_usd": 0.3}, "agents": {"triage": {"per_call": {"hard_usd": 0.05}}}}
            },
        }
    )
    now = datetime.now(UTC)
    sink = SQLiteLedgerSink(tmp_path / "ledger.sqlite3")
    rows = [
        ("acme", None, "live", now - timedelta(hours=3), 0.10),  # a long call: its first turn is old ...
        ("acme", None, "live", now - timedelta(minutes=5), 0.15),  # ... but it is still active
        ("acme", "triage", "short", now - timedelta(minutes=1), 0.04),
        ("acme", None, "over", now - timedelta(hours=2), 0.29),  # last turn beyond call_ttl_s: the call is over
        ("acme", None, None, now - timedelta(minutes=1), 1.00),  # no call id: no call budget
    ]
    await sink.write_batch(
        [
            LedgerRecord(request_id=f"r{n}", ts=ts, tenant=tenant, agent=agent, call_id=call, status=200, cost_usd=cost)
            for n, (tenant, agent, call, ts, cost) in enumerate(rows)
        ]
    )
    policy = BudgetPolicy(config)
    in_process = InProcessBudgets(policy, sink)
    shared = SharedRedis(redis_server.url)
    redis_budgets = RedisBudgets(shared, policy, spend=sink)
    for budgets in (in_process, redis_budgets):
        await budgets.rebuild()
        (live,) = await budgets.remaining("acme", None, "live")
        assert live.spent_usd == pytest.approx(0.25)
        with pytest.raises(BudgetExceeded):
            await budgets.reserve(policy.scopes_for("acme", None, "live"), 0.06)  # 0.25 + 0.06 > 0.3
        with pytest.raises(BudgetExceeded):
            await budgets.reserve(policy.scopes_for("acme", "triage", "short"), 0.02)  # the agent's 0.05
        (over,) = await budgets.remaining("acme", None, "over")
        assert over.spent_usd == 0  # a call over for longer than call_ttl_s starts afresh
    (live_scope,) = policy.scopes_for("acme", None, "live")
    with redis_server.client() as client:
        expires = client.expiretime(live_scope.key)
    assert expires == int(rows[1][3].timestamp()) + 3600  # the call's budget lives call_ttl_s past its last turn
    await redis_budgets.aclose()
    await shared.aclose()
    await sink.aclose()
