"""LiteLLM as a client library: ``completion`` / ``acompletion(model="openai/<model>", api_base=...)``.

``openai/`` is LiteLLM's route to any OpenAI-compatible server. Streams are put back together with LiteLLM's own
``stream_chunk_builder``, as its users do to get the final message and usage; the barge-in leaves an
``acompletion`` stream after its first text and closes it.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map download at import
os.environ.setdefault("LITELLM_TELEMETRY_DISABLED", "true")
os.environ.setdefault("LITELLM_LOG", "ERROR")

import litellm
from common import (
    AFTER_BARGE_IN,
    API_KEY,
    BASE_URL,
    FOLLOW_UP,
    GREETING,
    HEADERS,
    LONG_TURN,
    MODEL,
    SYSTEM,
    TIMEOUT,
    TOOL_TURN,
    assistant_calling,
    openai_tool,
    play_in_order,
    report,
    tool_results,
)

litellm.suppress_debug_info = True
COMMON: dict[str, Any] = {
    "model": MODEL if MODEL.startswith("openai/") else f"openai/{MODEL}",
    "api_base": BASE_URL,
    "api_key": API_KEY,
    "timeout": TIMEOUT,
    "num_retries": 0,
    "extra_headers": HEADERS,
}


def streamed(messages: list[dict[str, Any]], **options: Any) -> tuple[Any, int]:
    """The stream rebuilt into one response by LiteLLM, and how many chunks carried text."""
    chunks = list(litellm.completion(messages=messages, stream=True, **COMMON, **options))
    texts = sum(1 for chunk in chunks if chunk.choices and getattr(chunk.choices[0].delta, "content", None))
    return litellm.stream_chunk_builder(chunks, messages=messages), texts


async def main() -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": GREETING}]

    async def stream() -> None:
        full, chunks = await asyncio.to_thread(streamed, history, stream_options={"include_usage": True})
        text = full.choices[0].message.content or ""
        history.append({"role": "assistant", "content": text})
        report("stream", text=text, chunks=chunks, total_tokens=full.usage.total_tokens if full.usage else None)

    async def multi_turn() -> None:
        history.append({"role": "user", "content": FOLLOW_UP})
        full, _ = await asyncio.to_thread(streamed, history)
        text = full.choices[0].message.content or ""
        history.append({"role": "assistant", "content": text})
        report("multi_turn", text=text, messages_sent=len(history) - 1)

    async def tool_round_trip() -> None:
        history.append({"role": "user", "content": TOOL_TURN})
        tools = [openai_tool()]
        full, _ = await asyncio.to_thread(streamed, history, tools=tools, tool_choice="auto")
        calls = full.choices[0].message.tool_calls or []
        first = calls[0] if calls else None
        report(
            "tool_call",
            name=first.function.name if first else None,
            arguments=json.loads(first.function.arguments or "{}") if first else None,
        )
        history.append(assistant_calling([(c.id, c.function.name, c.function.arguments) for c in calls]))
        history.extend(tool_results([c.id for c in calls]))
        full, _ = await asyncio.to_thread(streamed, history, tools=tools, tool_choice="auto")
        message = full.choices[0].message
        report("tool_followup", text=message.content or "", tool_calls=len(message.tool_calls or []))

    async def barge_in() -> None:
        talk = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": LONG_TURN}]
        first = ""
        interrupted = await litellm.acompletion(messages=talk, stream=True, **COMMON)
        async for chunk in interrupted:
            if chunk.choices and getattr(chunk.choices[0].delta, "content", None):
                first = chunk.choices[0].delta.content
                break
        await interrupted.aclose()  # the caller spoke: drop the rest of the answer
        talk.append({"role": "user", "content": AFTER_BARGE_IN})
        text = ""
        async for chunk in await litellm.acompletion(messages=talk, stream=True, **COMMON):
            if chunk.choices and getattr(chunk.choices[0].delta, "content", None):
                text += chunk.choices[0].delta.content
        report("barge_in", first_text=first, next_text=text)

    async def non_stream() -> None:
        answer = await litellm.acompletion(
            messages=[{"role": "user", "content": "Say hello."}], temperature=0.2, max_tokens=50, **COMMON
        )
        report("non_stream", text=answer.choices[0].message.content or "", total_tokens=answer.usage.total_tokens)

    await play_in_order(
        [
            ("stream", stream),
            ("multi_turn", multi_turn),
            ("tool_call", tool_round_trip),
            ("barge_in", barge_in),
            ("non_stream", non_stream),
        ]
    )


if __name__ == "__main__":
    asyncio.run(main())
