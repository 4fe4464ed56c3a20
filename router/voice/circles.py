"""Is the call going in circles? Signals read from the conversation a turn carries, for the policy's ``call.*`` facts.

Voice agents send the whole conversation with every turn, so the signals need no state of their own (and replay the
same offline): ``repeats`` — earlier user turns that say the same as the latest one (content words, Jaccard
similarity); ``apologies`` — assistant turns that apologise or fail to understand; ``tool_failures`` — tool results
that report an error, and tool calls repeated with the same arguments; ``frustration`` — user turns with frustration
markers ("I already told you", "let me speak to a human"). Work is bounded: the last ``MAX_TURNS`` turns of each
role, each cut to the classifier's ``MAX_TURN_CHARS``; every pattern runs on RE2 (linear time).

Lexical similarity catches a request said again in nearly the same words (what a caller stuck in a loop does); a
rephrasing with few shared words is not counted, which keeps the signal conservative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from classifiers import regex
from classifiers.normalise import MAX_TURN_CHARS, fold
from router.accounting.tokens import content_text

MAX_TURNS = 24
SIMILAR = 0.6  # Jaccard similarity of content words at which two user turns say the same
MIN_CONTENT_WORDS = 3  # "yes", "no", "okay thanks" are answers, not requests: never repeats

_WORD = regex.compile(r"[^\W\d_]{3,}")
_STOP_WORDS = frozenset(
    {
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "your",
        "yours",
        "with",
        "this",
        "that",
        "have",
        "has",
        "had",
        "was",
        "were",
        "will",
        "would",
        "can",
        "could",
        "should",
        "please",
        "just",
        "can't",
        "don't",
        "i'm",
        "i've",
        "it's",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "why",
        "there",
        "their",
        "they",
        "them",
        "then",
        "than",
        "from",
        "into",
        "about",
        "again",
        "also",
        "very",
        "really",
        "okay",
        "yes",
        "yeah",
        "hello",
        "thanks",
        "thank",
    }
)
_APOLOGY = regex.compile(
    r"\b(sorry|apologi[sz]e|apologies|unfortunately|(did not|didn't|could not|couldn't|cannot|can't|unable to) "
    r"(understand|catch|find|hear|help|process|complete|access|locate))\b"
)
_FRUSTRATION = regex.compile(
    r"(\b(already|just) (told|said|gave|explained)\b|\b(speak|talk) to (a|an|the|some) ?(real )?(human|person|"
    r"agent|representative|manager|operator)\b|\breal person\b|\bnot (listening|helping|working)\b|\b(useless|"
    r"ridiculous|pointless|stupid)\b|\bfor the (second|third|fourth|last) time\b|\bfrustrat|\bhow many times\b)"
)
_TOOL_ERROR = regex.compile(r"^\s*(error|exception|failed|failure|timeout|timed out)\b")


@dataclass(frozen=True, slots=True)
class CircleSignals:
    repeats: int = 0
    apologies: int = 0
    tool_failures: int = 0
    frustration: int = 0


def _text(message: Mapping[str, Any]) -> str:
    return fold(content_text(message.get("content"))[:MAX_TURN_CHARS])


def _content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text) if w not in _STOP_WORDS)


def _same_request(latest: frozenset[str], earlier: frozenset[str]) -> bool:
    if len(latest) < MIN_CONTENT_WORDS or len(earlier) < MIN_CONTENT_WORDS:
        return False
    return len(latest & earlier) / len(latest | earlier) >= SIMILAR


def _tool_failed(content: str) -> bool:
    if _TOOL_ERROR.search(fold(content)):
        return True
    try:
        result = orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(result, dict):
        return False
    status = result.get("status")
    return bool(result.get("error")) or result.get("ok") is False or status in ("error", "failed", "failure")


def _tool_calls(messages: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    for message in messages:
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                yield str(function.get("name"))[:MAX_TURN_CHARS], str(function.get("arguments"))[:MAX_TURN_CHARS]


def circle_signals(messages: Sequence[Mapping[str, Any]]) -> CircleSignals:
    users = [m for m in messages if m.get("role") == "user"][-MAX_TURNS:]
    assistants = [m for m in messages if m.get("role") == "assistant"][-MAX_TURNS:]
    tools = [m for m in messages if m.get("role") == "tool"][-MAX_TURNS:]
    user_texts = [_text(m) for m in users]
    repeats = 0
    if user_texts:
        latest = _content_words(user_texts[-1])
        repeats = sum(_same_request(latest, _content_words(text)) for text in user_texts[:-1])
    calls = list(_tool_calls(assistants))
    return CircleSignals(
        repeats=repeats,
        apologies=sum(bool(_APOLOGY.search(_text(m))) for m in assistants),
        tool_failures=sum(_tool_failed(content_text(m.get("content"))[:MAX_TURN_CHARS]) for m in tools)
        + len(calls)
        - len(set(calls)),
        frustration=sum(bool(_FRUSTRATION.search(text)) for text in user_texts),
    )
