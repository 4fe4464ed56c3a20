"""The caller turns every benchmark client sends: one definition for the wrk Lua script and the Python clients.

A "distinct" turn weaves a reference number into a realistic caller sentence, so no two requests share a text and
a classifier cache never hits; the "repeated" turn is one sentence sent every time, so every lookup after the
first one hits.
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Any

import orjson

NAMES = ("Maria", "James", "Aisha", "Kenji", "Lucas", "Priya", "Tomasz")
ERRANDS = (
    "dental cleaning",
    "oil change",
    "haircut",
    "tax consultation",
    "eye exam",
    "piano lesson",
    "dog grooming",
    "follow-up visit",
    "delivery slot",
    "furniture pickup",
    "catering order",
)
WHENS = (
    "Monday morning",
    "Monday afternoon",
    "Tuesday morning",
    "Tuesday afternoon",
    "Wednesday morning",
    "Wednesday afternoon",
    "Thursday morning",
    "Thursday afternoon",
    "Friday morning",
    "Friday afternoon",
    "Saturday morning",
    "next week",
    "the week after",
)
# printf-style, so Lua's string.format and Python's % render it identically.
SENTENCE = "Hi, this is %s calling about booking %d. Could you move my %s from %s to %s, please?"
REPEATED_TEXT = "Hi, could you move my dental cleaning from Tuesday morning to Thursday afternoon, please?"
SYSTEM_PROMPT = "You are the friendly phone receptionist of a small business. Answer in one short sentence."
MAX_TOKENS = 64
# Each wrk or TTFT run takes its own block of booking references, and each wrk thread its own stride in it, so a
# distinct text is never sent twice in a whole benchmark run (a classifier cache would hit it the second time).
REFERENCE_BLOCK = 10**9
THREAD_REFERENCE_STRIDE = 10**7
# The second time slot is picked this far from the first, so a turn never moves a booking to where it already is.
SECOND_WHEN_OFFSET = 5


class TextMode(StrEnum):
    DISTINCT = "distinct"
    REPEATED = "repeated"


class ReferenceBlocks:
    """Hands out the first booking reference of each run's block."""

    def __init__(self) -> None:
        self._blocks = itertools.count(1)

    def next_base(self) -> int:
        return next(self._blocks) * REFERENCE_BLOCK


def _pick(words: tuple[str, ...], reference: int) -> str:
    return words[reference % len(words)]


def distinct_text(reference: int) -> str:
    """The caller sentence for booking ``reference``; different references give different sentences."""
    return SENTENCE % (
        _pick(NAMES, reference),
        reference,
        _pick(ERRANDS, reference),
        _pick(WHENS, reference),
        _pick(WHENS, reference + SECOND_WHEN_OFFSET),
    )


def turn_text(mode: TextMode, reference: int) -> str:
    return distinct_text(reference) if mode is TextMode.DISTINCT else REPEATED_TEXT


def chat_body(model: str, text: str, *, stream: bool = False) -> bytes:
    """The request body the wrk script sends, as JSON (optionally streamed, with usage)."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}],
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def _lua_string(text: str) -> str:
    # The Lua script splices these into JSON without escaping, so they must need none.
    if any(character in text for character in '"\\\n'):
        raise ValueError(f"benchmark text must not need JSON or Lua escaping: {text!r}")
    return f'"{text}"'


def lua_prelude() -> str:
    """These definitions as Lua globals, prepended to bench/chat_post.lua."""

    def table(words: tuple[str, ...]) -> str:
        return "{" + ", ".join(_lua_string(word) for word in words) + "}"

    return "\n".join(
        (
            "-- Generated from bench/caller_turns.py by bench/run.py.",
            f"NAMES = {table(NAMES)}",
            f"ERRANDS = {table(ERRANDS)}",
            f"WHENS = {table(WHENS)}",
            f"SENTENCE = {_lua_string(SENTENCE)}",
            f"REPEATED_TEXT = {_lua_string(REPEATED_TEXT)}",
            f"SYSTEM_PROMPT = {_lua_string(SYSTEM_PROMPT)}",
            f"MAX_TOKENS = {MAX_TOKENS}",
            f"SECOND_WHEN_OFFSET = {SECOND_WHEN_OFFSET}",
            f"THREAD_REFERENCE_STRIDE = {THREAD_REFERENCE_STRIDE}",
            "",
        )
    )
