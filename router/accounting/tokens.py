"""Token estimates for when an upstream reports no usage, and for the policy's ``prompt_tokens`` fact.

tiktoken's encodings are read from the copy litellm bundles, so nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import tiktoken

# Per-message framing tokens in OpenAI's chat format.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def _bundled_encodings_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
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
