"""What the gateway hands the classifier (a ``Conversation``) and what it gets back (a ``Classification``)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from classifiers.normalise import MAX_TURN_CHARS


def normalise_text(text: str) -> str:
    """The form every turn is classified in: NFKC, format characters (zero-width spaces, joiners) dropped,
    lowercase, single spaces.

    The encoder is uncased and ignores whitespace runs, and the detectors fold text further themselves
    (``classifiers.normalise.fold``, which reads this form exactly as it reads the raw text), so this loses
    nothing the classifier uses, and equal normal forms can share a cache entry.
    """
    composed = unicodedata.normalize("NFKC", text)
    if not composed.isascii():
        composed = "".join(char for char in composed if unicodedata.category(char) != "Cf")
    return " ".join(composed.split()).lower()


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string, ``None``, or a list of parts (only text parts count)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text") or "" for part in content if isinstance(part, dict) and part.get("type") == "text"
    ).strip()


# What of the rest of a chat is read for stakes: the latest user turns before this one, and the tail of the
# latest system/developer/tool messages, each cut to a bounded length. Enough for a voice call's recent history,
# bounded so a long chat costs a bounded number of (cached) encodings.
MAX_EARLIER_USER_TURNS = 12
MAX_INSTRUCTION_MESSAGES = 3
MAX_SEGMENT_CHARS = 400
INSTRUCTION_ROLES = frozenset({"system", "developer"})
# Results of the agent's tools: data about this call, never directives.
TOOL_ROLES = frozenset({"tool", "function"})


def _bounded(text: str) -> str:
    return text[:MAX_SEGMENT_CHARS]


class Conversation(BaseModel):
    """The part of a chat the classifier looks at: the latest user turn and the assistant turn it answers, plus
    the chat's earlier user turns and its system/developer/tool messages, which are read for stakes only."""

    model_config = ConfigDict(frozen=True)

    latest_user_text: str
    previous_assistant_text: str | None = None
    message_count: int = Field(default=1, ge=0)
    has_tools: bool = False
    earlier_user_texts: tuple[str, ...] = ()
    # The assistant text each earlier user turn answers ("" when none), one per ``earlier_user_texts``: an answer
    # to a clinical or security question discloses what its words do not say, in the history as when it was new.
    earlier_user_contexts: tuple[str, ...] = ()
    instruction_texts: tuple[str, ...] = ()
    tool_texts: tuple[str, ...] = ()

    @classmethod
    def from_messages(cls, messages: list[dict[str, Any]], has_tools: bool = False) -> Conversation:
        """Pick the latest user message and the nearest assistant message with text before it.

        An assistant message only counts if no other user message sits between it and the latest one. A chat
        without a user message yields an empty user text (classified like any other turn).
        """
        user_index = next(
            (index for index in range(len(messages) - 1, -1, -1) if messages[index].get("role") == "user"),
            None,
        )
        instructions = _latest_texts(messages, INSTRUCTION_ROLES)
        tool_results = _latest_texts(messages, TOOL_ROLES)
        if user_index is None:
            return cls(
                latest_user_text="",
                message_count=len(messages),
                has_tools=has_tools,
                instruction_texts=instructions,
                tool_texts=tool_results,
            )
        earlier: list[tuple[str, str]] = []  # (user text, the assistant text it answers)
        answered = ""
        for message in messages[:user_index]:
            role = message.get("role")
            if role == "assistant" and (text := message_text(message.get("content"))):
                answered = text
            elif role == "user":
                if text := message_text(message.get("content")):
                    earlier.append((_bounded(text), answered[-MAX_SEGMENT_CHARS:]))
                answered = ""
        earlier = earlier[-MAX_EARLIER_USER_TURNS:]
        previous_assistant = None
        for message in reversed(messages[:user_index]):
            if message.get("role") == "user":
                break
            if message.get("role") == "assistant" and (text := message_text(message.get("content"))):
                previous_assistant = text
                break
        return cls(
            latest_user_text=message_text(messages[user_index].get("content")),
            previous_assistant_text=previous_assistant,
            message_count=len(messages),
            has_tools=has_tools,
            earlier_user_texts=tuple(text for text, _ in earlier),
            earlier_user_contexts=tuple(context for _, context in earlier),
            instruction_texts=instructions,
            tool_texts=tool_results,
        )

    @model_validator(mode="after")
    def _one_context_per_earlier_turn(self) -> Conversation:
        if self.earlier_user_contexts and len(self.earlier_user_contexts) != len(self.earlier_user_texts):
            raise ValueError("earlier_user_contexts needs one entry per earlier user text (or none)")
        return self

    @property
    def earlier_turns(self) -> list[tuple[str, str]]:
        """Each earlier user text with the assistant text it answers ("" when there was none or it is unknown)."""
        contexts = self.earlier_user_contexts or ("",) * len(self.earlier_user_texts)
        return list(zip(self.earlier_user_texts, contexts, strict=True))

    def normalised(self) -> Conversation:
        """The turn in its normal form, cut to what the classifier reads (``MAX_TURN_CHARS`` of each text)."""
        context = normalise_text((self.previous_assistant_text or "")[-MAX_TURN_CHARS:]) or None
        user = normalise_text(self.latest_user_text[:MAX_TURN_CHARS])
        return self.model_copy(
            update={
                "latest_user_text": user,
                "previous_assistant_text": context,
                "earlier_user_texts": tuple(normalise_text(text[:MAX_TURN_CHARS]) for text in self.earlier_user_texts),
                "earlier_user_contexts": tuple(
                    normalise_text(text[-MAX_TURN_CHARS:]) for text in self.earlier_user_contexts
                ),
                "instruction_texts": tuple(normalise_text(text[:MAX_TURN_CHARS]) for text in self.instruction_texts),
                "tool_texts": tuple(normalise_text(text[:MAX_TURN_CHARS]) for text in self.tool_texts),
            }
        )


