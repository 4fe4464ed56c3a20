"""Going in circles: the signals read from a conversation, and the default policy's escalation and handoff on them."""

from __future__ import annotations

import time
from typing import Any

from router.config import load_config
from router.facts import turn_facts
from router.policy.facts import CallFacts
from router.policy.store import load_policy
from router.voice.circles import CircleSignals, circle_signals

REQUEST = "I need to change the delivery address of my order"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str = "", **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **fields}


def test_a_request_said_again_in_nearly_the_same_words_is_a_repeat() -> None:
    chat = [
        user(REQUEST),
        assistant("Sorry, I didn't catch that."),
        user("I need to change my delivery address for the order"),
        assistant("Could you say that again?"),
        user("I already told you, I need to change the delivery address of my order!"),
    ]
    assert circle_signals(chat) == CircleSignals(repeats=2, apologies=1, frustration=1)


def test_short_answers_and_different_requests_are_not_repeats() -> None:
    chat = [user("yes"), assistant("Great."), user("yes"), assistant("Ok."), user("yes please")]
    assert circle_signals(chat).repeats == 0
    chat = [user(REQUEST), assistant("Done."), user("Can I also book a delivery slot for Friday afternoon?")]
    assert circle_signals(chat).repeats == 0


def test_failed_tools_and_the_same_call_again_count_as_tool_failures() -> None:
    lookup = {"id": "c1", "type": "function", "function": {"name": "find_order", "arguments": '{"id": "42"}'}}
    chat = [
        user("Where is order 42?"),
        assistant(tool_calls=[lookup]),
        {"role": "tool", "tool_call_id": "c1", "content": '{"error": "upstream timeout"}'},
        assistant(tool_calls=[{**lookup, "id": "c2"}]),
        {"role": "tool", "tool_call_id": "c2", "content": "Error: order service unavailable"},
        {"role": "tool", "tool_call_id": "c3", "content": '{"status": "delivered"}'},
    ]
    assert circle_signals(chat).tool_failures == 3  # two error results and one repeated call


def test_the_default_policy_escalates_then_recommends_a_handoff() -> None:
    loaded = load_config(None)
    engine = load_policy(loaded.policy_path(), loaded.config).engine

    def decide(chat: list[dict[str, Any]], max_tier: str | None) -> Any:
        call = CallFacts(turn=len([m for m in chat if m["role"] == "user"]), max_tier=max_tier)
        facts = turn_facts(
            tenant="t",
            agent=None,
            requested_model="auto",
            messages=chat,
            tools=None,
            metadata=None,
            classification=None,
            classifier_failed=False,
            call=call,
        )
        return engine.decide(facts)

    chat = [user(REQUEST)]
    assert decide(chat, None).rule != "going-in-circles"
    for _ in range(2):
        chat += [assistant("Let me check."), user(REQUEST)]
    escalated = decide(chat, "standard")
    assert (escalated.rule, escalated.tier, escalated.handoff) == ("going-in-circles", "frontier", None)
    chat += [assistant("Let me check."), user(REQUEST)]
    assert decide(chat, "standard").handoff is None  # never escalated yet: escalate first
    handed = decide(chat, "frontier")
    assert handed.handoff == "circles-after-escalation" and handed.handoff_reason


def test_work_on_a_hostile_conversation_is_bounded() -> None:
    hostile = "help " * 80_000  # 400 kB a turn
    chat = [message for _ in range(500) for message in (user(hostile), assistant(hostile))]
    chat += [{"role": "tool", "tool_call_id": "x", "content": "{" * 100_000}] * 100
    started = time.perf_counter()
    signals = circle_signals(chat)
    elapsed = time.perf_counter() - started
    # 24 turns of each role, 2,048 characters each, whatever the body (0.12 s on the busy 2-core machine).
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert signals.repeats == 0  # one content word ("help") is no request
