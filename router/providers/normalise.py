"""OpenAI's response shapes, whatever the provider: every answer, stream chunk and upstream error goes out as OpenAI's
published schema (openai/openai-openapi; tests/data/openai-openapi holds the extract the tests validate against).

Every provider passes what it produced through here, so clients see one shape on every tier: the fields the spec
documents and nothing else (litellm's ``provider_specific_fields``, a vendor's ``reasoning_content`` and the like are
dropped), ``null`` only where the spec allows it (a ``"system_fingerprint": null`` or ``"tool_calls": null`` is
removed, not sent), and the fields the spec requires (``message.refusal``, ``choices[].logprobs``, a chunk's
``finish_reason``) present. Cache-write tokens, whatever a provider calls them, become the spec's
``prompt_tokens_details.cache_write_tokens``, which is where the accountant reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Field(NamedTuple):
    """One documented field: whether it may be ``null``, what to put when it is required but absent, and the
    shape of its value (an object's fields; ``items=True`` for an array of such objects)."""

    nullable: bool = False
    shape: Shape | None = None
    items: bool = False
    required_default: Any = ...  # ``...``: not required (absent stays absent)


class Shape:
    """The documented fields of one object, with the required ones set apart (stream chunks run through here)."""

    __slots__ = ("fields", "required")

    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields = dict(fields)
        self.required = tuple((name, f) for name, f in self.fields.items() if f.required_default is not ...)


_FUNCTION = Shape({"name": Field(), "arguments": Field()})
_TOOL_CALL = Shape(
    {
        "id": Field(),
        "type": Field(),
        "function": Field(shape=_FUNCTION),
        "custom": Field(shape=Shape({"name": Field(), "input": Field()})),
    }
)
# A streamed fragment of a tool call says which call it continues (one that does not can only be a lone call: 0).
_TOOL_CALL_CHUNK = Shape({"index": Field(required_default=0), **_TOOL_CALL.fields})
_MESSAGE = Shape(
    {
        "role": Field(required_default="assistant"),
        "content": Field(nullable=True, required_default=None),
        "refusal": Field(nullable=True, required_default=None),
        "tool_calls": Field(shape=_TOOL_CALL, items=True),
        "annotations": Field(),
        "function_call": Field(shape=_FUNCTION),
        "audio": Field(nullable=True),
    }
)
_DELTA = Shape(
    {
        "role": Field(),
        "content": Field(nullable=True),
        "refusal": Field(nullable=True),
        "tool_calls": Field(shape=_TOOL_CALL_CHUNK, items=True),
        "function_call": Field(shape=_FUNCTION),
    }
)
_USAGE = Shape(
    {
        "prompt_tokens": Field(required_default=0),
        "completion_tokens": Field(required_default=0),
        "total_tokens": Field(required_default=0),
        "prompt_tokens_details": Field(
            shape=Shape(
                {
                    name: Field()
                    for name in ("cached_tokens", "cache_write_tokens", "audio_tokens", "text_tokens", "image_tokens")
                }
            )
        ),
        "completion_tokens_details": Field(
            shape=Shape(
                {
                    name: Field()
                    for name in (
                        "reasoning_tokens",
                        "accepted_prediction_tokens",
                        "rejected_prediction_tokens",
                        "audio_tokens",
                        "text_tokens",
                    )
                }
            )
        ),
    }
)
_TOP = {
    "id": Field(),
    "object": Field(),
    "created": Field(),
    "model": Field(),
    "service_tier": Field(nullable=True),
    "system_fingerprint": Field(),
    "metadata": Field(nullable=True),
    "moderation": Field(nullable=True),
}
COMPLETION = Shape(
    {
        **_TOP,
        "choices": Field(
            items=True,
            shape=Shape(
                {
                    "index": Field(),
                    "message": Field(shape=_MESSAGE, required_default={}),
                    "finish_reason": Field(),
                    "logprobs": Field(nullable=True, required_default=None),
                }
            ),
        ),
        "usage": Field(shape=_USAGE),
    }
)
CHUNK = Shape(
    {
        **_TOP,
        "obfuscation": Field(),
        "choices": Field(
            items=True,
            shape=Shape(
                {
                    "index": Field(),
                    "delta": Field(shape=_DELTA, required_default={}),
                    "finish_reason": Field(nullable=True, required_default=None),
                    "logprobs": Field(nullable=True),
                }
            ),
        ),
        "usage": Field(nullable=True, shape=_USAGE),
    }
)
# Where providers report prompt tokens written to their cache, besides the spec's own name.
_CACHE_WRITE_ALIASES = ("cache_write_tokens", "cache_creation_tokens")


def conform(value: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
    """``value`` with only the fields of ``shape``, nulls only where allowed, required ones filled in."""
    fields = shape.fields
    kept: dict[str, Any] = {}
    for name, item in value.items():
        field = fields.get(name)
        if field is None:
            continue
        if item is None:
            if field.nullable:
                kept[name] = None
            continue
        if field.shape is not None:
            if field.items and isinstance(item, list):
                item = [conform(element, field.shape) for element in item if isinstance(element, Mapping)]
            elif isinstance(item, Mapping):
                item = conform(item, field.shape)
        kept[name] = item
    for name, field in shape.required:
        if name not in kept:
            default = field.required_default
            kept[name] = conform(default, field.shape) if field.shape is not None else default
    return kept


def _with_cache_writes(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Cache-write tokens under the spec's name, from wherever a provider put them (litellm's Anthropic usage
    carries ``cache_creation_input_tokens`` beside the OpenAI fields)."""
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return payload
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    written = next((details[k] for k in _CACHE_WRITE_ALIASES if details.get(k)), None)
    written = written or usage.get("cache_creation_input_tokens")
    if not written:
        return payload
    return {**payload, "usage": {**usage, "prompt_tokens_details": {**details, "cache_write_tokens": written}}}


def completion(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` in OpenAI's schema."""
    shaped = conform(_with_cache_writes(answer), COMPLETION)
    shaped["object"] = "chat.completion"
    shaped.setdefault("choices", [])
    return shaped


def chunk(event: Mapping[str, Any]) -> dict[str, Any]:
    """A ``chat.completion.chunk`` in OpenAI's schema."""
    shaped = conform(_with_cache_writes(event), CHUNK)
    shaped["object"] = "chat.completion.chunk"
    shaped.setdefault("choices", [])
    return shaped


def error_body(body: Any) -> dict[str, Any] | None:
    """An upstream's error body as OpenAI's ``{"error": {message, type, param, code}}`` (strings or null), or
    ``None`` when it carries no error object. Providers send codes as numbers and params as lists; the gateway
    passes an upstream's 4xx through to its client, so it must speak the spec too."""
    detail = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(detail, Mapping):
        return None

    def text(key: str) -> str | None:
        item = detail.get(key)
        return None if item is None else str(item)

    return {
        "error": {
            "message": text("message") or "the upstream returned an error",
            "type": text("type") or "upstream_error",
            "param": text("param"),
            "code": text("code"),
        }
    }