@dataclass(frozen=True, eq=False)
class _Vector:
    """An array that compares by value, so classifications carrying one still compare with ``==``."""

    values: np.ndarray

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Vector) and np.array_equal(self.values, other.values)

    __hash__ = None  # type: ignore[assignment]


class Classification(BaseModel):
    """Intent and risks of one turn, with the evidence behind them."""

    intent: str
    intent_confidence: float = Field(ge=0.0, le=1.0)
    risks: dict[str, float]
    reasons: list[str]
    detectors: list[str]
    # Consequence of answering wrong (issue 12's routing contract): the calibrated probability that this turn, or
    # an earlier turn or instruction of the chat, is an action on money/account/health/legal, a disclosure of
    # harm, or carries sensitive values; 1.0 on a detector's hard evidence (card number, IBAN, emergency, ...).
    stakes: float = Field(default=0.0, ge=0.0, le=1.0)
    # ``stakes`` at or above the classifier's stakes threshold.
    high_stakes: bool
    # "en", or the other language the turn looks written in ("es", "de", "fr", "pt", "hi", "other").
    language: str = "en"
    # Cosine similarity of the latest user turn's embedding to each of the conversation's ``earlier_user_texts`` (in
    # their order): a caller repeating or rephrasing a request (``call.repeats``, router/voice/circles.py). None when
    # not measured.
    earlier_user_similarity: list[float] | None = None
    # The latest user turn's embedding, kept (not serialised) so tenant catalogs match it without encoding again.
    _embedding: _Vector | None = PrivateAttr(default=None)

    @property
    def embedding(self) -> np.ndarray | None:
        return self._embedding.values if self._embedding is not None else None

    def with_embedding(self, embedding: np.ndarray) -> Classification:
        self._embedding = _Vector(embedding)
        return self


def _latest_texts(messages: list[dict[str, Any]], roles: frozenset[str]) -> tuple[str, ...]:
    """The texts of the last ``MAX_INSTRUCTION_MESSAGES`` messages with one of ``roles``, each bounded."""
    return tuple(
        _bounded(text)
        for message in messages
        if message.get("role") in roles and (text := message_text(message.get("content")))
    )[-MAX_INSTRUCTION_MESSAGES:]
