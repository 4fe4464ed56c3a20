"""The one way the gateway opens Redis: asyncio, bounded pool, fail fast so callers can degrade at once."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# A burst of concurrent turns must queue for a pooled connection, not open hundreds at once: a connect storm
# times out and would push every component into its degraded in-process mode for nothing.
MAX_CONNECTIONS = 64


def redis_client(redis_url: str, timeout_s: float) -> Redis:
    pool = BlockingConnectionPool.from_url(
        redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it
