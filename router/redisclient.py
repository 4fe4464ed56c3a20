"""The gateway's one Redis connection (one client, one bounded pool) and its one degrade policy.

Every role that uses Redis (call state, budgets, rate limits) shares one ``SharedRedis``, built by the composition
root (``router/services.py``), and runs its operations through ``SharedRedis.run``. Whether Redis is reachable is
decided there, once, for all of them: an operation that fails with no command answered since it began marks Redis
down for ``retry_after_s`` (every role skips it meanwhile, so an outage costs one timeout, not one per role per
turn); the next operation after that, or the background ping, tries again, and its success marks it up. Contention
is not an outage: a burst of turns queues for the pool (up to ``pool_wait_s``), and a wait that runs out, or a
command that fails while others are answered (a connect storm on a starved CPU), fails only that operation.

What each role does while Redis is down (``DEGRADE_POLICY``, shown by ``/readyz`` and the README):

- keys: not in Redis at all; the system of record answers (503 if it is down too, never open).
- budgets: a turn charged to a hard limit is refused with 503 (``budget_store_unavailable``): no replica grants hard
  budget from its own counters. Soft-only budgets are judged on the ledger's settled spend.
- rate limits: counted in-process, so each replica enforces the key's limit on its own (at most N x the limit with N
  replicas) until Redis returns.
- call state: in-process, best effort (a call that moves between replicas loses its history).
- ledger: not in Redis at all; the database, or the local fsync'd spool while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Literal, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# A burst of concurrent turns must queue for a pooled connection, not open hundreds at once: a connect storm
# times out and would push every component into its degraded mode for nothing.
MAX_CONNECTIONS = 64

Role = Literal["keys", "budgets", "rate_limits", "state", "ledger"]

DEGRADE_POLICY: Mapping[Role, str] = MappingProxyType(
    {
        "keys": "system of record (503 if it is down too)",
        "budgets": "hard limits answer 503; soft limits judged on the ledger's settled spend",
        "rate_limits": "counted in-process (per replica)",
        "state": "in-process call state (best effort)",
        "ledger": "database, else the local spool",
    }
)

# What a Redis operation raises when Redis is unreachable, slow or the pool is exhausted (TimeoutError is an OSError).
REDIS_ERRORS = (RedisError, OSError)


T = TypeVar("T")


def decoded(reply: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class RedisUnavailable(Exception):
    """A role's Redis operation did not run or failed; the role applies its degrade policy.

    ``outage`` is False when the failure was local contention (a pool wait that ran out, or a command that failed
    while Redis answered other commands of this process meanwhile, such as a connect storm on a starved CPU).
    """

    def __init__(self, outage: bool) -> None:
        super().__init__("redis is unreachable" if outage else "redis did not answer this operation in time")
        self.outage = outage


class PoolExhausted(RedisConnectionError):
    """No pooled connection became free in time: contention in this process, not evidence that Redis is down."""


class _Pool(BlockingConnectionPool):
    """A blocking pool whose wait timeout raises ``PoolExhausted``, so it can be told apart from an outage."""

    async def get_connection(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise PoolExhausted("no pooled Redis connection became free in time") from exc
            raise


def redis_client(redis_url: str, timeout_s: float, *, pool_wait_s: float | None = None) -> Redis:
    """A client over a bounded pool: each command fails after ``timeout_s``; a caller waits up to ``pool_wait_s``
    (default ``timeout_s``) for a free connection."""
    pool = _Pool.from_url(
        redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_s if pool_wait_s is None else pool_wait_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it


class SharedRedis:
    """One Redis client for every role, and the one record of whether Redis is reachable.

    Every role sends its operations through ``run(role, operation)``, which raises ``RedisUnavailable`` instead of
    a Redis error. Redis is marked down (for every role, retried after ``retry_after_s``) only by a failure with no
    successful command since that operation began: a pool wait that runs out, or a connect that times out while
    other commands are answered, fails that operation alone. ``on_change(up)`` is called when reachability changes
    (the metrics gauge).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 1.0,
        pool_wait_s: float = 5.0,
        retry_after_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.url = url
        self.client = redis_client(url, timeout_s, pool_wait_s=pool_wait_s)
        self.retry_after_s = retry_after_s
        self._on_change = on_change
        self._down_until = 0.0
        self._down_since: float | None = None
        self._answered_at = float("-inf")
        if on_change is not None:
            on_change(True)

    @property
    def usable(self) -> bool:
        """Whether to send an operation to Redis now (it is up, or its retry time has come)."""
        return time.monotonic() >= self._down_until

    @property
    def down(self) -> bool:
        """Whether the last attempt found Redis unreachable (until an operation succeeds again)."""
        return self._down_since is not None

    @property
    def down_for_s(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    async def run(self, role: Role | Literal["probe"], operation: Callable[[], Awaitable[T]]) -> T:
        """The result of one Redis operation of ``role``; ``RedisUnavailable`` if Redis is down (the operation is
        not tried until ``retry_after_s`` has passed) or the operation failed."""
        if not self.usable:
            raise RedisUnavailable(outage=True)
        return await self._attempt(role, operation)

    async def _attempt(self, role: Role | Literal["probe"], operation: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        try:
            result = await operation()
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(self._failed(role, exc, started)) from exc
        self._answered()
        return result

    async def connect(self) -> None:
        """Open the pool's connections one after another now, at start: a burst of turns on a cold replica would
        otherwise open them all at once, and on a starved CPU such a connect storm times out like an outage."""
        pool = self.client.connection_pool
        opened = []
        try:
            for _ in range(pool.max_connections):
                opened.append(await self.run("probe", pool.get_connection))
        except RedisUnavailable:
            pass  # Redis is down at start: the roles degrade until the background ping finds it
        finally:
            for connection in opened:
                await pool.release(connection)

    async def watch(self) -> None:
        """While Redis is down, ping it every ``retry_after_s``, so it is found back (and ``/readyz`` and the
        gauge say so) within that time even when no turn arrives to try it."""
        while True:
            await asyncio.sleep(self.retry_after_s)
            if self.down:  # probed whether or not its retry time has come: this is the retry
                with contextlib.suppress(RedisUnavailable):
                    await self._attempt("probe", self.client.ping)

    def _failed(self, role: Role | Literal["probe"], exc: BaseException, started: float) -> bool:
        """Note a failed operation; True if it means Redis is unreachable (then it is marked down)."""
        if isinstance(exc, PoolExhausted) or self._answered_at > started:
            logger.info("%s: a Redis command failed under contention (%s); it degrades alone", role, exc)
            return False
        self._down_until = time.monotonic() + self.retry_after_s
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning("redis unreachable (%s, seen by %s): %s", type(exc).__name__, role, exc)
            if self._on_change is not None:
                self._on_change(False)
        return True

    def _answered(self) -> None:
        self._answered_at = time.monotonic()
        self._down_until = 0.0
        if self._down_since is not None:
            logger.info("redis reachable again after %.1f s", self.down_for_s)
            self._down_since = None
            if self._on_change is not None:
                self._on_change(True)

    async def aclose(self) -> None:
        await self.client.aclose()
