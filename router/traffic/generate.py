"""Deterministic sample traffic: multi-turn voice calls to four businesses, written as a traffic log.

Each call is planned from its domain's scenarios (see ``router.traffic.domains``): an optional hello, the reason
for calling, identity checks, the body of the scenario, detours (side questions, chatter, "can you repeat that")
and usually a goodbye, 3 to 14 caller turns in all. The caller's lines go through the call's speech recogniser
(``router.traffic.asr``); the agent's lines are clean, as a model writes them.

One record is written per caller turn: the request the voice platform would send after that turn (system prompt,
the whole conversation so far, the tools offered), with the usage the upstream would bill for it: the prompt's
tokens (tool schemas included), cached prefix tokens once the prompt passes 1,024 tokens, and the agent's next
line as the completion (clamped to 20..200 tokens). Records are written in time order, so calls interleave as in
a live log, and masked like every traffic log. The live ``decision`` is left empty: sample traffic was never
routed, and replaying it is what ``switchboard replay`` is for.

Same calls and seed → byte-identical output.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from router.accounting.tokens import prompt_tokens, text_tokens
from router.accounting.usage import Usage
from router.traffic.asr import AsrProfile
from router.traffic.domains import DOMAINS
from router.traffic.identities import CallerValues
from router.traffic.log import (
    Masker,
    TrafficMetadata,
    TrafficRecord,
    VoiceMetadata,
    logged_messages,
    masked_messages,
    tool_names,
)
from router.traffic.phrases import ASIDES, CLOSING, HELLO, Beat, Domain, Scenario

MIN_TURNS, MAX_TURNS = 3, 14
MIN_COMPLETION, MAX_COMPLETION = 20, 200
# Providers cache a prompt prefix once it reaches this many tokens, in blocks of CACHE_BLOCK.
CACHE_MIN_TOKENS, CACHE_BLOCK = 1024, 128
# Calls start on the working days of one week, office hours, so sample logs do not depend on today's date.
FIRST_CALL = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
WORKING_DAYS, OPEN_SECONDS = 5, 10 * 3600
# Distinct callers per call: some callers ring more than once, as complaints and follow-ups do.
CALLERS_PER_CALL = 0.7
REQUESTED_MODEL = "auto"
# Scenarios whose calls are short and urgent: no side questions, no chatter.
URGENT_RISKS = frozenset({"emergency"})


@dataclass(frozen=True)
class SampleTurn:
    """One generated record and the generator's ground truth for its caller line."""

    record: TrafficRecord
    domain: str
    scenario: str
    beat: Beat

    @property
    def category(self) -> str:
        return self.beat.category


