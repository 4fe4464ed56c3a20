"""LiveKit Agents: ``livekit.plugins.openai.LLM(base_url=...)``, driven as an AgentSession's llm_node drives it.

Each turn is ``llm.chat(chat_ctx=..., tools=...)`` read as a stream of ChatChunks; the tool round trip runs the
tool with LiveKit's own ``execute_function_call`` and puts the call and its output into the ChatContext; the
barge-in leaves the stream after its first text (what an interruption does). Tools go out in LiveKit's strict
form, and one turn carries the options production agents set on the plugin.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx  # the openai SDK 3.x and this plugin use the httpx2 fork
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
    TOOL_RESULT,
    TOOL_TURN,
    play_in_order,
    report,
)
from livekit.agents import APIConnectOptions
from livekit.agents.llm import ChatContext, ToolContext, execute_function_call, function_tool
from livekit.plugins import openai as livekit_openai

# LiveKit's defaults (10 s, 3 retries 2 s apart before the first byte) with this run's timeout.
CONNECT = APIConnectOptions(timeout=TIMEOUT)


@function_tool
async def get_weather(location: str, unit: str = "celsius") -> dict[str, Any]:
    """Get the current weather for a city.

    Args:
        location: City name, e.g. Paris
        unit: celsius or fahrenheit
    """
    return dict(TOOL_RESULT)


async def turn(llm: livekit_openai.LLM, context: ChatContext, tools: list[Any]) -> tuple[str, int, list[Any], Any]:
    """One llm_node pass: the text, how many text chunks carried it, the tool calls and the usage."""
    text, chunks, calls, usage = "", 0, [], None
    async with llm.chat(chat_ctx=context, tools=tools, conn_options=CONNECT) as stream:
        async for chunk in stream:
            usage = chunk.usage or usage
            if chunk.delta is None:
                continue
            if chunk.delta.content:
                text += chunk.delta.content
                chunks += 1
            calls.extend(chunk.delta.tool_calls or [])
    return text, chunks, calls, usage


async def main() -> None:
    timeout = httpx.Timeout(connect=10.0, read=TIMEOUT, write=5.0, pool=5.0)
    llm = livekit_openai.LLM(model=MODEL, base_url=BASE_URL, api_key=API_KEY, timeout=timeout, extra_headers=HEADERS)
    tools = [get_weather]
    context = ChatContext.empty()
    context.add_message(role="system", content=SYSTEM)

    async def stream() -> None:
        context.add_message(role="user", content=GREETING)
        text, chunks, _, usage = await turn(llm, context, tools)
        context.add_message(role="assistant", content=text)
        report("stream", text=text, chunks=chunks, total_tokens=usage.total_tokens if usage else None)

    async def multi_turn() -> None:
        context.add_message(role="user", content=FOLLOW_UP)
        text, _, _, _ = await turn(llm, context, tools)
        context.add_message(role="assistant", content=text)
        report("multi_turn", text=text, context_items=len(context.items))

    async def tool_round_trip() -> None:
        context.add_message(role="user", content=TOOL_TURN)
        _, _, calls, _ = await turn(llm, context, tools)
        report("tool_call", name=calls[0].name if calls else None, arguments=calls[0].arguments if calls else None)
        for call in calls:
            executed = await execute_function_call(call, ToolContext(tools))
            context.insert(executed.fnc_call)
            if executed.fnc_call_out is not None:
                context.insert(executed.fnc_call_out)
        text, _, again, _ = await turn(llm, context, tools)
        report("tool_followup", text=text, tool_calls=len(again))

    async def barge_in() -> None:
        talk = ChatContext.empty()
        talk.add_message(role="system", content=SYSTEM)
        talk.add_message(role="user", content=LONG_TURN)
        first = ""
        async with llm.chat(chat_ctx=talk, tools=tools, conn_options=CONNECT) as interrupted:
            async for chunk in interrupted:
                if chunk.delta and chunk.delta.content:
                    first = chunk.delta.content
                    break  # leaving the context closes the HTTP stream mid-answer
        talk.add_message(role="user", content=AFTER_BARGE_IN)
        text, _, _, _ = await turn(llm, talk, tools)
        report("barge_in", first_text=first, next_text=text)

    async def tuned_options() -> None:
        tuned = livekit_openai.LLM(
            model=MODEL,
            base_url=BASE_URL,
            api_key=API_KEY,
            timeout=timeout,
            temperature=0.3,
            parallel_tool_calls=False,
            tool_choice="auto",
            user="caller-5550100",
            service_tier="auto",
            max_completion_tokens=200,
            prompt_cache_key="acme-dental",
            safety_identifier="caller-hash-1",
            extra_headers=HEADERS,
        )
        try:
            talk = ChatContext.empty()
            talk.add_message(role="user", content=TOOL_TURN)
            _, _, calls, _ = await turn(tuned, talk, tools)
            report("tuned_options", tool_calls=[call.name for call in calls])
        finally:
            await tuned.aclose()

    try:
        await play_in_order(
            [
                ("stream", stream),
                ("multi_turn", multi_turn),
                ("tool_call", tool_round_trip),
                ("barge_in", barge_in),
                ("tuned_options", tuned_options),
            ]
        )
    finally:
        await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
