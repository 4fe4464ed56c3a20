"""The traffic log: one JSON line per chat turn, enough to replay the turn offline under another policy.

A record keeps what the policy reads (tenant, agent, requested model, the messages with PII masked, tool names,
``metadata.voice``), what the live gateway decided and what the upstream billed. It keeps neither tool schemas nor
tool-call arguments nor any other metadata, because those can carry personal data the masking would not see.

``TrafficLogWriter`` appends records from the gateway without blocking it: ``write()`` only queues, a background
task masks and appends batches from a worker thread. The log is for policy tuning, not accounting (that is the
ledger's job): lines are flushed but not fsync'd, and when the queue is full new records are dropped and counted.

Wiring it into the gateway::

    writer = TrafficLogWriter(os.environ["SWITCHBOARD_TRAFFIC_LOG"])
    writer.write(TrafficRecord.from_request(request_id=..., ts=..., tenant=..., requested_model=...,
                                            messages=body["messages"], tools=body.get("tools"),
                                            metadata=body.get("metadata"), call_id=..., caller_id=...,
                                            agent=..., decision=LoggedDecision(...), usage=..., status=...))
    await writer.aclose()  # at shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from router.accounting.ledger import format_ts
from router.accounting.tokens import content_text
from router.accounting.usage import Usage
from router.facts import voice_facts
from router.traffic.redact import Redactor

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1


class Masker(Protocol):
    def mask(self, text: str, context: str = "") -> str:
        """``text`` with personal data masked; ``context`` is the assistant message it answers (for cues)."""
        ...


class LogModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoggedMessage(LogModel):
    role: str
    content: str = ""
    tool_calls: list[str] = Field(default_factory=list, description="Names of the functions called, no arguments.")


class VoiceMetadata(LogModel):
    """The ``metadata.voice`` fields the policy can read (see ``router.facts.voice_facts``)."""

    asr_confidence: float | None = None
    interruptions: int | None = None
    call_seconds: float | None = None
    ivr_state: str | None = None
    language: str | None = None
    call_ended: bool | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> VoiceMetadata | None:
        """What the policy read of a request's ``metadata.voice``, so that a replay reads exactly the same."""
        voice = (metadata or {}).get("voice")
        if not isinstance(voice, Mapping):
            return None
        facts = voice_facts(voice)
        return cls(**{**dataclasses.asdict(facts), "call_ended": True if facts.call_ended else None})


class TrafficMetadata(LogModel):
    voice: VoiceMetadata | None = None


class LoggedDecision(LogModel):
    """What the live gateway decided; ``deployment`` is the deployment that served the turn after fallbacks."""

    tier: str | None = None
    deployment: str | None = None
    rule: str | None = None
    policy_version: str | None = None
    intent: str | None = None
    risks: list[str] = Field(default_factory=list, description="Risks present under the live policy's thresholds.")


