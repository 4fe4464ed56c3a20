"""What the policy can know about a turn: plain, immutable data (no HTTP, no model runtime)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Kept with a call's seen risks (in memory and in Redis) when a turn of the call was high-stakes: stickiness on
# stakes needs no other state. No risk label may use this name.
HIGH_STAKES_MARK = "high_stakes"
# The intent that gives a caller an open complaint (``CallFacts.caller_open_complaint``) for the policy's
# caller_memory_days, live and in replay alike.
COMPLAINT_INTENT = "complaint"


@dataclass(frozen=True, slots=True)
class VoiceFacts:
    asr_confidence: float | None = None
    interruptions: int | None = None
    call_seconds: float | None = None
    ivr_state: str | None = None
    language: str | None = None
    call_ended: bool = False


@dataclass(frozen=True, slots=True)
class CallFacts:
    """The call so far, before this turn."""

    turn: int = 1
    max_tier: str | None = None
    escalated_at_turn: int | None = None
    risks_seen: frozenset[str] = frozenset()
    caller_open_complaint: bool = False
    high_stakes_seen: bool = False
    # Going in circles, read from the conversation this turn carries (router/voice/circles.py).
    repeats: int = 0
    apologies: int = 0
    tool_failures: int = 0
    frustration: int = 0


@dataclass(frozen=True, slots=True)
class Facts:
    tenant: str
    requested_model: str
    agent: str | None = None
    message_count: int = 1
    prompt_tokens: int = 0
    has_tools: bool = False
    intent: str | None = None
    intent_confidence: float | None = None
    risks: Mapping[str, float] = field(default_factory=dict)
    # The classifier's judgement of consequence (0..1), for this turn and the chat it was sent with.
    stakes: float | None = None
    language: str | None = None
    catalog_intent: str | None = None
    catalog_tier: str | None = None
    classifier_failed: bool = False
    voice: VoiceFacts = VoiceFacts()
    call: CallFacts | None = None
    budget_soft_exceeded: bool = False
