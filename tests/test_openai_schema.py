"""router/providers/normalise.py against OpenAI's published schema, on what real providers send (no servers).

The inputs are shaped like what litellm hands back for Anthropic (nulls for every field it knows, provider extras,
Anthropic's cache counters) and what OpenAI-compatible servers such as vLLM send (``system_fingerprint: null``,
``reasoning_content``); the outputs must pass the spec as published and closed (tests/openai_spec.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from router.accounting.usage import Usage
from router.providers import normalise
from tests.openai_spec import CHUNK, COMPLETION, ERROR, MODELS, violations

LITELLM_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "created": 1796240670,
    "model": "claude-sonnet-4-5",
    "object": "chat.completion",
    "system_fingerprint": None,
    "choices": [
        {
            "finish_reason": "tool_calls",
            "index": 0,
            "message": {
                "content": None,
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
                "function_call": None,
                "provider_specific_fields": {"citations": None, "thinking_blocks": None},
                "reasoning_content": None,
                "thinking_blocks": None,
            },
        }
    ],
    "usage": {
        "completion_tokens": 18,
        "prompt_tokens": 1016,
        "total_tokens": 1034,
        "completion_tokens_details": {"accepted_prediction_tokens": None, "reasoning_tokens": 0, "text_tokens": 18},
        "prompt_tokens_details": {"audio_tokens": None, "cached_tokens": 8, "cache_creation_tokens": 1000},
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 8,
    },
    "_hidden_params": {"custom_llm_provider": "anthropic"},
}
LITELLM_CHUNKS: list[dict[str, Any]] = [
    {
        "id": "chatcmpl-2",
        "created": 1796240670,
        "model": "claude-sonnet-4-5",
        "object": "chat.completion.chunk",
        "system_fingerprint": None,
        "provider_specific_fields": None,
        "choices": [
            {
                "index": 0,
                "finish_reason": None,
                "logprobs": None,
                "delta": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"index": 0, "id": None, "type": None, "function": {"name": None, "arguments": '{"ci'}}
                    ],
                    "function_call": None,
                    "audio": None,
                    "reasoning_content": None,
                    "provider_specific_fields": None,
                },
            }
        ],
        "usage": None,
    },
    {
        "id": "chatcmpl-2",
        "created": 1796240670,
        "model": "claude-sonnet-4-5",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": None, "role": None}, "finish_reason": "tool_calls"}],
    },
    {
        "id": "chatcmpl-2",
        "created": 1796240670,
        "model": "claude-sonnet-4-5",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25, "prompt_tokens_details": None},
    },
]
VLLM_ANSWER: dict[str, Any] = {
    "id": "cmpl-9",
    "object": "chat.completion",
    "created": 1796240000,
    "model": "qwen",
    "system_fingerprint": None,
    "prompt_logprobs": None,
    "kv_transfer_params": None,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello.", "reasoning_content": "think", "tool_calls": []},
            "finish_reason": "stop",
            "stop_reason": None,
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": None},
}


def _conforms(name: str, instance: Any) -> list[str]:
    return violations(name, instance) + violations(name, instance, "closed")


@pytest.mark.parametrize("answer", [LITELLM_ANSWER, VLLM_ANSWER], ids=["litellm-anthropic", "vllm"])
def test_provider_answers_come_out_in_openais_schema(answer: dict[str, Any]) -> None:
    assert _conforms(COMPLETION, answer) != []  # as received, they break the spec
    shaped = normalise.completion(copy.deepcopy(answer))
    assert _conforms(COMPLETION, shaped) == []
    assert shaped["choices"][0]["logprobs"] is None and shaped["choices"][0]["message"]["refusal"] is None


def test_what_the_answer_says_survives_normalisation() -> None:
    shaped = normalise.completion(LITELLM_ANSWER)
    assert shaped["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    assert (shaped["id"], shaped["model"], shaped["created"]) == ("chatcmpl-1", "claude-sonnet-4-5", 1796240670)
    assert normalise.completion(VLLM_ANSWER)["choices"][0]["message"]["content"] == "Hello."


def test_cache_writes_reach_the_accountant_under_the_specs_name() -> None:
    usage = normalise.completion(LITELLM_ANSWER)["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 8, "cache_write_tokens": 1000}
    parsed = Usage.from_openai(usage)
    assert parsed is not None
    assert (parsed.prompt_tokens, parsed.cached_prompt_tokens, parsed.cache_creation_tokens) == (1016, 8, 1000)
    only_top_level = {**LITELLM_ANSWER["usage"], "prompt_tokens_details": {"cached_tokens": 8}}
    shaped = normalise.completion({**LITELLM_ANSWER, "usage": only_top_level})
    assert shaped["usage"]["prompt_tokens_details"]["cache_write_tokens"] == 1000


def test_provider_stream_chunks_come_out_in_openais_schema() -> None:
    assert any(_conforms(CHUNK, chunk) for chunk in LITELLM_CHUNKS)
    shaped = [normalise.chunk(copy.deepcopy(chunk)) for chunk in LITELLM_CHUNKS]
    assert [_conforms(CHUNK, chunk) for chunk in shaped] == [[], [], []]
    first, last_choice, usage = shaped
    assert first["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}],
    }
    assert first["usage"] is None  # OpenAI's own "usage": null on every chunk but the last, when usage was asked
    assert last_choice["choices"][0] == {"index": 0, "delta": {"content": None}, "finish_reason": "tool_calls"}
    assert "usage" not in last_choice
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 25


def test_a_chunk_missing_what_the_spec_requires_gets_it() -> None:
    shaped = normalise.chunk({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0}]})
    assert shaped == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": None}],
    }
    assert _conforms(CHUNK, shaped) == []


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        (
            {"error": {"message": "bad tool", "type": "invalid_request_error", "param": ["tools", 0], "code": 400}},
            {"message": "bad tool", "type": "invalid_request_error", "param": "['tools', 0]", "code": "400"},
        ),
        (
            {"error": {"message": "overloaded"}},
            {"message": "overloaded", "type": "upstream_error", "param": None, "code": None},
        ),
    ],
)
def test_upstream_errors_come_out_in_openais_error_schema(upstream: dict[str, Any], expected: dict[str, Any]) -> None:
    shaped = normalise.error_body(upstream)
    assert shaped == {"error": expected}
    assert _conforms(ERROR, shaped) == []


@pytest.mark.parametrize("body", [None, "Bad Gateway", {"detail": "nope"}, {"error": "flat string"}])
def test_a_body_without_an_error_object_is_no_error_body(body: Any) -> None:
    assert normalise.error_body(body) is None


def test_the_spec_extract_is_read_as_openai_means_it() -> None:
    # ``nullable: true`` (OpenAPI 3.0) in the stream schema: a chunk's finish_reason and usage may be null.
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "usage": None}
    chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": None, "logprobs": None}]
    assert _conforms(CHUNK, chunk) == []
    # The published objects are open: an extra field passes as published and fails when closed.
    extra = {**chunk, "provider_specific_fields": {}}
    assert violations(CHUNK, extra) == [] and violations(CHUNK, extra, "closed") != []
    # The gateway's one documented extension is allowed where it puts it, in its own shape only.
    costed = {**chunk, "choices": [], "switchboard": {"request_id": "r", "cost_usd": 0.1}}
    assert violations(CHUNK, costed, "closed") != []
    costed["switchboard"].update(baseline_cost_usd=0.2, savings_usd=0.1)
    assert violations(CHUNK, costed, "closed") == []
    assert violations(MODELS, {"object": "list", "data": [{"id": "auto", "object": "model", "created": 1}]}) != []
