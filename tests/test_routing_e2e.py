"""Classified routing end to end: the shipped classifier and default policy behind a real gateway.

The routing contract (policies/README.md) is checked here on the gateway's own decision, read from the
``x-switchboard-*`` headers of real ``openai`` SDK calls: contract examples, the adversarial suite
(``tests/data/adversarial.jsonl``: risk only in an earlier turn or in a system/tool message, look-alike letters,
leetspeak, misspellings, zero-width characters, a bland answer to the agent's clinical or security question) and
multi-turn calls with a call id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway


@pytest.fixture(scope="module")
def classified_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp_path: Path = tmp_path_factory.mktemp("routing")
    with (
        SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour(output_tokens=8)})) as simulator,
        make_gateway(tmp_path, gateway_config(simulator.base_url), classifier="on") as gateway,
    ):
        yield gateway


ADVERSARIAL = Path(__file__).resolve().parent / "data" / "adversarial.jsonl"


def route(gateway: GatewayServer, messages: list[dict[str, Any]], call_id: str | None = None) -> dict[str, str]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, extra_headers={"X-Call-Id": call_id} if call_id else None
        )
    assert raw.parse().choices[0].message.content
    return dict(raw.headers)


def adversarial_cases(expect: str) -> list[dict[str, Any]]:
    cases = [json.loads(line) for line in ADVERSARIAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [case for case in cases if case["expect"] == expect]


def test_the_adversarial_suite_has_the_categories_of_issue_12() -> None:
    risky = adversarial_cases("not_small")
    assert len(risky) >= 100
    assert {case["category"] for case in risky} >= {
        "issue_example",
        "earlier_user_turn",
        "system_or_tool_message",
        "cyrillic_lookalike",
        "leetspeak",
        "misspelling",
        "answer_to_disclosing_question",
    }


@pytest.mark.e2e
def test_an_opening_hours_question_goes_to_the_small_tier(classified_gateway: GatewayServer) -> None:
    headers = route(classified_gateway, [{"role": "user", "content": "what time do you open tomorrow"}])
    assert headers["x-switchboard-intent"] == "faq"
    assert headers["x-switchboard-risk"] == "none"
    assert (headers["x-switchboard-tier"], headers["x-switchboard-rule"]) == ("small", "no-stakes")


@pytest.mark.e2e
def test_a_card_dispute_goes_to_frontier(classified_gateway: GatewayServer) -> None:
    headers = route(
        classified_gateway, [{"role": "user", "content": "I want to dispute a 300 dollar charge on my card"}]
    )
    assert headers["x-switchboard-intent"] == "transaction"
    assert "payment" in headers["x-switchboard-risk"].split(",")
    assert headers["x-switchboard-tier"] == "frontier"


@pytest.mark.e2e
def test_chest_pain_goes_to_frontier_by_the_emergency_floor(classified_gateway: GatewayServer) -> None:
    headers = route(classified_gateway, [{"role": "user", "content": "my chest hurts and my left arm is numb"}])
    assert "emergency" in headers["x-switchboard-risk"].split(",")
    assert headers["x-switchboard-tier"] == "frontier"
    # Whatever rule fired, the stakes floor (the emergency detector's hard evidence) is what guarantees the tier.
    assert "floor:high_stakes(1.00)->frontier" in headers["x-switchboard-reasons"]


@pytest.mark.e2e
def test_a_card_number_after_the_agent_asked_for_it_is_a_payment_turn(classified_gateway: GatewayServer) -> None:
    headers = route(
        classified_gateway,
        [
            {"role": "assistant", "content": "Sure. Can I have the card number, please?"},
            {"role": "user", "content": "four one one one one one one one one one one one one one one one"},
        ],
    )
    assert "payment" in headers["x-switchboard-risk"].split(",")
    assert headers["x-switchboard-tier"] == "frontier"


@pytest.mark.e2e
def test_no_adversarial_turn_reaches_the_small_tier(classified_gateway: GatewayServer) -> None:
    leaks = []
    for case in adversarial_cases("not_small"):
        headers = route(classified_gateway, case["messages"])
        if headers["x-switchboard-tier"] == "small":
            leaks.append((case["category"], case["messages"][-1]["content"], headers.get("x-switchboard-reasons")))
    assert leaks == []


def small_safe_params() -> list[Any]:
    """One case per small-safe turn; a known miss of the shipped model is a strict xfail, so it is reported and
    a model that fixes it turns the xfail into a failure to be cleared."""
    return [
        pytest.param(
            case,
            id=case["messages"][-1]["content"][:40],
            marks=[pytest.mark.xfail(reason=case["known_miss"], strict=True)] if "known_miss" in case else [],
        )
        for case in adversarial_cases("small")
    ]


@pytest.mark.e2e
@pytest.mark.parametrize("case", small_safe_params())
def test_small_safe_turns_of_the_contract_go_small(classified_gateway: GatewayServer, case: dict[str, Any]) -> None:
    """Fees, limits, exchange rates, supported cards, hours, delivery times, greetings, slot values, chatter,
    routine ordering, a benign system prompt, and "I'll pay by card" in a food order."""
    headers = route(classified_gateway, case["messages"])
    assert (headers["x-switchboard-tier"], headers["x-switchboard-rule"]) == ("small", "no-stakes")


@pytest.mark.e2e
def test_an_insurance_claim_makes_the_rest_of_the_call_sticky(classified_gateway: GatewayServer) -> None:
    call = "call-insurance-claim"
    # Each request sends only the latest turn: stickiness comes from the call id, not from the history.
    tiers = [
        route(classified_gateway, [{"role": "user", "content": user}], call_id=call)["x-switchboard-tier"]
        for user in [
            "hi, good morning",
            "I need to file a claim for my car, someone backed into it",
            "okay",
            "thanks, that's all",
        ]
    ]
    assert tiers[0] == "small"
    assert tiers[1:] == ["frontier", "frontier", "frontier"]
    last = route(classified_gateway, [{"role": "user", "content": "bye"}], call_id=call)
    assert "floor:high_stakes(earlier in call)->frontier" in last["x-switchboard-reasons"]


@pytest.mark.e2e
def test_paying_by_card_in_a_food_order_does_not_make_the_call_sticky(classified_gateway: GatewayServer) -> None:
    call = "call-pizza-order"
    tiers = [
        route(classified_gateway, [{"role": "user", "content": user}], call_id=call)["x-switchboard-tier"]
        for user in [
            "hi, can I order a large margherita for delivery",
            "and a bottle of coke",
            "I'll pay by card",
            "how long will it take",
            "great, thanks, bye",
        ]
    ]
    assert tiers == ["small"] * 5


@pytest.mark.e2e
def test_a_risk_in_the_sent_history_counts_without_a_call_id(classified_gateway: GatewayServer) -> None:
    headers = route(
        classified_gateway,
        [
            {"role": "user", "content": "there's a cash withdrawal on my account that I never made"},
            {"role": "assistant", "content": "I'm sorry to hear that. Let me look into it."},
            {"role": "user", "content": "okay, thanks"},
        ],
    )
    assert headers["x-switchboard-tier"] == "frontier"
    assert headers["x-switchboard-reasons"].startswith("floor:high_stakes(")
