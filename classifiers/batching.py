"""Async front of the classifier for the gateway: one worker thread, micro-batches, an LRU cache.

Inference runs in a single dedicated thread, so the event loop never waits on the model and the model
(like the ONNX session) is only ever used from one thread. Calls that arrive while a batch is collected or
running are grouped into the next batch (up to ``max_batch``, waiting at most ``max_wait_ms`` after the first
call). Results are cached by ``TurnClassifier.cache_key``; concurrent calls for the same key share one
inference. Use an instance from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from classifiers.pipeline import TurnClassifier
from classifiers.schemas import Classification, Conversation

CacheKey = tuple[str, ...]


class BatchingClassifier:
    def __init__(
        self,
        classifier: TurnClassifier,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        cache_size: int = 10_000,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.cache_size = cache_size
        self._cache: OrderedDict[CacheKey, Classification] = OrderedDict()
        self._in_flight: dict[CacheKey, asyncio.Future[Classification]] = {}
        self._waiting: list[tuple[CacheKey, Conversation]] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchboard-classifier")
        self._collector: asyncio.Task[None] | None = None
        self._closed = False

    async def classify(self, conversation: Conversation) -> Classification:
        if self._closed:
            raise RuntimeError("BatchingClassifier is closed")
        key = self.classifier.cache_key(conversation)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._in_flight[key] = pending
            self._waiting.append((key, conversation))
            self._arrived.set()
            if len(self._waiting) >= self.max_batch:
                self._full.set()
            if self._collector is None:
                self._collector = asyncio.create_task(self._collect(), name="switchboard-classifier-batches")
        # shield: one caller being cancelled must not cancel the result other callers share.
        return await asyncio.shield(pending)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            if len(self._waiting) < self.max_batch and self.max_wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait)
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            if len(self._waiting) < self.max_batch:
                self._full.clear()
            if not self._waiting:
                self._arrived.clear()
            keys = [key for key, _ in batch]
            try:
                results = await loop.run_in_executor(
                    self._executor, self.classifier.classify_batch, [conversation for _, conversation in batch]
                )
            except Exception as error:  # every waiting caller must hear about the failure
                for key in keys:
                    self._settle(key, error=error)
                continue
            for key, result in zip(keys, results, strict=True):
                self._remember(key, result)
                self._settle(key, result=result)

    def _remember(self, key: CacheKey, result: Classification) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = result
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _settle(self, key: CacheKey, result: Classification | None = None, error: BaseException | None = None) -> None:
        future = self._in_flight.pop(key, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None, "settled with neither a result nor an error"
            future.set_result(result)

    async def aclose(self) -> None:
        """Stop batching, fail calls still waiting, and release the worker thread."""
        self._closed = True
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        for key in list(self._in_flight):
            self._settle(key, error=RuntimeError("BatchingClassifier closed before this turn was classified"))
        self._executor.shutdown(wait=False, cancel_futures=True)
