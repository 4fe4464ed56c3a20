"""Turn a chat request into the facts the policy reads: the one seam between the HTTP shape and the policy.

The gateway and the offline replay both build facts here, so a replayed turn is decided exactly as a live one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from classifiers.catalog import CatalogMatch
from classifiers.schemas import Classification
from router.accounting.tokens import prompt_tokens
from router.policy.facts import CallFacts, Facts, VoiceFacts
from router.voice.circles import CircleSignals, circle_signals


@dataclass(frozen=True, slots=True)
class TurnClassification:
    """What the classifiers concluded about the latest user turn."""

    intent: str
    intent_confidence: float
    risks: dict[str, float]
    reasons: tuple[str, ...]
    catalog_intent: str | None = None
    catalog_tier: str | None = None
    stakes: float = 0.0
    language: str = "en"
    # Cosine similarity of the latest user turn to each earlier one the classifier read (None: not measured).
    earlier_user_similarity: tuple[float, ...] | None = None

    @classmethod
    def of(cls, classification: Classification, match: CatalogMatch | None = None) -> TurnClassification:
        return cls(
            intent=classification.intent,
            intent_confidence=classification.intent_confidence,
            risks=dict(classification.risks),
            reasons=tuple(classification.reasons),
            catalog_intent=match.intent_name if match else None,
            catalog_tier=match.tier if match else None,
            stakes=classification.stakes,
            language=classification.language,
            earlier_user_similarity=(
                None
                if classification.earlier_user_similarity is None
                else tuple(classification.earlier_user_similarity)
            ),
        )


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def voice_facts(voice: Any) -> VoiceFacts:
    """``metadata.voice`` as sent by Pipecat/LiveKit integrations; malformed values are ignored, not fatal."""
    if not isinstance(voice, Mapping):
        return VoiceFacts()

    def number(key: str) -> float | None:
        value = voice.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    interruptions = number("interruptions")
    return VoiceFacts(
        asr_confidence=number("asr_confidence"),
        interruptions=int(interruptions) if interruptions is not None else None,
        call_seconds=number("call_seconds"),
        ivr_state=text_or_none(voice.get("ivr_state")),
        language=text_or_none(voice.get("language")),
        call_ended=voice.get("call_ended") is True,
    )


def with_circles(
    call: CallFacts | None,
    messages: Sequence[dict[str, Any]],
    classification: TurnClassification | None = None,
) -> CallFacts | None:
    """The call's facts with its going-in-circles signals; a turn without a call id gets them too when any is
    non-zero (the conversation it carries is its call). Repeats are read by embedding similarity when the turn was
    classified (the classifier measured it with its own encoder, off the event loop)."""
    signals = circle_signals(messages, classification.earlier_user_similarity if classification else None)
    if call is None and signals == CircleSignals():
        return None
    return dataclasses.replace(call or CallFacts(), **dataclasses.asdict(signals))


def turn_facts(
    *,
    tenant: str,
    agent: str | None,
    requested_model: str,
    messages: Sequence[dict[str, Any]],
    tools: list[Any] | None,
    metadata: Mapping[str, Any] | None,
    classification: TurnClassification | None,
    classifier_failed: bool = False,
    call: CallFacts | None = None,
    budget_soft_exceeded: bool = False,
) -> Facts:
    return Facts(
        tenant=tenant,
        agent=agent,
        requested_model=requested_model,
        message_count=len(messages),
        prompt_tokens=prompt_tokens(list(messages), tools),
        has_tools=bool(tools),
        intent=classification.intent if classification else None,
        intent_confidence=classification.intent_confidence if classification else None,
        risks=classification.risks if classification else {},
        stakes=classification.stakes if classification else None,
        language=classification.language if classification else None,
        catalog_intent=classification.catalog_intent if classification else None,
        catalog_tier=classification.catalog_tier if classification else None,
        classifier_failed=classifier_failed,
        voice=voice_facts((metadata or {}).get("voice")),
        call=with_circles(call, messages, classification),
        budget_soft_exceeded=budget_soft_exceeded,
    )
