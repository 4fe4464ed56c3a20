"""Token usage as reported by an upstream, normalised across wire formats."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Usage(BaseModel):
    """Tokens of one answer, split by how each kind is priced.

    ``prompt_tokens`` includes ``cached_prompt_tokens`` and ``cache_creation_tokens`` (OpenAI's
    convention); ``completion_tokens`` includes ``reasoning_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        """Parse an OpenAI ``usage`` object; ``None`` when the upstream sent none."""
        if not usage:
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_prompt_tokens=int(prompt_details.get("cached_tokens") or 0),
            # The spec's name; router/providers/normalise.py maps every provider's own name onto it.
            cache_creation_tokens=int(prompt_details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any] | None) -> Usage | None:
        """Parse an Anthropic ``usage`` object, whose ``input_tokens`` exclude cache reads and writes."""
        if not usage:
            return None
        cache_read = int(usage.get("cache_read_input_tokens") or 0)
        cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        return cls(
            prompt_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
            completion_tokens=int(usage.get("output_tokens") or 0),
            cached_prompt_tokens=cache_read,
            cache_creation_tokens=cache_write,
        )

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI wire shape of this usage."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_prompt_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }
