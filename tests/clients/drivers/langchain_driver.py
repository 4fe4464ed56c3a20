"""LangChain: ``ChatOpenAI(base_url=...)`` with ``astream`` and ``bind_tools``, as LangChain/LangGraph voice agents
(and Pipecat's and LiveKit's LangChain adapters) consume it.

Streamed chunks are summed into one AIMessageChunk; its parsed tool calls run through the ``@tool`` itself, whose
ToolMessage goes back. LangChain streams *without* asking for usage when a base URL is set, so the gateway must
obtain usage from its upstream by itself; ``stream_usage=True`` asks for it. The barge-in closes ``astream`` after
the first text chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@tool
def get_weather(location: str, unit: str = "celsius") -> dict[str, Any]:
    """Get the current weather for a city.

    Args:
        location: City name, e.g. Paris
        unit: celsius or fahrenheit
    """
    return dict(TOOL_RESULT)


async def streamed(runnable: Any, messages: list[BaseMessage]) -> tuple[Any, int]:
    """The streamed AIMessageChunks summed into one, and how many carried text."""
    total, chunks = None, 0
    async for chunk in runnable.astream(messages):
        chunks += bool(isinstance(chunk.content, str) and chunk.content)
        total = chunk if total is None else total + chunk
    return total, chunks


async def main() -> None:
    llm = ChatOpenAI(
        model=MODEL, base_url=BASE_URL, api_key=API_KEY, timeout=TIMEOUT, max_retries=0, default_headers=HEADERS
    )
    history: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage(GREETING)]

    async def stream() -> None:
        message, chunks = await streamed(llm, history)
        history.append(message)
        report("stream", text=message.text, chunks=chunks)

    async def multi_turn() -> None:
        history.append(HumanMessage(FOLLOW_UP))
        message, _ = await streamed(llm, history)
        history.append(message)
        report("multi_turn", text=message.text, messages_sent=len(history) - 1)

    async def tool_round_trip() -> None:
        with_tools = llm.bind_tools([get_weather])
        history.append(HumanMessage(TOOL_TURN))
        message, _ = await streamed(with_tools, history)
        calls = list(message.tool_calls or [])
        report("tool_call", name=calls[0]["name"] if calls else None, arguments=calls[0]["args"] if calls else None)
        history.append(message)
        for call in calls:
            history.append(await get_weather.ainvoke(call))  # the ToolMessage
        answer, _ = await streamed(with_tools, history)
        report("tool_followup", text=answer.text, tool_calls=len(answer.tool_calls or []))

    async def barge_in() -> None:
        talk: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage(LONG_TURN)]
        first = ""
        stream = llm.astream(talk)
        async for chunk in stream:
            if isinstance(chunk.content, str) and chunk.content:
                first = chunk.content
                break
        await stream.aclose()  # the caller spoke: drop the rest of the answer
        talk.append(HumanMessage(AFTER_BARGE_IN))
        after, _ = await streamed(llm, talk)
        report("barge_in", first_text=first, next_text=after.text)

    async def non_stream() -> None:
        answer = await llm.ainvoke([SystemMessage(SYSTEM), HumanMessage("Say hello.")])
        report("non_stream", text=answer.text, total_tokens=(answer.usage_metadata or {}).get("total_tokens"))

    async def stream_usage() -> None:
        metered = ChatOpenAI(
            model=MODEL,
            base_url=BASE_URL,
            api_key=API_KEY,
            timeout=TIMEOUT,
            max_retries=0,
            stream_usage=True,
            default_headers=HEADERS,
        )
        message, _ = await streamed(metered, [SystemMessage(SYSTEM), HumanMessage("Say hi.")])
        report("stream_usage", text=message.text, total_tokens=(message.usage_metadata or {}).get("total_tokens"))

    await play_in_order(
        [
            ("stream", stream),
            ("multi_turn", multi_turn),
            ("tool_call", tool_round_trip),
            ("barge_in", barge_in),
            ("non_stream", non_stream),
            ("stream_usage", stream_usage),
        ]
    )


if __name__ == "__main__":
    asyncio.run(main())
