"""Issue 11, item 1 (deadline): a classification that overruns its deadline must not hold the turn.

The turn is routed by the policy's ``classifier_failure`` route and answered; the classification goes on in its
worker, and its result serves the next identical turn.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from classifiers.schemas import Classification, Conversation
from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway

DEADLINE_MS = 100
WORKER_STALL_S = 3.0


@pytest.fixture
def gateway_with_a_stalling_classifier(tmp_path: Path, simulator: SimulatorServer) -> Iterator[GatewayServer]:
    config = gateway_config(simulator.base_url, limits={"classification_deadline_ms": DEADLINE_MS})
    with make_gateway(tmp_path, config, classifier="on") as server:
        model = server.services.gateway.classifier._batching.classifier
        classify_batch = model.classify_batch

        def stalling(conversations: Sequence[Conversation]) -> list[Classification]:
            time.sleep(WORKER_STALL_S)  # in the classifier's worker thread, as a slow model or a busy CPU would
            return classify_batch(conversations)

        model.classify_batch = stalling
        yield server


@pytest.mark.e2e
def test_a_turn_whose_classification_overruns_is_routed_by_classifier_failure(
    gateway_with_a_stalling_classifier: GatewayServer,
) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "what time do you open tomorrow"}]}
    url = f"{gateway_with_a_stalling_classifier.base_url}/v1/chat/completions"
    # A pinned turn (not classified) first: what a fresh gateway loads on its first request is not measured.
    assert httpx.post(url, json={**body, "model": "small"}, timeout=10).status_code == 200
    started = time.perf_counter()
    response = httpx.post(url, json=body, timeout=10)
    elapsed = time.perf_counter() - started

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    # The default policy's classifier_failure route is frontier.
    assert response.headers["x-switchboard-tier"] == "frontier"
    assert "classifier_failed" in response.headers["x-switchboard-reasons"]
    assert "x-switchboard-intent" not in response.headers
    assert elapsed < WORKER_STALL_S, f"the turn waited {elapsed:.2f} s for its classification"

    # The worker was not abandoned: once it finishes, the same turn is classified from its cache within the deadline.
    time.sleep(WORKER_STALL_S)
    again = httpx.post(url, json=body, timeout=10)
    assert again.status_code == 200
    assert again.headers["x-switchboard-intent"] == "faq"
    assert "classifier_failed" not in again.headers.get("x-switchboard-reasons", "")
