"""What the gateway remembers between turns: per-call state and per-caller memory.

Redis when configured (TTL-bounded, shared by every replica, updated atomically), else a bounded in-process
store. While Redis is unreachable (``SharedRedis``'s one degrade policy) the in-process store answers, best effort.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.policy.facts import HIGH_STAKES_MARK, CallFacts
from router.redisclient import RedisUnavailable, SharedRedis

DEFAULT_CALL_TTL_SECONDS = 4 * 3600
DAY_SECONDS = 86400.0


@dataclass(slots=True)
class CallRecord:
    """A call so far: turns served, the highest tier used and when it was reached, risks seen."""

    turns: int = 0
    max_tier: str | None = None
    max_rank: int = -1
    escalated_at_turn: int | None = None
    risks_seen: set[str] = field(default_factory=set)
    updated_at: float = 0.0

    def add_turn(self, tier: str, tier_rank: int, risks: Iterable[str]) -> None:
        """Count a turn: the call escalates when its tier ranks above every earlier turn's. The one rule for the
        in-process store and the replay; ``_RECORD_TURN`` applies it in Redis, held to it by tests/test_state.py."""
        self.turns += 1
        if tier_rank > self.max_rank:
            self.max_rank, self.max_tier, self.escalated_at_turn = tier_rank, tier, self.turns
        self.risks_seen.update(risks)

    def facts(self, caller_open_complaint: bool) -> CallFacts:
        return CallFacts(
            turn=self.turns + 1,
            max_tier=self.max_tier,
            escalated_at_turn=self.escalated_at_turn,
            risks_seen=frozenset(self.risks_seen - {HIGH_STAKES_MARK}),
            caller_open_complaint=caller_open_complaint,
            high_stakes_seen=HIGH_STAKES_MARK in self.risks_seen,
        )


class StateStore(Protocol):
    async def load_call(self, tenant: str, call_id: str) -> CallRecord: ...

    async def record_turn(self, tenant: str, call_id: str, tier: str, tier_rank: int, risks: Iterable[str]) -> None: ...

    async def caller_complained_within(self, tenant: str, caller_id: str, days: float) -> bool: ...

    async def note_complaint(self, tenant: str, caller_id: str) -> None: ...

    @property
    def degraded(self) -> bool: ...

    async def aclose(self) -> None: ...


class InProcessState:
    """Bounded LRU with TTL: old calls are forgotten first, so memory stays flat under any traffic."""

    def __init__(self, max_calls: int = 100_000, call_ttl_seconds: float = DEFAULT_CALL_TTL_SECONDS) -> None:
        self._calls: OrderedDict[tuple[str, str], CallRecord] = OrderedDict()
        self._complaints: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_calls
        self._ttl = call_ttl_seconds

    @property
    def degraded(self) -> bool:
        return False

    def _call(self, tenant: str, call_id: str) -> CallRecord:
        key = (tenant, call_id)
        record = self._calls.get(key)
        now = time.time()
        if record is None or now - record.updated_at > self._ttl:
            record = CallRecord(updated_at=now)
            self._calls[key] = record
        self._calls.move_to_end(key)
        while len(self._calls) > self._max:
            self._calls.popitem(last=False)
        return record

    async def load_call(self, tenant: str, call_id: str) -> CallRecord:
        record = self._calls.get((tenant, call_id))
        if record is None or time.time() - record.updated_at > self._ttl:
            return CallRecord()
        return record

    async def record_turn(self, tenant: str, call_id: str, tier: str, tier_rank: int, risks: Iterable[str]) -> None:
        record = self._call(tenant, call_id)
        record.add_turn(tier, tier_rank, risks)
        record.updated_at = time.time()

    async def caller_complained_within(self, tenant: str, caller_id: str, days: float) -> bool:
        at = self._complaints.get((tenant, caller_id))
        return at is not None and time.time() - at <= days * DAY_SECONDS

    async def note_complaint(self, tenant: str, caller_id: str) -> None:
        key = (tenant, caller_id)
        self._complaints[key] = time.time()
        self._complaints.move_to_end(key)
        while len(self._complaints) > self._max:
            self._complaints.popitem(last=False)

    async def aclose(self) -> None:
        return None


# One round trip, atomic across replicas: count the turn, keep the highest tier, collect risks, refresh TTL.
_RECORD_TURN = """
local turns = redis.call('HINCRBY', KEYS[1], 'turns', 1)
local max_rank = tonumber(redis.call('HGET', KEYS[1], 'max_rank') or '-1')
if tonumber(ARGV[2]) > max_rank then
  redis.call('HSET', KEYS[1], 'max_rank', ARGV[2], 'max_tier', ARGV[1], 'escalated_at', turns)
