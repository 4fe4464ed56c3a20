"""The request parameters a caller may send to an upstream: OpenAI's chat-completions parameters, nothing else.

Both provider paths forward only these. Everything that says where a request goes or how it authenticates
(``api_base``, ``base_url``, ``api_key``, ``extra_headers``, ``custom_llm_provider``, ``aws_*``, ``vertex_*``, ...)
is the operator's, set per deployment in the gateway config, and is simply not on this list: an allow-list, so a
field litellm learns to honour tomorrow cannot become a way to send a provider key somewhere else. Vendor-specific
parameters an operator wants go in the deployment's ``extra_body``.
"""

from __future__ import annotations

from typing import Any

# Every parameter of OpenAI's ``POST /v1/chat/completions`` (the openai SDK's completion_create_params.py);
# tests/security/test_provider_params.py fails when an SDK upgrade adds one that is missing here.
OPENAI_CHAT_PARAMS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)


def forwarded_params(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a request body that may reach an upstream (the gateway still sets model and streaming)."""
    return {name: value for name, value in body.items() if name in OPENAI_CHAT_PARAMS}
