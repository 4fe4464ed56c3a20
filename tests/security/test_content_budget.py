"""Images and audio are not free against budgets: a turn's reservation counts them at their upper bound on each
deployment, and content that cannot be priced is refused when a budget applies (issue 11, item 4)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from router.accounting.tokens import MediaParts, image_tokens, media_parts
from router.simulator import SimulatorServer
from tests.conftest import gateway_config, make_gateway

HARD_LIMIT_USD = 0.05
PIXEL_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def image(detail: str | None = None) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": PIXEL_PNG, **({"detail": detail} if detail else {})}}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": "what is in these?"}, *parts]}


def test_images_count_at_the_most_their_detail_level_costs() -> None:
    parts = media_parts([user(image("low"), image("high"), image())])
    assert (parts.low_detail_images, parts.images) == (1, 2)
    assert parts.token_bound("openai/gpt-4o") == 85 + 2 * (85 + 170 * 8)  # 2x4 tiles is the most after scaling
    assert parts.token_bound("openai/gpt-4o-mini") == 2833 + 2 * (2833 + 5667 * 8)
    assert parts.token_bound("openai/gpt-4.1-nano") == 3 * 3779  # patch-billed: 1536 patches x 2.46, any detail
    assert parts.token_bound("anthropic/claude-sonnet-4-5") == 3 * 1600
    assert image_tokens("hosted_vllm/some-vision-model").high >= max(image_tokens(m).high for m in ("gpt-4o", "o3"))


def test_audio_counts_by_its_size_and_unpriceable_parts_are_named() -> None:
    seconds_of_audio = 30
    data = base64.b64encode(b"\0" * 500 * seconds_of_audio).decode()
    audio = {"type": "input_audio", "input_audio": {"data": data, "format": "mp3"}}
    assert media_parts([user(audio)]).token_bound("openai/gpt-4o-audio-preview") == seconds_of_audio * 32
    refusal = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that " * 50}]}
    assert media_parts([refusal]).token_bound("openai/gpt-4o") >= 250
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    assert media_parts([user(pdf)]).unpriceable == "messages[0].content[1]"
    replayed_audio = {"role": "assistant", "audio": {"id": "audio_abc"}}
    assert media_parts([user(), replayed_audio]).unpriceable == "messages[1].audio"
    assert media_parts([user()]) == MediaParts()


@pytest.mark.e2e
def test_a_megabyte_of_images_cannot_spend_past_a_hard_limit(tmp_path: Path, simulator: SimulatorServer) -> None:
    config = gateway_config(simulator.base_url, budgets={"tenants": {"acme": {"daily": {"hard_usd": HARD_LIMIT_USD}}}})
    many_images = user(*(image("low") for _ in range(6000)))
    body = orjson.dumps({"model": "auto", "messages": [many_images]})
    assert len(body) > 1_000_000
    with make_gateway(tmp_path, config) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"
        headers = {"X-Tenant": "acme", "content-type": "application/json"}
        for _ in range(3):
            refused = httpx.post(url, content=body, headers=headers, timeout=60)
            assert refused.status_code == 429, refused.text[:300]
            assert refused.json()["error"]["code"] == "budget_exceeded"

        # An ordinary picture still fits, and costs no more than was held for it.
        one_image = httpx.post(url, json={"model": "small", "messages": [user(image())]}, headers={"X-Tenant": "acme"})
        assert one_image.status_code == 200, one_image.text
        (daily,) = httpx.get(f"{gateway.base_url}/v1/budgets", headers={"X-Tenant": "acme"}).json()["data"]
    assert 0 < daily["spent_usd"] <= HARD_LIMIT_USD
    assert daily["spent_usd"] == pytest.approx(float(one_image.headers["x-switchboard-cost-usd"]), abs=1e-9)


@pytest.mark.e2e
def test_content_that_cannot_be_priced_is_refused_only_under_a_budget(
    tmp_path: Path, simulator: SimulatorServer
) -> None:
    config = gateway_config(simulator.base_url, budgets={"tenants": {"acme": {"daily": {"hard_usd": HARD_LIMIT_USD}}}})
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    body = {"model": "small", "messages": [user(pdf)]}
    with make_gateway(tmp_path, config) as gateway:
        url = f"{gateway.base_url}/v1/chat/completions"
        refused = httpx.post(url, json=body, headers={"X-Tenant": "acme"})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert (error["code"], error["param"]) == ("unpriceable_content", "messages[0].content[1]")
        assert httpx.post(url, json=body, headers={"X-Tenant": "no-budget"}).status_code == 200
