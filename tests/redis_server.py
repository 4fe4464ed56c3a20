"""A real, throwaway redis-server for tests, which can be stopped and started again on the same port.

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        server.stop()   # Redis is down: clients get connection errors
        server.start()  # back on the same port, with the data it had (saved at stop)

Persistence is off while running (``--save '' --appendonly no``); ``stop(persist=True)`` asks Redis
for one final RDB snapshot, like a graceful restart of a persistent Redis, so a restart keeps the
data. ``stop(persist=False)`` kills it, like a crash of a cache-only Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.processes import free_port, wait_or_kill


class RedisServer:
    def __init__(self, port: int | None = None, startup_timeout_s: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="switchboard-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> redis.Redis:
        # No retries: SHUTDOWN drops the connection, and startup polling must see refusals at once.
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def start(self) -> None:
        if self.running:
            return
        self._process = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._dir),
                "--dbfilename", "dump.rdb",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode} on port {self.port}")
            try:
                with self.client() as client:
                    if client.ping():
                        return
            except redis.exceptions.RedisError:
                time.sleep(0.02)
        self.stop(persist=False)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def stop(self, persist: bool = True) -> None:
        """Stop Redis; with ``persist`` it saves a snapshot first, which ``start()`` loads."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            if persist:
                try:
                    with self.client() as client:
                        client.shutdown(save=True)
                except redis.exceptions.ConnectionError:
                    pass  # SHUTDOWN closes the connection without a reply
            else:
                process.kill()
            wait_or_kill(process)

    def close(self) -> None:
        self.stop(persist=False)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
