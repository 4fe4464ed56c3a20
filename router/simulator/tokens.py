"""A deterministic stand-in tokenizer: one token per word or punctuation mark.

It is not any real model's tokenizer; it only has to be cheap, stable across runs and roughly
proportional to text length, so that usage numbers and cost accounting can be asserted exactly.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_TOKEN = re.compile(r"\w+|[^\w\s]")
# Each piece holds exactly one _TOKEN match plus the whitespace before it, so joining the pieces
# gives back the text and counting them agrees with count_tokens; the last branch keeps trailing spaces.
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")

# OpenAI bills a few tokens of framing per message and per reply; mimic that order of magnitude.
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3
# OpenAI's price of a low-detail image, used for any non-text content part.
IMAGE_PART_TOKENS = 85


def count_tokens(text: str | None) -> int:
    return len(_TOKEN.findall(text)) if text else 0


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into token-sized pieces that concatenate back to it."""
    return _PIECE.findall(text)


def count_json_tokens(value: Any) -> int:
    """Tokens of a JSON value as it would be serialised (tool schemas, tool arguments)."""
    return count_tokens(orjson.dumps(value).decode()) if value is not None else 0


def count_content_tokens(content: str | list[dict[str, Any]] | None) -> int:
    """Tokens of a message content, including non-text parts (images, tool calls and tool results)."""
    if content is None or isinstance(content, str):
        return count_tokens(content)
    total = 0
    for part in content:
        part_type = part.get("type")
        if isinstance(part.get("text"), str):
            total += count_tokens(part["text"])
        elif part_type == "tool_use":
            total += count_tokens(part.get("name")) + count_json_tokens(part.get("input"))
        elif part_type == "tool_result":
            total += count_content_tokens(part.get("content"))
        else:
            total += IMAGE_PART_TOKENS
    return total