class TrafficRecord(LogModel):
    v: Literal[1] = SCHEMA_VERSION
    ts: datetime
    request_id: str
    call_id: str | None = None
    caller_id: str | None = None
    tenant: str
    agent: str | None = None
    requested_model: str
    messages: list[LoggedMessage]
    tools: list[str] = Field(default_factory=list, description="Names of the tools offered to the model.")
    metadata: TrafficMetadata = TrafficMetadata()
    decision: LoggedDecision | None = Field(default=None, description="None when the turn was never routed live.")
    usage: Usage | None = Field(default=None, description="As billed by the upstream; None when it failed.")
    status: int = 200
    error_type: str | None = None

    @field_validator("ts")
    @classmethod
    def _ts_in_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_serializer("ts")
    def _ts_fixed_width(self, value: datetime) -> str:
        return format_ts(value)

    def to_line(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode() + b"\n"

    @classmethod
    def from_request(
        cls,
        *,
        request_id: str,
        ts: datetime,
        tenant: str,
        requested_model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        call_id: str | None = None,
        caller_id: str | None = None,
        agent: str | None = None,
        decision: LoggedDecision | None = None,
        usage: Usage | None = None,
        status: int = 200,
        error_type: str | None = None,
    ) -> TrafficRecord:
        """A live chat request as a record. Its messages are not masked yet: ``TrafficLogWriter`` masks them in
        its background thread, off the request path."""
        return cls(
            ts=ts,
            request_id=request_id,
            call_id=call_id,
            caller_id=caller_id,
            tenant=tenant,
            agent=agent,
            requested_model=requested_model,
            messages=logged_messages(messages),
            tools=tool_names(tools),
            metadata=TrafficMetadata(voice=VoiceMetadata.from_metadata(metadata)),
            decision=decision,
            usage=usage,
            status=status,
            error_type=error_type,
        )

    def masked(self, masker: Masker) -> TrafficRecord:
        return self.model_copy(update={"messages": masked_messages(self.messages, masker)})

    @property
    def chat_messages(self) -> list[dict[str, Any]]:
        """The messages in the chat-completions shape the policy facts and classifiers read."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    @property
    def tool_stubs(self) -> list[dict[str, Any]] | None:
        """The offered tools as name-only function tools: enough for ``has_tools``, not for exact token counts."""
        return [{"type": "function", "function": {"name": name}} for name in self.tools] or None


def tool_names(tools: Sequence[Any] | None) -> list[str]:
    names = []
    for tool in tools or ():
        if isinstance(tool, Mapping):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def logged_messages(messages: Sequence[Mapping[str, Any]]) -> list[LoggedMessage]:
    """Chat messages in the log's shape, not yet masked: text only, tool calls reduced to function names."""
    return [
        LoggedMessage(
            role=str(message.get("role", "user")),
            content=content_text(message.get("content")),
            tool_calls=[
                call["function"]["name"]
                for call in message.get("tool_calls") or ()
                if isinstance(call, Mapping)
                and isinstance(call.get("function"), Mapping)
                and isinstance(call["function"].get("name"), str)
            ],
        )
        for message in messages
    ]


def masked_messages(messages: Sequence[LoggedMessage], masker: Masker) -> list[LoggedMessage]:
    """Messages with personal data masked.

    A user message is masked in the context of the assistant message before it, whose question ("what's your
    date of birth?") is what makes a bare date personal data.
    """
    masked = []
    context = ""
    for message in messages:
        text = masker.mask(message.content, context if message.role == "user" else "")
        masked.append(message if text == message.content else message.model_copy(update={"content": text}))
        if message.role == "assistant" and message.content:
            context = message.content
        elif message.role == "user":
            context = ""
    return masked


def read_traffic(path: Path) -> Iterator[TrafficRecord]:
    """The records of a traffic log in file order; unreadable lines (a write torn by a crash) are skipped."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield TrafficRecord.model_validate_json(line)
            except ValidationError as exc:
                logger.warning("%s:%d: skipping unreadable traffic record: %s", path, number, exc.errors()[0]["msg"])


class TrafficLogWriter:
    """Masks and appends records to a JSONL file from a background task; ``write()`` never blocks the caller.

    A batch is written when ``batch_size`` records are queued or every ``flush_interval_s``. The task starts on the
    first ``write()`` (which must run inside the event loop); ``aclose()`` writes what is queued and stops it.
    Masking (``masker``, the detector-based ``Redactor`` unless given) runs in the writer's thread, one batch at a
    time, so its cache of recent messages is never shared between threads.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        masker: Masker | None = None,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        max_queued: int = 50_000,
    ) -> None:
        self.path = Path(path)
        self._masker = masker if masker is not None else Redactor()
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queued = max_queued
        self._queue: deque[TrafficRecord] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def write(self, record: TrafficRecord) -> None:
        """Queue a record; drops it (and counts it in ``dropped``) when ``max_queued`` records already wait."""
        if self._closed:
            raise RuntimeError("traffic log writer is closed")
        if len(self._queue) >= self._max_queued:
            if self.dropped == 0:
                logger.warning("traffic log %s is falling behind; dropping records", self.path)
            self.dropped += 1
            return
        self._queue.append(record)
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="traffic-log-writer")
        elif len(self._queue) >= self._batch_size:
            assert self._wakeup is not None
            self._wakeup.set()

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval_s)
            self._wakeup.clear()
            try:
                await self._flush()
            except OSError:
                logger.exception("traffic log %s: write failed; records kept in memory", self.path)

    async def _flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                await asyncio.to_thread(self._append, batch)
            except BaseException:
                self._queue.extendleft(reversed(batch))
                raise
            self.written += len(batch)

    def _append(self, batch: Sequence[TrafficRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as log:
            log.write(b"".join(record.masked(self._masker).to_line() for record in batch))

    async def aclose(self) -> None:
        """Write everything queued and stop the background task."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            await self._task
        await self._flush()
