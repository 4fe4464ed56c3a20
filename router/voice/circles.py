"""Is the call going in circles? Signals read from the conversation a turn carries, for the policy's ``call.*`` facts.

Voice agents send the whole conversation with every turn, so the signals need no state of their own (and replay the
same offline): ``repeats`` — earlier user turns that ask the same as the latest one; ``apologies`` — assistant turns
that apologise or fail to understand; ``tool_failures`` — tool results that report an error, and tool calls repeated
with the same arguments; ``frustration`` — user turns with frustration markers ("I already told you", "let me speak
to a human"). Work is bounded: the last ``MAX_TURNS`` turns of each role, each cut to the classifier's
``MAX_TURN_CHARS``; every pattern runs on RE2 (linear time).

Repeats are read by meaning: the classifier (in its worker thread, with its cached encoder) gives the cosine
similarity of the latest user turn's MiniLM embedding to each earlier user turn it reads (the last 12, 400
characters each; ``classifiers.schemas.Conversation``), and an earlier turn at or above ``SAME_REQUEST_COSINE``
repeats the latest. Both turns need ``MIN_CONTENT_WORDS`` content words: "yes", "no", "okay thanks" are answers,
not requests. The threshold was chosen on ``tests/data/repeat_pairs.csv`` (104 hand-written pairs of caller
requests, clinics / billing / logistics / banking: 52 rephrasings of one request, 52 different requests on the same
subject, such as cancelling vs rescheduling an appointment) and on the traffic generator's calls, which never
repeat a request (``bench/repeat_threshold.py``, shipped int8 encoder):

==========  ==========================  ===========================================
cosine      labelled pairs: precision   generated calls (1,000 calls, 6,532 turns):
            / recall (tp, fp)           turns with 1 / 2 repeats
==========  ==========================  ===========================================
0.60        0.83 / 0.58 (30, 6)         21 / 1
0.65        0.86 / 0.46 (24, 4)         11 / 0
0.70        0.84 / 0.31 (16, 3)         6 / 0
0.75        0.92 / 0.21 (11, 1)         0 / 0
0.775       1.00 / 0.19 (10, 0)         0 / 0
==========  ==========================  ===========================================

0.75 is the lowest threshold at which no generated turn (no caller there repeats a request) counts a single repeat
and precision on the labelled pairs is above 0.9; with it the default policy escalates 0 of the 6,532 generated
turns for going in circles and hands off none. Recall is low on purpose and by nature: a request said again in
nearly the same words scores 0.8 to 1.0, while a rephrasing with other words ("book a collection" / "send a driver
to pick up a package") often scores under 0.6, where different requests on the same subject ("set up" / "cancel a
standing order", 0.71) already are; 9 of the 52 rephrasings have fewer than three content words ("where is my
parcel") and never count. The policy escalates on 2 repeats and hands off on 3, so one false match does nothing.
The step costs the classifier's thread 0.3 ms p50 / about 1 ms p99 a turn and, as a rule, no encoding: the earlier
turns were encoded when each was the latest (0 extra encodings on 1,332 generated turns from an empty cache).

Without a classification (classifier off, failed or over its deadline; a turn sent to a named deployment) the
fallback is lexical: content words with Jaccard similarity ≥ ``SAME_WORDS_JACCARD``, which catches a request said
again in nearly the same words and no rephrasing. Lexical overlap is not added to the embedding signal: on the
labelled pairs it found one rephrasing (which the embeddings also find) and one false repeat ("change the delivery
address" / "change the delivery date").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from classifiers import regex
from classifiers.normalise import MAX_TURN_CHARS, fold
from classifiers.schemas import Conversation
from router.accounting.tokens import content_text

MAX_TURNS = 24
SAME_REQUEST_COSINE = 0.75  # embedding similarity at which two user turns ask the same (see the module docstring)
SAME_WORDS_JACCARD = 0.6  # without embeddings: Jaccard similarity of content words at which two user turns say the same
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


def _is_request(words: frozenset[str]) -> bool:
    return len(words) >= MIN_CONTENT_WORDS


def repeats(
    messages: Sequence[dict[str, Any]],
    earlier_user_similarity: Sequence[float] | None = None,
    threshold: float = SAME_REQUEST_COSINE,
) -> int:
    """Earlier user turns that ask the same as the latest: by the classifier's ``earlier_user_similarity`` (one
    value per ``Conversation.earlier_user_texts``) at ``threshold``, or by shared content words when there is none."""
    conversation = Conversation.from_messages(list(messages))  # the classifier's reading of the same chat
    latest = _content_words(fold(conversation.latest_user_text[:MAX_TURN_CHARS]))
    if not _is_request(latest):
        return 0
    earlier = [_content_words(fold(text[:MAX_TURN_CHARS])) for text in conversation.earlier_user_texts]
    if earlier_user_similarity is None:
        return sum(
            _is_request(words) and len(latest & words) / len(latest | words) >= SAME_WORDS_JACCARD for words in earlier
        )
    return sum(
        _is_request(words) and similarity >= threshold
        for words, similarity in zip(earlier, earlier_user_similarity, strict=True)
    )


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


def circle_signals(
    messages: Sequence[dict[str, Any]], earlier_user_similarity: Sequence[float] | None = None
) -> CircleSignals:
    """The conversation's signals; ``earlier_user_similarity`` is the classifier's, when the turn was classified."""
    users = [m for m in messages if m.get("role") == "user"][-MAX_TURNS:]
    assistants = [m for m in messages if m.get("role") == "assistant"][-MAX_TURNS:]
    tools = [m for m in messages if m.get("role") == "tool"][-MAX_TURNS:]
    calls = list(_tool_calls(assistants))
    return CircleSignals(
        repeats=repeats(messages, earlier_user_similarity),
        apologies=sum(bool(_APOLOGY.search(_text(m))) for m in assistants),
        tool_failures=sum(_tool_failed(content_text(m.get("content"))[:MAX_TURN_CHARS]) for m in tools)
        + len(calls)
        - len(set(calls)),
        frustration=sum(bool(_FRUSTRATION.search(_text(m))) for m in users),
    )