def _weighted(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([option for option, _ in options], weights=[weight for _, weight in options])[0]


def _detour(domain: Domain, scenario: Scenario, taken: Sequence[Beat], rng: random.Random) -> Beat:
    """A side question or aside not asked yet in the call: the scenario's own first, then the domain's FAQs."""
    pools = [
        (fresh, weight)
        for pool, weight in ((scenario.asides, 0.55), (domain.faqs, 0.3))
        if (fresh := [beat for beat in pool if beat not in taken])
    ]
    pools.append((list(ASIDES), 0.15))
    return rng.choice(_weighted(rng, pools))


def plan_call(domain: Domain, scenario: Scenario, rng: random.Random) -> list[Beat]:
    """The beats of one call, in order: 3..14 caller turns."""
    opener = rng.choice(scenario.openers)
    urgent = bool(opener.risks & URGENT_RISKS)
    identity = list(scenario.identity[: rng.randint(1, len(scenario.identity))]) if scenario.identity else []
    body = [opener, *identity, *scenario.core]
    if not urgent and rng.random() < 0.3:
        body.insert(0, HELLO)
    closes = rng.random() < (0.5 if urgent else 0.85)
    wanted = 0 if urgent else max(0, round(rng.gauss(scenario.detours, 1.5)))
    wanted = max(wanted, MIN_TURNS - len(body) - closes)
    for _ in range(wanted):
        detour = scenario.core[-1] if urgent else _detour(domain, scenario, body, rng)
        body.insert(rng.randint(body.index(opener) + 1 + len(identity), len(body)), detour)
    if closes:
        body.append(CLOSING)
    if len(body) > MAX_TURNS:
        body = [*body[: MAX_TURNS - 1], body[-1]]
    return body


class CallWriter:
    """Turns a planned call into records: speech, the agent's lines, voice metadata, usage."""

    def __init__(self, rng: random.Random, masker: Masker) -> None:
        self._rng = rng
        self._masker = masker

    def _line(self, options: Sequence[str], used: set[str]) -> str:
        fresh = [option for option in options if option not in used] or list(options)
        choice = self._rng.choice(fresh)
        used.add(choice)
        return choice

    def _agent_line(self, reply_to: Beat | None, leads_into: Beat | None, values: CallerValues, used: set[str]) -> str:
        parts = []
        if reply_to is not None:
            parts.append(self._line(reply_to.replies, used))
        if leads_into is not None and leads_into.prompts:
            parts.append(self._line(leads_into.prompts, used))
        return values.fill(" ".join(parts))

    def write(
        self, domain: Domain, scenario: Scenario, beats: list[Beat], caller_id: str, started: datetime
    ) -> list[SampleTurn]:
        rng = self._rng
        values = CallerValues(rng)
        asr = AsrProfile.draw(rng)
        language = _weighted(rng, domain.languages)
        call_id = f"call-{rng.getrandbits(64):016x}"
        agent = scenario.agent or domain.agent
        tools = list(domain.tools)
        used: set[str] = set()
        greeting = rng.choice(domain.greetings)
        first_prompt = self._agent_line(None, beats[0], values, used)
        conversation: list[dict[str, Any]] = [
            {"role": "system", "content": domain.system_prompt},
            {"role": "assistant", "content": f"{greeting} {first_prompt}".strip()},
        ]
        seconds = _speaking_seconds(conversation[-1]["content"], rng)
        interruptions = 0
        prompt_base = prompt_tokens([], tools)
        message_tokens = [_message_tokens(m) for m in conversation]
        previous_prompt = 0
        identity_left = sum(1 for b in beats if b in scenario.identity)
        turns = []
        for index, beat in enumerate(beats):
            spoken = values.fill(self._line(beat.caller, used))
            transcript, confidence = asr.transcribe(spoken, rng)
            seconds += _speaking_seconds(spoken, rng) + rng.uniform(0.2, 1.2)
            if rng.random() < (0.25 if beat.intent == "complaint" else 0.07):
                interruptions += 1
            conversation.append({"role": "user", "content": transcript})
            message_tokens.append(_message_tokens(conversation[-1]))
            identity_left -= beat in scenario.identity
            next_beat = beats[index + 1] if index + 1 < len(beats) else None
            answer = self._agent_line(beat, next_beat, values, used)
            prompt = prompt_base + sum(message_tokens)
            usage = _billed(prompt, previous_prompt, answer, rng)
            voice = VoiceMetadata(
                asr_confidence=confidence,
                interruptions=interruptions,
                call_seconds=round(seconds, 1),
                language=language,
                ivr_state=(domain.ivr_states[identity_left == 0] if domain.ivr_states else None),
            )
            record = TrafficRecord(
                ts=started + timedelta(seconds=seconds),
                request_id=f"req-{rng.getrandbits(96):024x}",
                call_id=call_id,
                caller_id=caller_id,
                tenant=domain.tenant,
                agent=agent,
                requested_model=REQUESTED_MODEL,
                messages=masked_messages(logged_messages(conversation), self._masker),
                tools=tool_names(tools),
                metadata=TrafficMetadata(voice=voice),
                usage=usage,
            )
            turns.append(SampleTurn(record, domain.name, scenario.name, beat))
            conversation.append({"role": "assistant", "content": answer})
            message_tokens.append(_message_tokens(conversation[-1]))
            seconds += _speaking_seconds(answer, rng) + rng.uniform(0.4, 1.5)
            previous_prompt = prompt
        return turns


def _message_tokens(message: dict[str, Any]) -> int:
    """What one message adds to a prompt's token count (counted once, though every later turn resends it)."""
    return prompt_tokens([message]) - prompt_tokens([])


def _billed(prompt: int, previous_prompt: int, answer: str, rng: random.Random) -> Usage:
    """The upstream's bill: the previous turn's prompt is this one's prefix, so once long enough it is cached
    (in whole blocks, and not always: caches get evicted)."""
    cached = previous_prompt // CACHE_BLOCK * CACHE_BLOCK if previous_prompt >= CACHE_MIN_TOKENS else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=min(max(text_tokens(answer), MIN_COMPLETION), MAX_COMPLETION),
        cached_prompt_tokens=cached if rng.random() < 0.9 else 0,
    )


def _speaking_seconds(text: str, rng: random.Random) -> float:
    """How long saying ``text`` takes: about 2.5 words a second, give or take."""
    return len(text.split()) / rng.uniform(2.2, 2.9)


def sample_turns(calls: int, seed: int, masker: Masker) -> list[SampleTurn]:
    """The turns of ``calls`` generated calls, in time order (calls interleave)."""
    rng = random.Random(seed)
    writer = CallWriter(rng, masker)
    callers = max(1, round(calls * CALLERS_PER_CALL / len(DOMAINS)))
    turns: list[SampleTurn] = []
    for _ in range(calls):
        domain = rng.choice(DOMAINS)
        scenario = _weighted(rng, [(s, s.weight) for s in domain.scenarios])
        started = FIRST_CALL + timedelta(days=rng.randrange(WORKING_DAYS), seconds=rng.uniform(0, OPEN_SECONDS))
        caller_id = f"caller-{rng.randrange(callers):06d}"
        turns.extend(writer.write(domain, scenario, plan_call(domain, scenario, rng), caller_id, started))
    turns.sort(key=lambda turn: (turn.record.ts, turn.record.request_id))
    return turns


def write_sample_log(path: Path, calls: int, seed: int, masker: Masker) -> int:
    """Write ``calls`` generated calls to ``path`` as a traffic log; returns the number of records."""
    turns = sample_turns(calls, seed, masker)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as log:
        log.writelines(turn.record.to_line() for turn in turns)
    return len(turns)
