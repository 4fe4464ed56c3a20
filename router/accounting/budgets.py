"""Spend limits per tenant, per agent and per call, enforced by reserving a request's worst-case cost.

Flow per request: ``policy.scopes_for(tenant, agent, call_id)`` names the budgets that apply;
``reserve(scopes, max_cost)`` holds the request's upper-bound cost on every scope at once, or raises
``BudgetExceeded`` if any hard limit would be passed; the reservation reports crossed soft limits
(the gateway downgrades the tier); ``settle(reservation, actual)`` swaps the hold for the real cost,
``release(reservation)`` drops it when the request failed.

Windows are UTC calendar days and months; a call's budget covers the whole call and lives
``call_ttl_s`` after its last request. Counters are kept in integer nano-dollars, so sums are exact
(Lua numbers are doubles, exact for integers up to 2**53 nano-USD, about 9 million USD).

The ledger is the system of record of settled spend; counters are rebuilt from it (``rebuild()``) at start,
before the first reservation, and whenever Redis turns out to have lost them, so neither a restart nor a
Redis flush grants a fresh budget: tenant and agent windows from the ledger's daily sums, call budgets from the
records of every call active within ``call_ttl_s``.

With Redis configured, hard limits are enforced only in Redis (shared by every replica): while Redis is
unreachable a turn charged to a hard limit is refused with 503 (``BudgetStoreUnavailable``), never granted from
one replica's own counters. Soft-only budgets are then judged in-process on the ledger's settled spend.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Protocol, Self
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.accounting.ledger import CallSpend, SpendRow
from router.errors import GatewayError
from router.redisclient import RedisUnavailable, SharedRedis

logger = logging.getLogger(__name__)

NANO_PER_USD = 10**9
Window = Literal["daily", "monthly", "call"]
ScopeKind = Literal["tenant", "agent", "call"]


def to_nano(usd: float | Decimal) -> int:
    return int((Decimal(str(usd)) * NANO_PER_USD).to_integral_value(ROUND_HALF_UP))


def to_usd(nano: int) -> float:
    return nano / NANO_PER_USD


class BudgetLimit(BaseModel):
    """A soft limit (crossing it downgrades) and/or a hard one (requests past it are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    soft_usd: float | None = Field(default=None, ge=0)
    hard_usd: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.soft_usd is None and self.hard_usd is None:
            raise ValueError("a budget needs soft_usd, hard_usd or both")
        if self.soft_usd is not None and self.hard_usd is not None and self.soft_usd > self.hard_usd:
            raise ValueError("soft_usd must not exceed hard_usd")
        return self


class ScopeLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    daily: BudgetLimit | None = None
    monthly: BudgetLimit | None = None
    per_call: BudgetLimit | None = None


class TenantBudget(ScopeLimits):
    """A tenant's limits, its agents' limits, and limits for agents not listed."""

    agents: dict[str, ScopeLimits] = Field(default_factory=dict)
    default_agent: ScopeLimits | None = None


class BudgetConfig(BaseModel):
    """The ``budgets:`` section of the gateway YAML.

    A call's limit is the agent's ``per_call`` if set, else the tenant's: both count the same spend,
    so only the more specific one applies.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[str, TenantBudget] = Field(default_factory=dict)
    default_tenant: TenantBudget | None = None
    call_ttl_s: int = Field(default=86400, gt=0)
    # Window counters outlive their window this long so requests in flight at midnight still settle.
    settle_grace_s: int = Field(default=3600, ge=0)
    # A reservation not settled within this long (crashed replica) is forgotten; its hold stays
    # counted until the window's counters expire.
    reservation_ttl_s: int = Field(default=3600, gt=0)
    key_prefix: str = "switchboard:budget"


class BudgetScope(BaseModel):
    """One counter a request is charged to, with its limits and when the counter expires."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str
    kind: ScopeKind
    window: Window
    soft_usd: float | None
    hard_usd: float | None
    expires_at: int  # unix seconds

    @property
    def hard_nano(self) -> int | None:
        return None if self.hard_usd is None else to_nano(self.hard_usd)


class Reservation(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    scopes: tuple[BudgetScope, ...]
    amount_usd: float
    soft_exceeded: tuple[str, ...] = ()
    # Which store holds the reservation, so it is settled where it was made even if Redis came back.
    backend: Literal["redis", "local"]

    @property
    def amount_nano(self) -> int:
        return to_nano(self.amount_usd)


class BudgetStatus(BaseModel):
    """One budget's state, for ``/v1/budgets`` and the remaining-budget metric."""

    scope: str
    kind: ScopeKind
    window: Window
    soft_usd: float | None
    hard_usd: float | None
    spent_usd: float
    reserved_usd: float
    remaining_usd: float | None
    soft_exceeded: bool
    resets_at: datetime | None


class BudgetExceeded(Exception):
    def __init__(self, scope_name: str, limit: float, spent: float, reserved: float = 0.0, requested: float = 0.0):
        self.scope_name = scope_name
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.requested = requested
        super().__init__(
            f"budget {scope_name} exhausted: {spent:.6f} spent + {reserved:.6f} reserved + "
            f"{requested:.6f} requested > {limit:.6f} USD"
        )


def _escape(identifier: str) -> str:
    # Keeps ':' out of ids so ("a:b", "c") and ("a", "b:c") never share a key.
    return quote(identifier, safe="")


def _window_bounds(window: Window, now: datetime) -> tuple[str, datetime]:
    """The window's label and its end (exclusive)."""
    if window == "daily":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)
    days = calendar.monthrange(now.year, now.month)[1]
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m"), start + timedelta(days=days)


class BudgetPolicy:
    """Which budget scopes apply to a request, from the configuration."""

    def __init__(self, config: BudgetConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    @property
    def has_call_limits(self) -> bool:
        """Whether any tenant or agent has a per-call budget (else the ledger's calls need not be read)."""
        tenants = [*self.config.tenants.values(), *([self.config.default_tenant] if self.config.default_tenant else [])]
        return any(
            limits.per_call is not None
            for tenant in tenants
            for limits in (tenant, *tenant.agents.values(), *([tenant.default_agent] if tenant.default_agent else []))
        )

    def _tenant(self, tenant: str) -> TenantBudget | None:
        return self.config.tenants.get(tenant, self.config.default_tenant)

    def _agent(self, tenant_budget: TenantBudget | None, agent: str | None) -> ScopeLimits | None:
        if tenant_budget is None or agent is None:
            return None
        return tenant_budget.agents.get(agent, tenant_budget.default_agent)

    def _windowed(self, kind: ScopeKind, owner: str, limits: ScopeLimits, now: datetime) -> list[BudgetScope]:
        scopes = []
        for window in ("daily", "monthly"):
            limit: BudgetLimit | None = getattr(limits, window)
            if limit is None:
                continue
            label, end = _window_bounds(window, now)
            name = f"{kind}:{owner}:{window}:{label}"
            scopes.append(
                BudgetScope(
                    name=name,
                    key=f"{self.config.key_prefix}:{name}",
                    kind=kind,
                    window=window,
                    soft_usd=limit.soft_usd,
                    hard_usd=limit.hard_usd,
                    expires_at=int(end.timestamp()) + self.config.settle_grace_s,
                )
            )
        return scopes

    def scopes_for(
        self, tenant: str, agent: str | None = None, call_id: str | None = None, now: datetime | None = None
    ) -> list[BudgetScope]:
        """The scopes a request is charged to: tenant and agent windows, and the call's budget."""
        now = now or datetime.fromtimestamp(self.clock(), UTC)
        tenant_budget = self._tenant(tenant)
        agent_limits = self._agent(tenant_budget, agent)
        scopes: list[BudgetScope] = []
        if tenant_budget is not None:
            scopes += self._windowed("tenant", _escape(tenant), tenant_budget, now)
        if agent_limits is not None:
            assert agent is not None
            scopes += self._windowed("agent", f"{_escape(tenant)}:{_escape(agent)}", agent_limits, now)
        call_limit = next(
            (limits.per_call for limits in (agent_limits, tenant_budget) if limits and limits.per_call),
            None,
        )
        if call_limit is not None and call_id is not None:
            name = f"call:{_escape(tenant)}:{_escape(call_id)}"
            scopes.append(
                BudgetScope(
                    name=name,
                    key=f"{self.config.key_prefix}:{name}",
                    kind="call",
                    window="call",
                    soft_usd=call_limit.soft_usd,
                    hard_usd=call_limit.hard_usd,
                    expires_at=int(now.timestamp()) + self.config.call_ttl_s,
                )
            )
        return scopes

    def status(self, scope: BudgetScope, spent_nano: int, reserved_nano: int) -> BudgetStatus:
        committed = spent_nano + reserved_nano
        remaining = None if scope.hard_usd is None else to_usd(max(to_nano(scope.hard_usd) - committed, 0))
        return BudgetStatus(
            scope=scope.name,
            kind=scope.kind,
            window=scope.window,
            soft_usd=scope.soft_usd,
            hard_usd=scope.hard_usd,
            spent_usd=to_usd(spent_nano),
            reserved_usd=to_usd(reserved_nano),
            remaining_usd=remaining,
            soft_exceeded=scope.soft_usd is not None and spent_nano > to_nano(scope.soft_usd),
            resets_at=(
                None
                if scope.window == "call"
                else datetime.fromtimestamp(scope.expires_at - self.config.settle_grace_s, UTC)
            ),
        )


class SpendSource(Protocol):
    """The system of record's settled spend (the ledger sink)."""

    async def settled_spend(self, since: datetime) -> list[SpendRow]: ...

    async def call_spend(self, active_since: datetime) -> list[CallSpend]: ...


def settled_by_scope(
    policy: BudgetPolicy, rows: Sequence[SpendRow], now: datetime, calls: Sequence[CallSpend] = ()
) -> dict[str, tuple[BudgetScope, int]]:
    """The settled spend (nano-USD) of each current tenant and agent window, from the ledger's daily sums, and of
    each call still within ``call_ttl_s`` of its last record (its budget expiring that long after it)."""
    today = now.strftime("%Y-%m-%d")
    totals: dict[str, tuple[BudgetScope, int]] = {}
    for row in rows:
        for scope in policy.scopes_for(row.tenant, row.agent, None, now):
            if scope.window == "daily" and row.day != today:
                continue
            _, spent = totals.get(scope.key, (scope, 0))
            totals[scope.key] = (scope, spent + to_nano(row.cost_usd))
    ttl_s = policy.config.call_ttl_s
    for call in calls:
        expires_at = int(call.last_ts.timestamp()) + ttl_s
        if expires_at <= now.timestamp():
            continue
        for scope in policy.scopes_for(call.tenant, call.agent, call.call_id, now):
            if scope.kind != "call":
                continue
            kept, spent = totals.get(scope.key, (scope, 0))
            scope = scope.model_copy(update={"expires_at": max(expires_at, kept.expires_at if spent else 0)})
            totals[scope.key] = (scope, spent + to_nano(call.cost_usd))
    return totals


async def ledger_spend(policy: BudgetPolicy, source: SpendSource) -> dict[str, tuple[BudgetScope, int]]:
    """The settled spend of the current windows (this month, so today too) and of the calls active within
    ``call_ttl_s``, according to the ledger."""
    now = datetime.fromtimestamp(policy.clock(), UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    calls: list[CallSpend] = []
    if policy.has_call_limits:
        calls = await source.call_spend(now - timedelta(seconds=policy.config.call_ttl_s))
    return settled_by_scope(policy, await source.settled_spend(month_start), now, calls)


def _soft_exceeded(scopes: Sequence[BudgetScope], spent_nano: Sequence[int]) -> tuple[str, ...]:
    """Soft limits compare settled spend: a turn is downgraded once money was spent, not for what it might cost."""
    return tuple(
        scope.name
        for scope, spent in zip(scopes, spent_nano, strict=True)
        if scope.soft_usd is not None and spent > to_nano(scope.soft_usd)
    )


class BudgetEnforcer(Protocol):
    policy: BudgetPolicy

    @property
    def degraded(self) -> bool: ...

    async def reserve(self, scopes: Sequence[BudgetScope], amount_usd: float | Decimal) -> Reservation:
        """Hold ``amount_usd`` on every scope, or raise ``BudgetExceeded`` and hold nothing."""
        ...

    async def settle(self, reservation: Reservation, actual_usd: float | Decimal) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...

    async def remaining(
        self, tenant: str, agent: str | None = None, call_id: str | None = None
    ) -> list[BudgetStatus]: ...

    async def rebuild(self) -> None:
        """Take settled spend from the ledger (at start, before the first reservation)."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class _Counter:
    spent: int = 0
    reserved: int = 0
    expires_at: float = 0.0


class InProcessBudgets:
    """Budgets of this process alone: for a single replica, and the fallback while Redis is down.

    Every operation completes without awaiting, so it is atomic on the event loop; the lock also makes
    it safe from threads.
    """

    def __init__(self, policy: BudgetPolicy, spend: SpendSource | None = None) -> None:
        self.policy = policy
        self._spend = spend
        self._counters: dict[str, _Counter] = {}
        self._reservations: set[str] = set()
        self._lock = threading.Lock()

    async def rebuild(self) -> None:
        """Settled spend of the current windows := the ledger's (reservations in flight are kept)."""
        if self._spend is None:
            return
        settled = await ledger_spend(self.policy, self._spend)
        with self._lock:
            for key, (scope, spent) in settled.items():
                counter = self._counters.setdefault(key, _Counter())
                counter.spent = spent
                counter.expires_at = scope.expires_at

    @property
    def degraded(self) -> bool:
        return False

    def _counter(self, key: str) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= self.policy.clock():
            del self._counters[key]
            return None
        return counter

    def _sweep(self) -> None:
        now = self.policy.clock()
        for key in [k for k, c in self._counters.items() if c.expires_at <= now]:
            del self._counters[key]

    async def reserve(self, scopes: Sequence[BudgetScope], amount_usd: float | Decimal) -> Reservation:
        amount = to_nano(amount_usd)
        with self._lock:
            self._sweep()
            for scope in scopes:
                counter = self._counter(scope.key) or _Counter()
                hard = scope.hard_nano
                if hard is not None and counter.spent + counter.reserved + amount > hard:
                    raise BudgetExceeded(
                        scope.name,
                        to_usd(hard),
                        to_usd(counter.spent),
                        to_usd(counter.reserved),
                        to_usd(amount),
                    )
            spent = []
            for scope in scopes:
                counter = self._counters.setdefault(scope.key, _Counter())
                counter.reserved += amount
                counter.expires_at = scope.expires_at
                spent.append(counter.spent)
            reservation = Reservation(
                scopes=tuple(scopes),
                amount_usd=to_usd(amount),
                soft_exceeded=_soft_exceeded(scopes, spent),
                backend="local",
            )
            self._reservations.add(reservation.id)
            return reservation

    def _close(self, reservation: Reservation, actual_nano: int) -> None:
        with self._lock:
            if reservation.id not in self._reservations:
                return  # settled or released already
            self._reservations.discard(reservation.id)
            for scope in reservation.scopes:
                counter = self._counter(scope.key)
                if counter is None:
                    continue  # the window is over
                counter.reserved -= reservation.amount_nano
                counter.spent += actual_nano

    async def settle(self, reservation: Reservation, actual_usd: float | Decimal) -> None:
        self._close(reservation, to_nano(actual_usd))

    async def release(self, reservation: Reservation) -> None:
        self._close(reservation, 0)

    async def remaining(self, tenant: str, agent: str | None = None, call_id: str | None = None) -> list[BudgetStatus]:
        with self._lock:
            statuses = []
            for scope in self.policy.scopes_for(tenant, agent, call_id):
                counter = self._counter(scope.key) or _Counter()
                statuses.append(self.policy.status(scope, counter.spent, counter.reserved))
            return statuses

    async def aclose(self) -> None:
        return None


# Every script first checks the seed marker (KEYS[2]), set when the counters were rebuilt from the ledger:
# a Redis without it lost its data (or never had it), and answers -1 until a replica rebuilds them.

# KEYS[1] reservation key, KEYS[2] seed marker, KEYS[3..] scope counters (hashes with fields spent, reserved).
# ARGV[1] amount, ARGV[2] reservation TTL, then per scope: hard limit (-1: none), expiry (unix s).
# Checks every scope before touching any, so a refused request holds nothing anywhere. Idempotent per reservation
# id: a retry of a reservation that is held already (its first attempt's reply was lost) holds nothing more.
# Returns {-1} (not seeded), {0, failing scope index, spent, reserved} or {1, settled spend per scope...}.
_RESERVE_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
local amount = tonumber(ARGV[1])
local scopes = #KEYS - 2
local held = redis.call('EXISTS', KEYS[1]) == 1
if not held then
  for i = 1, scopes do
    local hard = tonumber(ARGV[1 + 2 * i])
    if hard >= 0 then
      local spent = tonumber(redis.call('HGET', KEYS[i + 2], 'spent') or '0')
      local reserved = tonumber(redis.call('HGET', KEYS[i + 2], 'reserved') or '0')
      if spent + reserved + amount > hard then
        return {0, i, spent, reserved}
      end
    end
  end
end
local result = {1}
for i = 1, scopes do
  local key = KEYS[i + 2]
  if not held then
    redis.call('HINCRBY', key, 'reserved', amount)
    redis.call('EXPIREAT', key, ARGV[2 + 2 * i])
  end
  result[i + 1] = tonumber(redis.call('HGET', key, 'spent') or '0')
end
if not held then redis.call('SET', KEYS[1], amount, 'EX', ARGV[2]) end
return result
"""

# KEYS[1] seed marker, KEYS[2..] scope counters. ARGV per scope: settled spend, expiry. Sets the settled
# spend of every scope and the marker, unless another replica seeded first. Returns 1 if it seeded.
_SEED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], 'spent', ARGV[2 * i - 3])
  redis.call('EXPIREAT', KEYS[i], ARGV[2 * i - 2])
end
redis.call('SET', KEYS[1], '1')
return 1
"""

# KEYS[1] reservation key, KEYS[2] seed marker, KEYS[3..] scope counters. ARGV[1] actual spend, ARGV[2] mode,
# ARGV[3..] expiry per scope. Mode 'redis': close a Redis reservation, whose key holds the amount held; a
# missing key means it was settled or released already. Mode '<ttl>': record spend held in-process
# while Redis was down; the key, kept ttl seconds, marks it recorded. Either way a replay is a no-op.
# Returns -1 (not seeded: the settlement waits for the rebuild), 0 (replay) or 1.
_SETTLE_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local held
if ARGV[2] == 'redis' then
  held = redis.call('GET', KEYS[1])
  if not held then return 0 end
  redis.call('DEL', KEYS[1])
else
  if not redis.call('SET', KEYS[1], '0', 'NX', 'EX', ARGV[2]) then return 0 end
  held = '0'
end
-- 0 - x rather than -x: Lua writes -0 as "-0", which HINCRBY rejects.
local release = 0 - tonumber(held)
for i = 3, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', release)
  redis.call('HINCRBY', KEYS[i], 'spent', ARGV[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[i])
end
return 1
"""


class SpendUnavailable(Exception):
    """The ledger cannot be read to rebuild Redis's counters: Redis is not used until it can."""


class BudgetStoreUnavailable(GatewayError):
    """Redis, where hard limits are enforced, cannot be reached: a hard budget is not granted blind (503)."""

    status_code = 503
    default_code = "budget_store_unavailable"


@dataclass(frozen=True)
class _PendingSettle:
    reservation: Reservation
    actual_nano: int
    seeding: int  # how many times Redis had been seeded from the ledger when the turn settled


class RedisBudgets:
    """Budgets shared by all gateway replicas through Redis, checked and held atomically in Lua.

    Redis's counters are seeded from the ledger by the first replica that finds them missing (a seed
    marker is absent), so a Redis restarted empty resumes from the settled spend, not from zero.

    While Redis is unreachable (the shared client's one degrade policy) a turn charged to any hard limit is refused
    with ``BudgetStoreUnavailable`` (503): no replica grants hard budget from its own counters, so an outage
    adds no overshoot. Turns charged to soft limits only are judged by an in-process copy of the ledger's settled
    spend (re-read at most every ``retry_after_s``). Settlements that could not reach Redis, and the spend of
    soft-only turns held in-process, are replayed to Redis once it answers again, idempotently; when Redis came
    back empty they are in the ledger it is reseeded from, so they are dropped.

    Outage allowance: a reservation lives in Redis, so turns in flight when Redis *loses its data* settle into
    counters reseeded from a ledger read that may predate their records; their spend (at most the turns in flight
    at that moment) is missing from the counters until the next rebuild.
    """

    def __init__(self, redis: SharedRedis, policy: BudgetPolicy, *, spend: SpendSource | None = None) -> None:
        self.policy = policy
        self._spend = spend
        self._shared = redis
        self._redis = redis.client
        self._reserve_script = self._redis.register_script(_RESERVE_LUA)
        self._settle_script = self._redis.register_script(_SETTLE_LUA)
        self._seed_script = self._redis.register_script(_SEED_LUA)
        self._fallback = InProcessBudgets(policy, spend)
        self._fallback_read_at = time.monotonic()
        self._pending: deque[_PendingSettle] = deque()
        self._replaying = asyncio.Lock()
        self._seeding = asyncio.Lock()
        self._seedings = 0
        self._seed_checks = 0

    @property
    def _marker(self) -> str:
        return f"{self.policy.config.key_prefix}:seeded"

    async def rebuild(self) -> None:
        """Seed Redis from the ledger unless it holds the counters already, and the fallback from the ledger."""
        await self._fallback.rebuild()
        self._fallback_read_at = time.monotonic()
        with contextlib.suppress(RedisUnavailable):  # seeded by the first reservation once Redis answers
            await self._shared.run("budgets", self._seed)

    async def _seed(self) -> None:
        checked = self._seed_checks
        async with self._seeding:
            if self._seed_checks != checked:
                return  # a concurrent caller checked (and seeded) while this one waited: one check per burst
            self._seed_checks += 1
            if await self._redis.exists(self._marker):
                return
            try:
                settled = await ledger_spend(self.policy, self._spend) if self._spend is not None else {}
            except Exception as exc:
                raise SpendUnavailable(f"cannot read settled spend from the ledger: {exc}") from exc
            keys, args = [self._marker], []
            for key, (scope, spent) in settled.items():
                keys.append(key)
                args += [spent, scope.expires_at]
            if await self._seed_script(keys=keys, args=args):
                logger.warning("budgets: Redis had no counters; rebuilt %d from the ledger", len(settled))
                self._seedings += 1

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable or settlements wait to be replayed to it."""
        return self._shared.down or bool(self._pending)

    def _reservation_key(self, reservation_id: str) -> str:
        return f"{self.policy.config.key_prefix}:reservation:{reservation_id}"

    async def _without_redis(self, scopes: Sequence[BudgetScope], amount_usd: float | Decimal) -> Reservation:
        """The degrade policy: refuse (503) a turn charged to a hard limit; judge soft-only ones in-process."""
        hard = next((scope for scope in scopes if scope.hard_usd is not None), None)
        if hard is not None:
            raise BudgetStoreUnavailable(
                f"the budget '{hard.name}' cannot be checked while the budget store (Redis) is unreachable; "
                "retry shortly",
                headers={"retry-after": str(max(1, round(self._shared.retry_after_s)))},
            )
        if time.monotonic() - self._fallback_read_at >= self._shared.retry_after_s:
            self._fallback_read_at = time.monotonic()
            try:
                await self._fallback.rebuild()  # other replicas' spend, as far as the ledger has it
            except Exception:
                logger.exception("budgets: could not re-read settled spend from the ledger")
        return await self._fallback.reserve(scopes, amount_usd)

    async def reserve(self, scopes: Sequence[BudgetScope], amount_usd: float | Decimal) -> Reservation:
        amount = to_nano(amount_usd)
        reservation_id = uuid.uuid4().hex
        args: list[int] = [amount, self.policy.config.reservation_ttl_s]
        for scope in scopes:
            hard = scope.hard_nano
            args += [-1 if hard is None else hard, scope.expires_at]
        keys = [self._reservation_key(reservation_id), self._marker, *(s.key for s in scopes)]

        async def hold() -> list[int]:
            result = await self._reserve_script(keys=keys, args=args)
            if result[0] == -1:
                await self._seed()
                result = await self._reserve_script(keys=keys, args=args)
            return [int(value) for value in result]

        try:
            try:
                result = await self._shared.run("budgets", hold)
            except RedisUnavailable as exc:
                if exc.outage:
                    raise
                result = await self._shared.run("budgets", hold)  # contention: once more (the script is idempotent)
        except RedisUnavailable:
            return await self._without_redis(scopes, amount_usd)
        except SpendUnavailable:
            logger.exception("budgets: Redis lost its counters and the ledger cannot be read to rebuild them")
            return await self._without_redis(scopes, amount_usd)
        await self._replay_pending()
        if result[0] == 0:
            _, index, spent, reserved = result
            scope = scopes[index - 1]
            raise BudgetExceeded(scope.name, scope.hard_usd or 0.0, to_usd(spent), to_usd(reserved), to_usd(amount))
        if result[0] == 1:
            return Reservation(
                id=reservation_id,
                scopes=tuple(scopes),
                amount_usd=to_usd(amount),
                soft_exceeded=_soft_exceeded(scopes, result[1:]),
                backend="redis",
            )
        # Still unseeded (Redis flushed again at once): treated as unreachable for this turn.
        return await self._without_redis(scopes, amount_usd)

    async def _apply(self, pending: _PendingSettle) -> None:
        reservation = pending.reservation
        if reservation.backend == "local" and pending.seeding != self._seedings:
            return  # spend settled in-process before Redis was reseeded is in the ledger it was seeded from
        mode = "redis" if reservation.backend == "redis" else str(self.policy.config.reservation_ttl_s)
        keys = [self._reservation_key(reservation.id), self._marker, *(s.key for s in reservation.scopes)]
        args: list[int | str] = [pending.actual_nano, mode, *(s.expires_at for s in reservation.scopes)]
        if await self._shared.run("budgets", lambda: self._settle_script(keys=keys, args=args)) == -1:
            # Redis lost its counters (and this reservation): rebuilt from the ledger, which will hold this
            # turn's record, so recording it again would count it twice.
            await self._shared.run("budgets", self._seed)

    async def _replay_pending(self) -> None:
        if not self._pending or self._replaying.locked():
            return
        async with self._replaying:
            while self._pending:
                try:
                    await self._apply(self._pending[0])
                except RedisUnavailable:
                    return
                except SpendUnavailable:
                    logger.exception("budgets: settlements wait until the ledger can be read")
                    return
                self._pending.popleft()

    async def _close(self, reservation: Reservation, actual_nano: int) -> None:
        if reservation.backend == "local":
            await self._fallback.settle(reservation, to_usd(actual_nano))
            if actual_nano == 0:
                return  # a released local hold never reached Redis; nothing to record there
        self._pending.append(_PendingSettle(reservation, actual_nano, self._seedings))
        if self._shared.usable:
            await self._replay_pending()

    async def settle(self, reservation: Reservation, actual_usd: float | Decimal) -> None:
        await self._close(reservation, to_nano(actual_usd))

    async def release(self, reservation: Reservation) -> None:
        await self._close(reservation, 0)

    async def remaining(self, tenant: str, agent: str | None = None, call_id: str | None = None) -> list[BudgetStatus]:
        scopes = self.policy.scopes_for(tenant, agent, call_id)

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.hmget(scope.key, "spent", "reserved")
                return await pipe.execute()

        try:
            counters = await self._shared.run("budgets", read)
        except RedisUnavailable:
            return await self._fallback.remaining(tenant, agent, call_id)
        return [
            self.policy.status(scope, int(spent or 0), int(reserved or 0))
            for scope, (spent, reserved) in zip(scopes, counters, strict=True)
        ]

    async def aclose(self) -> None:
        if self._shared.usable:
            await self._replay_pending()
