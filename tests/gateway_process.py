"""A real gateway process (``python -m router serve``) that tests can kill -9, and a mixed client load.

    with GatewayProcess(env) as gateway:
        delivered = asyncio.run(run_mixed_load([gateway.base_url], seconds=2.0, kill=gateway.kill))

``MixedLoad`` remembers what the clients actually received: the request id of every non-streamed 200 read in
full, and of every stream whose 200 and first byte arrived, so a test can hold the ledger to them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from router import headers as H
from tests.processes import free_port, wait_or_kill

MESSAGES = [{"role": "user", "content": "What time do you open on Saturday?"}]


class GatewayProcess:
    """``python -m router serve`` on a free port with ``env`` (SWITCHBOARD_* settings) on top of this one's."""

    def __init__(self, env: Mapping[str, str], log: Path | None = None) -> None:
        self.port = free_port()
        # Only this gateway's settings: none inherited from whatever ran before in this process.
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k not in ("REDIS_URL",)
        }
        inherited.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.env = {**inherited, **env, "SWITCHBOARD_PORT": str(self.port)}
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        output = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, "-m", "router", "serve"], env=self.env, stdout=output, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway on port {self.port} did not start (see {self.log})")
            time.sleep(0.2)

    def kill(self) -> None:
        """``kill -9``: no shutdown hook runs, nothing queued in memory is flushed."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            wait_or_kill(self._process, timeout_s=30)
            self._process = None

    def __enter__(self) -> GatewayProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class MixedLoad:
    """What the clients of a mixed streamed / non-streamed load received."""

    completed: set[str] = field(default_factory=set)  # non-streamed 200s read in full
    streamed: set[str] = field(default_factory=set)  # streams that delivered a 200 and at least one byte
    finished_streams: set[str] = field(default_factory=set)  # streams that reached data: [DONE]
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # exception name -> count, for diagnosis

    @property
    def delivered(self) -> set[str]:
        return self.completed | self.streamed


async def _one(client: httpx.AsyncClient, base: str, stream: bool, load: MixedLoad) -> None:
    body = {"model": "small", "messages": MESSAGES, "stream": stream}
    url = f"{base}/v1/chat/completions"
    load.requests += 1
    try:
        if not stream:
            response = await client.post(url, json=body)
            if response.status_code == 200:
                load.completed.add(response.headers[H.REQUEST_ID])
            return
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return
            request_id = response.headers[H.REQUEST_ID]
            async for chunk in response.aiter_bytes():
                if chunk:
                    load.streamed.add(request_id)
                if b"data: [DONE]" in chunk:
                    load.finished_streams.add(request_id)
    except httpx.HTTPError as exc:
        load.failures[type(exc).__name__] = load.failures.get(type(exc).__name__, 0) + 1
        await asyncio.sleep(0.05)  # a dead gateway refuses at once: do not spin


async def run_mixed_load(
    bases: Sequence[str],
    until: Callable[[MixedLoad], bool],
    *,
    concurrency: int = 16,
    kill: Callable[[], None] | None = None,
    after_s: float = 1.0,
    max_seconds: float = 180.0,
) -> MixedLoad:
    """Every client alternates streamed and non-streamed turns over ``bases`` until ``until(load)`` holds (so the
    test does not depend on how fast a loaded machine is); then ``kill`` runs (in a thread) while requests and
    streams are in flight, and the clients go on for ``after_s``."""
    load = MixedLoad()
    stop_at: float | None = None
    give_up = time.monotonic() + max_seconds

    async def client_loop(index: int) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
            n = index
            while stop_at is None or time.monotonic() < stop_at:
                await _one(client, bases[n % len(bases)], stream=n % 2 == 0, load=load)
                n += 1

    async def conductor() -> None:
        nonlocal stop_at
        while not until(load) and time.monotonic() < give_up:
            await asyncio.sleep(0.05)
        if kill is not None:
            await asyncio.to_thread(kill)
        stop_at = time.monotonic() + after_s

    await asyncio.gather(conductor(), *(client_loop(i) for i in range(concurrency)))
    return load
