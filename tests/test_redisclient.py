"""The shared Redis client's view of reachability, against a real redis-server stopped and started again."""

from __future__ import annotations

import asyncio
import time

import pytest

from router.redisclient import RedisUnavailable, SharedRedis
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e


async def test_redis_is_marked_down_once_and_found_back_without_traffic() -> None:
    changes: list[bool] = []
    with RedisServer() as server:
        shared = SharedRedis(server.url, retry_after_s=1.0, on_change=changes.append)
        await shared.connect()
        watch = asyncio.create_task(shared.watch())
        assert await shared.run("state", shared.client.ping)
        await asyncio.to_thread(server.stop, True)
        with pytest.raises(RedisUnavailable) as failed:
            await shared.run("state", shared.client.ping)
        assert failed.value.outage and shared.down
        with pytest.raises(RedisUnavailable):  # every role skips Redis until the retry time: no second timeout
            await shared.run("budgets", shared.client.ping)
        await asyncio.to_thread(server.start)
        back = time.monotonic()
        while shared.down and time.monotonic() - back < 5:
            await asyncio.sleep(0.05)
        found_back_s = time.monotonic() - back
        watch.cancel()
        await shared.aclose()
    assert not shared.down
    assert found_back_s <= 1.0 + 0.5  # the background ping, one retry interval (+ a ping on a busy machine)
    assert changes == [True, False, True]
