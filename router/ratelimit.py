"""Requests and tokens per minute per virtual key, in fixed one-minute windows (UTC minutes).

With Redis the counters are shared by every replica: one Lua call checks a counter and, if the amount still
fits, adds it (INCRBY) and sets its expiry, atomically. Without Redis, or while it is unreachable (``SharedRedis``'s
one degrade policy), the counters are this process's own (limits then hold per replica, so at most N x the limit
with N replicas); a Redis failure never fails a request. A refused amount is not counted, so a request larger than
the whole limit is refused without using up the window.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal

from router.errors import RateLimited
from router.keys import KeyRing
from router.redisclient import RedisUnavailable, SharedRedis
from router.types import Caller

WINDOW_SECONDS = 60
LimitName = Literal["rpm", "tpm"]

# KEYS[1] counter. ARGV[1] amount, ARGV[2] limit, ARGV[3] TTL in seconds (relative, so the clocks of replicas
# and Redis need not agree). Returns {admitted, count}.
_ADMIT_LUA = """
local amount = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current + amount > tonumber(ARGV[2]) then return {0, current} end
local count = redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, count}
"""


class InProcessCounters:
    """Counters of the current window in this process; a new window starts them all from zero."""

    def __init__(self) -> None:
        self._window = -1
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, window: int, amount: int, limit: int) -> bool:
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            count = self._counts.get(key, 0)
            if count + amount > limit:
                return False
            self._counts[key] = count + amount
            return True


class RateLimiter:
    """RPM and TPM of virtual keys (a key's ``rpm``/``tpm``; keyless callers are not limited here).

    ``admit_request(caller)`` counts one request against the key's RPM (the authenticator calls it for every
    authenticated request); ``check(caller, estimated_tokens)`` counts a chat turn's tokens against its TPM.
    Both raise ``RateLimited`` (429, ``param`` ``rpm``/``tpm``, ``Retry-After`` until the window ends).
    """

    def __init__(
        self,
        keys: KeyRing,
        redis: SharedRedis | None = None,
        *,
        key_prefix: str = "switchboard:ratelimit",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._redis = redis
        self._script = redis.client.register_script(_ADMIT_LUA) if redis is not None else None
        self._prefix = key_prefix
        self._clock = clock
        self._local = InProcessCounters()

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but unreachable, so limits hold per replica."""
        return self._redis is not None and self._redis.down

    async def admit_request(self, caller: Caller) -> None:
        await self._admit(caller, "rpm", 1)

    async def check(self, caller: Caller, estimated_tokens: int) -> None:
        """The gateway's hook once a turn's token estimate is known: refuse it if the key's TPM cannot fit it."""
        await self._admit(caller, "tpm", max(estimated_tokens, 0))

    async def _admit(self, caller: Caller, name: LimitName, amount: int) -> None:
        record = await self._keys.record(caller.key_id) if caller.key_id else None
        limit: int | None = getattr(record, name) if record is not None else None
        if limit is None:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        window_end = (window + 1) * WINDOW_SECONDS
        counter = f"{self._prefix}:{caller.key_id}:{name}:{window}"
        # The counter outlives its window by another window, so replicas whose clocks lag a little still count into it.
        ttl_s = math.ceil(window_end - now) + WINDOW_SECONDS
        if not await self._admitted(counter, window, ttl_s, amount, limit):
            unit = "requests" if name == "rpm" else "tokens"
            if amount > limit:
                raise RateLimited(
                    f"this request needs {amount} {unit}, more than the key's limit of {limit} per minute",
                    param=name,
                )
            raise RateLimited(
                f"rate limit of {limit} {unit} per minute reached for key {caller.key_id}; retry after the window ends",
                param=name,
                headers={"retry-after": str(max(1, math.ceil(window_end - now)))},
            )

    async def _admitted(self, counter: str, window: int, ttl_s: int, amount: int, limit: int) -> bool:
        script = self._script
        if script is not None and self._redis is not None:
            try:
                admitted, _ = await self._redis.run(
                    "rate_limits", lambda: script(keys=[counter], args=[amount, limit, ttl_s])
                )
            except RedisUnavailable:
                pass  # the degrade policy: counted in-process
            else:
                return bool(admitted)
        return self._local.admit(counter, window, amount, limit)
