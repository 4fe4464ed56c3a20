"""What a simulated model answers, independent of the wire format that carries it.

The answer is a pure function of the model name, the last user message, the choice index, the
model's behaviour, the request's token cap and the tools it offers, so a streamed answer equals
the non-streamed one. Like a real model, it calls a tool only when the request demands one or the
turn plausibly asks for one (see ``ToolOffer.calls_for``), and otherwise answers in text.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
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


# Words that say nothing about which tool a caller wants: English function words, greetings and the
# generic verbs of tool descriptions ("Get the current ...", "Use the ... tool").
_STOP_WORDS = frozenset(
    """
    about above after again against all also and any are because been before being below between both but can
    could did does doing down during each few for from further had has have having her here hers herself him
    himself his how into its itself just more most myself nor not now off once only other our ours ourselves
    out over own same she should some such than that the their theirs them themselves then there these they
    this those through too under until very was were what when where which while who whom why will with would
    you your yours yourself yourselves
    hello hey thanks thank yes yeah okay please sure want need like let get set use using used tool tools
    function call make give tell know help current right something anything thing user
    """.split()  # noqa: SIM905 (a word list reads better as prose than as 110 quoted items)
)
_SHORTEST_CONTENT_WORD = 3
# A voice turn is a few sentences; tool descriptions are a paragraph. Longer text is cut, not scanned.
_MAX_TEXT_CHARS = 4_000
_MAX_DESCRIPTION_CHARS = 1_024
# Both patterns are linear: a zero-width camelCase boundary and runs of letters.
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_LETTERS = re.compile(r"[^\W\d_]+")
_ES_PLURALS = ("sses", "xes", "ches", "shes", "zes", "uses")
_SINGULAR_S_ENDINGS = ("ss", "us", "is")


def content_stems(text: str) -> frozenset[str]:
    """The lightly stemmed content words of ``text``, identifiers split at ``_`` and camelCase."""
    words = _LETTERS.findall(_CAMEL_BOUNDARY.sub(" ", text[:_MAX_TEXT_CHARS]).lower())
    return frozenset(_stem(word) for word in words if len(word) >= _SHORTEST_CONTENT_WORD and word not in _STOP_WORDS)


def _stem(word: str) -> str:
    """Fold plurals, -ing, -ed and a final e, so "bookings", "booked" and "book" (or "schedule" and
    "scheduling") meet; applied alike to both sides, it only has to be consistent, not linguistic."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(_ES_PLURALS):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(_SINGULAR_S_ENDINGS) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= _SHORTEST_CONTENT_WORD:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > _SHORTEST_CONTENT_WORD:
        word = word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A callable tool, normalised from OpenAI ``function`` tools or Anthropic tools."""

    name: str
    parameters: dict[str, Any] | None
    description: str | None = None

    def asked_for_by(self, wanted: frozenset[str]) -> bool:
        """Whether a turn with content words ``wanted`` plausibly asks for this tool."""
        own = content_stems(f"{self.name} {(self.description or '')[:_MAX_DESCRIPTION_CHARS]}")
        return not wanted.isdisjoint(own)


class ToolMode(StrEnum):
    AUTO = "auto"  # call what the turn asks for, else answer in text
    REQUIRED = "required"  # OpenAI "required", Anthropic "any": call at least one tool
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ToolOffer:
    """What a request offers and demands of tools, normalised from either wire format."""

    tools: Sequence[ToolSpec]
    mode: ToolMode = ToolMode.AUTO
    forced_name: str | None = None
    parallel: bool = True
    answers_tool_result: bool = False

    def calls_for(self, last_user_text: str) -> list[ToolSpec]:
        """The tools to call this turn, in the order offered; empty means answer in text.

        A named tool is called when the request forces it. Otherwise the tools the turn asks for are the
        ones whose name or description shares a content word with the last user text: each of them is
        called when parallel calls are allowed, else the first. ``required`` with no tool asked for calls
        the first tool. Right after a tool result the model always answers in text, so that an agent's
        tool loop ends.
        """
        if not self.tools or self.mode is ToolMode.NONE or self.answers_tool_result:
            return []
        if self.forced_name is not None:
            named = [tool for tool in self.tools if tool.name == self.forced_name]
            return named[:1] or list(self.tools[:1])
        wanted = content_stems(last_user_text)
        asked = [tool for tool in self.tools if tool.asked_for_by(wanted)] if wanted else []
        if not asked and self.mode is ToolMode.REQUIRED:
            asked = list(self.tools[:1])
        return asked if self.parallel else asked[:1]


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    name: str
    arguments: dict[str, Any]
    arguments_json: str
    argument_pieces: list[str]


@dataclass(frozen=True, slots=True)
class PlannedReply:
    """One choice of an answer: either text pieces (one token each) or one or more tool calls."""

    text_pieces: list[str]
    tool_calls: tuple[PlannedToolCall, ...]
    finish_reason: FinishReason
    completion_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.text_pieces)

    @property
    def pieces(self) -> list[str]:
        """What a stream sends one token at a time: the text, or every tool call's arguments in turn."""
        if not self.tool_calls:
            return self.text_pieces
        return [piece for call in self.tool_calls for piece in call.argument_pieces]


def plan_reply(
    *,
    model: str,
    behaviour: ModelBehaviour,
    last_user_text: str,
    token_cap: int | None,
    choice_index: int = 0,
    tools: Sequence[ToolSpec] = (),
) -> PlannedReply:
    """The answer of ``model``: calls to ``tools`` when given, else text of the behaviour's length."""
    if tools:
        return _plan_tool_calls(tools, behaviour)
    budget = behaviour.output_tokens
    if token_cap is not None:
        budget = max(0, min(budget, token_cap - behaviour.reasoning_tokens))
    capped = budget < behaviour.output_tokens
    pieces = _text_pieces(model, last_user_text, choice_index, budget, ends_sentence=not capped)
    return PlannedReply(
        text_pieces=pieces,
        tool_calls=(),
        finish_reason=FinishReason.LENGTH if capped else FinishReason.STOP,
        completion_tokens=len(pieces) + behaviour.reasoning_tokens,
    )


def _plan_tool_calls(tools: Sequence[ToolSpec], behaviour: ModelBehaviour) -> PlannedReply:
    calls = []
    for tool in tools:
        arguments = example_for_schema(tool.parameters)
        arguments_json = orjson.dumps(arguments).decode()
        calls.append(PlannedToolCall(tool.name, arguments, arguments_json, split_pieces(arguments_json)))
    generated = sum(count_tokens(call.name) + len(call.argument_pieces) for call in calls)
    return PlannedReply(
        text_pieces=[],
        tool_calls=tuple(calls),
        finish_reason=FinishReason.TOOL_CALLS,
        completion_tokens=generated + behaviour.reasoning_tokens,
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
