"""Going in circles: the signals read from a conversation, and the default policy's escalation and handoff on them."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytest

from classifiers.embeddings import CachingEncoder
from classifiers.pipeline import TurnClassifier
from classifiers.schemas import Conversation
from router.config import load_config
from router.facts import TurnClassification, turn_facts
from router.policy.facts import CallFacts, Facts
from router.policy.store import load_policy
from router.voice.circles import CircleSignals, circle_signals, repeats

REQUEST = "I need to change the delivery address of my order"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str = "", **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **fields}


def facts_of(
    chat: list[dict[str, Any]], classification: TurnClassification | None = None, call: CallFacts | None = None
) -> Facts:
    """The policy facts of an auto-routed turn carrying ``chat``."""
    return turn_facts(
        tenant="t",
        agent=None,
        requested_model="auto",
        messages=chat,
        tools=None,
        metadata=None,
        classification=classification,
        call=call,
    )


PAIRS = Path(__file__).parent / "data" / "repeat_pairs.csv"


@pytest.fixture(scope="module")
def classifier() -> TurnClassifier:
    """The shipped classifier with the gateway's caching encoder (about a second to load)."""
    return TurnClassifier.load()


def classified(classifier: TurnClassifier, chat: list[dict[str, Any]]) -> TurnClassification:
    return TurnClassification.of(classifier.classify(Conversation.from_messages(chat)))


def test_a_rephrased_request_is_a_repeat_by_meaning(classifier: TurnClassifier) -> None:
    chat = [
        user("I need to cancel my order"),
        assistant("Sorry, which order?"),
        user("please just cancel the order I placed"),
    ]
    assert repeats(chat) == 0  # few shared words: the lexical rule misses it
    assert circle_signals(chat, classified(classifier, chat).earlier_user_similarity).repeats == 1


def test_a_different_request_on_the_same_subject_and_short_answers_are_not_repeats(classifier: TurnClassifier) -> None:
    chat = [user(REQUEST), assistant("Done."), user("Can I also book a delivery slot for Friday afternoon?")]
    assert circle_signals(chat, classified(classifier, chat).earlier_user_similarity).repeats == 0
    chat = [user("yes"), assistant("Great."), user("yes"), assistant("Ok."), user("yes")]
    similarity = classified(classifier, chat).earlier_user_similarity
    assert similarity == pytest.approx((1.0, 1.0))  # the same word, and still no request
    assert circle_signals(chat, similarity).repeats == 0


def test_the_similarity_is_one_value_per_earlier_user_turn_from_cached_vectors(classifier: TurnClassifier) -> None:
    encoder = classifier.encoder
    assert isinstance(encoder, CachingEncoder)
    lines = ["I need to cancel my order", "", "order number 4471", "please just cancel the order I placed"]
    chat: list[dict[str, Any]] = []
    for line in lines:  # a call, turn by turn, as the gateway classifies it
        chat += [user(line)]
        before = encoder.encoded
        similarity = classified(classifier, chat).earlier_user_similarity
        chat += [assistant("Let me check.")]
    assert encoder.encoded - before <= 1  # the latest turn at most: earlier turns' vectors come from the cache
    assert similarity is not None and len(similarity) == len(Conversation.from_messages(chat).earlier_user_texts) == 2
    assert similarity[0] > 0.75 > similarity[1]


def test_the_labelled_pairs_hold_the_documented_precision(classifier: TurnClassifier) -> None:
    """The figures in router/voice/circles.py at the shipped threshold: 11 rephrasings found, 1 false repeat."""
    with PAIRS.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= 100 and {row["domain"] for row in rows} == {"clinic", "billing", "logistics", "banking"}
    found = {"same": 0, "different": 0}
    for row in rows:
        chat = [user(row["earlier"]), assistant("Let me look into that."), user(row["latest"])]
        found[row["label"]] += repeats(chat, classified(classifier, chat).earlier_user_similarity) > 0
    assert found == {"same": 11, "different": 1}


def test_repeats_follow_the_classifiers_similarity_when_there_is_one() -> None:
    chat = [user(REQUEST), assistant("Let me check."), user("we keep going round, my parcel must go elsewhere")]

    def call_repeats(similarity: tuple[float, ...] | None) -> int:
        classification = None
        if similarity is not None:
            classification = TurnClassification("faq", 0.9, {}, (), earlier_user_similarity=similarity)
        facts = facts_of(chat, classification)
        return facts.call.repeats if facts.call else 0

    assert call_repeats(None) == 0  # no classification: shared words only
    assert call_repeats((0.9,)) == 1
    assert call_repeats((0.5,)) == 0


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
        return engine.decide(facts_of(chat, call=call))

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
