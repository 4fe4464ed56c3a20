"""What a simulated model answers, independent of the wire format that carries it.

The answer is a pure function of the model name, the last user message, the choice index, the
model's behaviour and the request's token cap, so a streamed answer equals the non-streamed one.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from router.simulator.schema_example import example_for_schema
from router.simulator.settings import ModelBehaviour
from router.simulator.tokens import count_tokens, split_pieces

_WORDS = (
    "route",
    "model",
    "token",
    "budget",
    "request",
    "answer",
    "policy",
    "latency",
    "cache",
    "stream",
    "agent",
    "turn",
    "cost",
    "tier",
    "gateway",
    "fallback",
    "provider",
    "context",
    "prompt",
    "signal",
    "quality",
    "risk",
    "intent",
    "small",
    "standard",
    "frontier",
    "fast",
    "careful",
    "cheap",
    "safe",
    "the",
    "a",
    "of",
    "to",
    "and",
    "with",
    "for",
    "each",
    "every",
    "then",
    "while",
    "because",
    "so",
    "checks",
    "keeps",
    "sends",
    "measures",
    "chooses",
    "balances",
    "records",
    "returns",
    "reads",
)
_SENTENCE_WORDS = (5, 12)


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A callable tool, normalised from OpenAI ``function`` tools or Anthropic tools."""

    name: str
    parameters: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    name: str
    arguments: dict[str, Any]
    arguments_json: str
    argument_pieces: list[str]


@dataclass(frozen=True, slots=True)
class PlannedReply:
    """One choice of an answer: either text pieces (one token each) or a single tool call."""

    text_pieces: list[str]
    tool_call: PlannedToolCall | None
    finish_reason: FinishReason
    completion_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.text_pieces)

    @property
    def pieces(self) -> list[str]:
        """What a stream sends one token at a time: the text, or the tool call's arguments."""
        return self.tool_call.argument_pieces if self.tool_call else self.text_pieces


def plan_reply(
    *,
    model: str,
    behaviour: ModelBehaviour,
    last_user_text: str,
    token_cap: int | None,
    choice_index: int = 0,
    tool: ToolSpec | None = None,
) -> PlannedReply:
    """The answer of ``model``: a call to ``tool`` when given, else text of the behaviour's length."""
    if tool is not None:
        return _plan_tool_call(tool, behaviour)
    budget = behaviour.output_tokens
    if token_cap is not None:
        budget = max(0, min(budget, token_cap - behaviour.reasoning_tokens))
    capped = budget < behaviour.output_tokens
    pieces = _text_pieces(model, last_user_text, choice_index, budget, ends_sentence=not capped)
    return PlannedReply(
        text_pieces=pieces,
        tool_call=None,
        finish_reason=FinishReason.LENGTH if capped else FinishReason.STOP,
        completion_tokens=len(pieces) + behaviour.reasoning_tokens,
    )


def _plan_tool_call(tool: ToolSpec, behaviour: ModelBehaviour) -> PlannedReply:
    arguments = example_for_schema(tool.parameters)
    arguments_json = orjson.dumps(arguments).decode()
    pieces = split_pieces(arguments_json)
    return PlannedReply(
        text_pieces=[],
        tool_call=PlannedToolCall(tool.name, arguments, arguments_json, pieces),
        finish_reason=FinishReason.TOOL_CALLS,
        completion_tokens=count_tokens(tool.name) + len(pieces) + behaviour.reasoning_tokens,
    )


def _text_pieces(model: str, seed_text: str, choice_index: int, budget: int, ends_sentence: bool) -> list[str]:
    # The opening names the model so that people rehearsing routing can see who answered.
    pieces = split_pieces(f"Simulated reply from {model}.")[:budget]
    digest = hashlib.blake2b(f"{model}\0{choice_index}\0{seed_text}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    while len(pieces) < budget:
        sentence_length = rng.randint(*_SENTENCE_WORDS)
        words = [rng.choice(_WORDS) for _ in range(sentence_length)]
        words[0] = words[0].capitalize()
        pieces.extend(" " + word for word in words)
        pieces.append(".")
    pieces = pieces[:budget]
    if ends_sentence and pieces and pieces[-1] != ".":
        pieces[-1] = "."
    return pieces


@dataclass(frozen=True, slots=True)
class PromptUsage:
    prompt_tokens: int
    cached_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, behaviour: ModelBehaviour) -> PromptUsage:
        return cls(prompt_tokens, int(prompt_tokens * behaviour.cached_prompt_ratio))
