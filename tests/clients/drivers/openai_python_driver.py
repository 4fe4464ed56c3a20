"""The official OpenAI Python SDK (``AsyncOpenAI``, the client Pipecat and LiveKit build on), used directly.

It is the project's own dev dependency, so this driver runs on the test's interpreter, not a client venv.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
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


async def main() -> None:
    client = openai.AsyncOpenAI(
        base_url=BASE_URL, api_key=API_KEY, timeout=TIMEOUT, max_retries=0, default_headers=HEADERS
    )
    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": GREETING}]

    async def streamed(messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        """One streamed turn: text, tool calls accumulated by index, finish reason and usage."""
        text, chunks, finish, usage = "", 0, None, None
        calls: dict[int, dict[str, Any]] = {}
        stream = await client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}, **options
        )
        async for chunk in stream:
            usage = chunk.usage or usage
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            if choice.delta.content:
                text += choice.delta.content
                chunks += 1
            for fragment in choice.delta.tool_calls or ():
                call = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = fragment.id or call["id"]
                if fragment.function is not None:
                    call["name"] += fragment.function.name or ""
                    call["arguments"] += fragment.function.arguments or ""
        total = usage.total_tokens if usage else None
        return {"text": text, "chunks": chunks, "finish": finish, "total_tokens": total, "calls": list(calls.values())}

    async def stream() -> None:
        answer = await streamed(history)
        history.append({"role": "assistant", "content": answer["text"]})
        report("stream", **answer)

    async def multi_turn() -> None:
        history.append({"role": "user", "content": FOLLOW_UP})
        answer = await streamed(history)
        history.append({"role": "assistant", "content": answer["text"]})
        report("multi_turn", text=answer["text"])

    async def tool_round_trip() -> None:
        history.append({"role": "user", "content": TOOL_TURN})
        answer = await streamed(history, tools=[openai_tool()])
        calls = answer["calls"]
        first = calls[0] if calls else {}
        report("tool_call", name=first.get("name"), arguments=json.loads(first.get("arguments") or "{}"))
        history.append(assistant_calling([(c["id"], c["name"], c["arguments"]) for c in calls]))
        history.extend(tool_results([c["id"] for c in calls]))
        answer = await streamed(history, tools=[openai_tool()])
        report("tool_followup", text=answer["text"], tool_calls=len(answer["calls"]))

    async def barge_in() -> None:
        talk = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": LONG_TURN}]
        first = ""
        interrupted = await client.chat.completions.create(model=MODEL, messages=talk, stream=True)
        async for chunk in interrupted:
            if chunk.choices and chunk.choices[0].delta.content:
                first = chunk.choices[0].delta.content
                break
        await interrupted.close()  # the caller spoke: drop the rest of the answer
        talk.append({"role": "user", "content": AFTER_BARGE_IN})
        after = await streamed(talk)
        report("barge_in", first_text=first, next_text=after["text"])

    async def non_stream() -> None:
        answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}])
        total = answer.usage.total_tokens if answer.usage else None
        report("non_stream", text=answer.choices[0].message.content or "", total_tokens=total)

    try:
        await play_in_order(
            [
                ("stream", stream),
                ("multi_turn", multi_turn),
                ("tool_call", tool_round_trip),
                ("barge_in", barge_in),
                ("non_stream", non_stream),
            ]
        )
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
