"""Server-sent events and their pacing, shared by both wire formats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class SseFrame:
    """One server-sent event; ``token_index`` is its place on the token clock (None: send at once)."""

    data: bytes
    token_index: int | None = None


def openai_event(payload: dict[str, Any] | None, token_index: int | None = None) -> SseFrame:
    """A ``data:`` event; None stands for the ``[DONE]`` sentinel."""
    body = b"[DONE]" if payload is None else orjson.dumps(payload)
    return SseFrame(b"data: " + body + b"\n\n", token_index)


def anthropic_event(payload: dict[str, Any], token_index: int | None = None) -> SseFrame:
    """A named event, the name repeating the payload's ``type`` as Anthropic does."""
    return SseFrame(b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n", token_index)
