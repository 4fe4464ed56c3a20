"""Token estimates for when an upstream reports no usage, and for the policy's ``prompt_tokens`` fact.

tiktoken's encodings are read from the copy shipped in ``encodings/``, so nothing is fetched at run time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import tiktoken

# Per-message framing tokens in OpenAI's chat format.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def _bundled_encodings_dir() -> Path | None:
    folder = Path(__file__).resolve().parent / "encodings"
    return folder if folder.is_dir() else None


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        bundled = _bundled_encodings_dir()
        if bundled is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    return tiktoken.get_encoding("cl100k_base")


@lru_cache(maxsize=65_536)
def text_tokens(text: str) -> int:
    # Cached: a conversation resends its whole history every turn, so most messages were counted before.
    return len(_encoding().encode(text, disallowed_special=())) if text else 0


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, ``None`` or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def completion_text(choices: Any, part: str) -> str:
    """The text a model produced in ``choices``: each choice's ``part`` (``"message"`` of an answer, ``"delta"`` of
    a stream chunk), its content and its tool calls' names and arguments. Streamed chunks joined give the text of
    the same answer not streamed, so both are estimated alike when the upstream reports no usage."""
    texts: list[str] = []
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get(part) if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        texts.append(content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.append(str(function.get("name") or "") + str(function.get("arguments") or ""))
    return "".join(texts)


# Characters of one request that are tokenised exactly (about 15 ms of tiktoken on the event loop). Past them a
# text counts as many tokens as its UTF-8 bytes: an upper bound (every token is at least one byte), so budgets
# and rate limits never undercount, and admission of a multi-megabyte body costs milliseconds, not seconds.
EXACT_COUNT_CHARS = 65_536


# Below this many characters a request's prompt is counted in well under a millisecond, on the event loop.
QUICK_COUNT_CHARS = 8_192


def _prompt_texts(messages: list[dict[str, Any]], tools: list[Any] | None) -> Iterator[str]:
    """Every text of a request that prompt tokens are counted for, in order."""
    for message in messages:
        yield content_text(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = (call.get("function") if isinstance(call, dict) else None) or {}
            yield str(function.get("name", ""))
            yield str(function.get("arguments", ""))
    if tools:
        yield orjson.dumps(tools).decode()


def quick_to_count(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> bool:
    """Whether counting these prompt tokens is quick enough for the event loop."""
    return sum(len(text) for text in _prompt_texts(messages, tools)) <= QUICK_COUNT_CHARS


def prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> int:
    """Prompt tokens of a chat request: exact for ordinary requests, never below the truth for huge ones.

    The first ``EXACT_COUNT_CHARS`` characters are tokenised; every text past them counts as many tokens as its
    UTF-8 bytes.
    """
    exact_chars_left = EXACT_COUNT_CHARS
    total = TOKENS_PER_REPLY + TOKENS_PER_MESSAGE * len(messages)
    for text in _prompt_texts(messages, tools):
        if len(text) <= exact_chars_left:
            exact_chars_left -= len(text)
            total += text_tokens(text)
        else:
            total += len(text.encode("utf-8", "surrogatepass"))
    return total


# -- non-text content: an upper bound on what it can add to a prompt, for budget reservations -------------------
#
# Images are never decoded, so their size is unknown: each counts at the most its detail level can cost.
# OpenAI's tile rule (a base, plus per 512 px tile of an image scaled to fit 2048x2048 with its short side at most
# 768 px) peaks at 2x4 tiles; patch-billed models (32 px patches, capped at 1536, times a per-model multiplier)
# ignore ``detail``. Anthropic resizes an image to at most ~1,600 tokens. Other models get a generous default.
MAX_IMAGE_TILES = 8


@dataclass(frozen=True, slots=True)
class ImageTokens:
    low: int  # the most a ``detail: low`` image costs
    high: int  # the most a ``detail: high`` or ``auto`` image costs


def _tiles(base: int, per_tile: int) -> ImageTokens:
    return ImageTokens(low=base, high=base + per_tile * MAX_IMAGE_TILES)


def _patches(multiplier: float) -> ImageTokens:
    tokens = math.ceil(1536 * multiplier)
    return ImageTokens(low=tokens, high=tokens)


# Most specific names first: the first whose name occurs in the deployment's model string applies.
IMAGE_TOKENS_BY_MODEL: tuple[tuple[str, ImageTokens], ...] = (
    ("gpt-4o-mini", _tiles(2833, 5667)),
    ("gpt-4.1-nano", _patches(2.46)),
    ("gpt-5-nano", _patches(2.46)),
    ("gpt-4.1-mini", _patches(1.62)),
    ("gpt-5-mini", _patches(1.62)),
    ("o4-mini", _patches(1.72)),
    ("gpt-4o", _tiles(85, 170)),
    ("gpt-4.1", _tiles(85, 170)),
    ("gpt-4.5", _tiles(85, 170)),
    ("gpt-5", _tiles(85, 170)),
    ("o1", _tiles(85, 170)),
    ("o3", _tiles(85, 170)),
    ("claude", ImageTokens(low=1600, high=1600)),
)
UNKNOWN_MODEL_IMAGE_TOKENS = ImageTokens(low=10_000, high=10_000)

# Audio is bounded by its size: no accepted codec carries a second in fewer than 500 bytes (4 kbit/s; MP3 needs
# 8), and no provider bills a second of input audio at more than 32 tokens (Gemini's rate; OpenAI's is ~10).
AUDIO_MIN_BYTES_PER_SECOND = 500
AUDIO_MAX_TOKENS_PER_SECOND = 32

# Parts whose whole payload is their ``text`` (counted by content_text); every other kind is bounded or refused.
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def image_tokens(model: str) -> ImageTokens:
    lowered = model.lower()
    return next((tokens for name, tokens in IMAGE_TOKENS_BY_MODEL if name in lowered), UNKNOWN_MODEL_IMAGE_TOKENS)


@dataclass(frozen=True, slots=True)
class MediaParts:
    """The non-text parts of a request's messages, counted once and priced per deployment."""

    low_detail_images: int = 0
    images: int = 0
    audio_bytes: int = 0
    extra_text_tokens: int = 0  # text carried outside ``text`` fields (refusal parts)
    unpriceable: str | None = None  # the first part no bound can be put on (a file, a video, ...), by its param

    def token_bound(self, model: str) -> int:
        """The most these parts can add to the prompt tokens ``model`` is billed."""
        per_image = image_tokens(model)
        audio_seconds = math.ceil(self.audio_bytes / AUDIO_MIN_BYTES_PER_SECOND)
        return (
            self.low_detail_images * per_image.low
            + self.images * per_image.high
            + audio_seconds * AUDIO_MAX_TOKENS_PER_SECOND
            + self.extra_text_tokens
        )


def media_parts(messages: list[dict[str, Any]]) -> MediaParts:
    low = high = audio_bytes = extra_text = 0
    unpriceable: str | None = None
    for index, message in enumerate(messages):
        if message.get("audio") is not None and unpriceable is None:
            unpriceable = f"messages[{index}].audio"  # an earlier answer's audio, billed again by id
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for position, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if (kind in TEXT_PART_TYPES or kind is None) and isinstance(part.get("text"), str):
                continue  # counted with the text
            if kind == "refusal" and isinstance(part.get("refusal"), str):
                extra_text += text_tokens(part["refusal"])
            elif kind == "image_url":
                image = part.get("image_url")
                if isinstance(image, dict) and image.get("detail") == "low":
                    low += 1
                else:
                    high += 1
            elif (
                kind == "input_audio"
                and isinstance(audio := part.get("input_audio"), dict)
                and isinstance(audio.get("data"), str)
            ):
                audio_bytes += len(audio["data"]) * 3 // 4  # base64: 4 characters per 3 bytes
            elif unpriceable is None:
                unpriceable = f"messages[{index}].content[{position}]"
    return MediaParts(low, high, audio_bytes, extra_text, unpriceable)
