"""Classified routing end to end: the shipped classifier and default policy behind a real gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def route(gateway: GatewayServer, messages: list[dict[str, str]]) -> dict[str, str]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert raw.parse().choices[0].message.content
    return dict(raw.headers)


@pytest.mark.e2e
def test_an_opening_hours_question_goes_to_the_small_tier(classified_gateway: GatewayServer) -> None:
    headers = route(classified_gateway, [{"role": "user", "content": "what time do you open tomorrow"}])
    assert headers["x-switchboard-intent"] == "faq"
    assert headers["x-switchboard-risk"] == "none"
    assert (headers["x-switchboard-tier"], headers["x-switchboard-rule"]) == ("small", "chatter-and-lookups")


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
    # Whatever rule fired, the emergency floor is what guarantees the tier.
    assert (
        headers["x-switchboard-rule"] == "default" and "floor:emergency->frontier" in headers["x-switchboard-reasons"]
    )


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