end
if #ARGV > 3 then redis.call('SADD', KEYS[2], unpack(ARGV, 4)) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return turns
"""


class RedisState:
    """Call state in Redis; the in-process store answers while Redis is unreachable. The client is shared and
    closed by its owner."""

    def __init__(
        self,
        redis: SharedRedis,
        fallback: InProcessState | None = None,
        call_ttl_seconds: float = DEFAULT_CALL_TTL_SECONDS,
        prefix: str = "switchboard",
    ) -> None:
        self._shared = redis
        self._redis = redis.client
        self._fallback = fallback or InProcessState(call_ttl_seconds=call_ttl_seconds)
        self._ttl = max(1, round(call_ttl_seconds))
        self._prefix = prefix
        self._script = self._redis.register_script(_RECORD_TURN)

    @property
    def degraded(self) -> bool:
        return self._shared.down

    def _keys(self, tenant: str, call_id: str) -> tuple[str, str]:
        base = f"{self._prefix}:call:{tenant}:{call_id}"
        return base, f"{base}:risks"

    async def load_call(self, tenant: str, call_id: str) -> CallRecord:
        call_key, risks_key = self._keys(tenant, call_id)

        async def load() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(call_key)
                pipe.smembers(risks_key)
                return await pipe.execute()

        try:
            fields, risks = await self._shared.run("state", load)
        except RedisUnavailable:
            return await self._fallback.load_call(tenant, call_id)
        if not fields:
            return CallRecord()
        text = {k.decode(): v.decode() for k, v in fields.items()}
        return CallRecord(
            turns=int(text.get("turns", 0)),
            max_tier=text.get("max_tier"),
            max_rank=int(text.get("max_rank", -1)),
            escalated_at_turn=int(text["escalated_at"]) if "escalated_at" in text else None,
            risks_seen={r.decode() for r in risks},
        )

    async def record_turn(self, tenant: str, call_id: str, tier: str, tier_rank: int, risks: Iterable[str]) -> None:
        risks = list(risks)
        keys = list(self._keys(tenant, call_id))
        try:
            await self._shared.run("state", lambda: self._script(keys=keys, args=[tier, tier_rank, self._ttl, *risks]))
        except RedisUnavailable:
            await self._fallback.record_turn(tenant, call_id, tier, tier_rank, risks)

    def _complaint_key(self, tenant: str, caller_id: str) -> str:
        return f"{self._prefix}:caller:{tenant}:{caller_id}:complaint"

    async def caller_complained_within(self, tenant: str, caller_id: str, days: float) -> bool:
        try:
            at = await self._shared.run("state", lambda: self._redis.get(self._complaint_key(tenant, caller_id)))
        except RedisUnavailable:
            return await self._fallback.caller_complained_within(tenant, caller_id, days)
        return at is not None and time.time() - float(at) <= days * DAY_SECONDS

    async def note_complaint(self, tenant: str, caller_id: str) -> None:
        # Kept for 90 days: policies choose their own window (caller_memory_days) within it.
        key, ttl_s = self._complaint_key(tenant, caller_id), int(90 * DAY_SECONDS)
        try:
            await self._shared.run("state", lambda: self._redis.set(key, time.time(), ex=ttl_s))
        except RedisUnavailable:
            await self._fallback.note_complaint(tenant, caller_id)

    async def aclose(self) -> None:
        return None  # the shared client is closed by the composition root
