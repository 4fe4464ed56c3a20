"""Pipecat: ``OpenAILLMService`` in a real Pipeline (context aggregators, PipelineWorker, WorkerRunner), no audio.

User turns enter as ``LLMMessagesAppendFrame(run_llm=True)``, which is what the user aggregator emits after
speech-to-text; the collector sees the ``LLMTextFrame``s text-to-speech would speak. The tool round trip is
Pipecat's own function-call loop, and the barge-in is an ``InterruptionFrame`` while the answer streams.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("LOGURU_LEVEL", "WARNING")

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
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_PARAMETERS,
    TOOL_RESULT,
    TOOL_TURN,
    play_in_order,
    report,
)
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.workers.runner import WorkerRunner


class Response:
    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.ended = False
        self.interrupted = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class Collector(FrameProcessor):
    """Where text-to-speech would sit: records each LLM response's text frames."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[Response] = []
        self._current: Response | None = None
        self._changed = asyncio.Condition()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        async with self._changed:
            if isinstance(frame, LLMFullResponseStartFrame):
                self._current = Response()
                self.responses.append(self._current)
            elif isinstance(frame, LLMTextFrame) and self._current is not None:
                self._current.pieces.append(frame.text)
            elif isinstance(frame, LLMFullResponseEndFrame) and self._current is not None:
                self._current.ended, self._current = True, None
            elif isinstance(frame, InterruptionFrame) and self._current is not None:
                self._current.interrupted, self._current = True, None
            self._changed.notify_all()
        await self.push_frame(frame, direction)

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), TIMEOUT)

    async def finished(self, index: int) -> Response:
        def over() -> bool:
            return len(self.responses) > index and (self.responses[index].ended or self.responses[index].interrupted)

        await self.wait_for(over)
        return self.responses[index]


async def main() -> None:
    tool_calls: list[dict[str, Any]] = []
    pipeline_errors: list[str] = []

    async def get_weather(params: Any) -> None:
        tool_calls.append({"name": params.function_name, "arguments": dict(params.arguments or {})})
        await params.result_callback(TOOL_RESULT)

    weather = FunctionSchema(
        name=TOOL_NAME,
        description=TOOL_DESCRIPTION,
        properties=TOOL_PARAMETERS["properties"],
        required=TOOL_PARAMETERS["required"],
    )
    context = LLMContext(tools=ToolsSchema(standard_tools=[weather]))
    aggregators = LLMContextAggregatorPair(context)
    llm = OpenAILLMService(
        api_key=API_KEY,
        base_url=BASE_URL,
        default_headers=HEADERS,
        settings=OpenAILLMService.Settings(model=MODEL, system_instruction=SYSTEM),
    )
    llm.register_function(TOOL_NAME, get_weather)
    collector = Collector()
    worker = PipelineWorker(
        Pipeline([aggregators.user(), llm, collector, aggregators.assistant()]),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    @worker.event_handler("on_pipeline_error")
    async def on_error(_worker: Any, frame: Any) -> None:
        pipeline_errors.append(str(getattr(frame, "error", frame)))

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())

    async def say(text: str) -> int:
        index = len(collector.responses)
        await worker.queue_frames([LLMMessagesAppendFrame([{"role": "user", "content": text}], run_llm=True)])
        return index

    async def stream() -> None:
        response = await collector.finished(await say(GREETING))
        report("stream", text=response.text, chunks=len(response.pieces), errors=pipeline_errors[:])

    async def multi_turn() -> None:
        response = await collector.finished(await say(FOLLOW_UP))
        messages = len(context.get_messages())
        report("multi_turn", text=response.text, context_messages=messages, errors=pipeline_errors[:])

    async def tool_round_trip() -> None:
        index = await say(TOOL_TURN)
        await collector.finished(index)  # the tool-call response (no text)
        call = tool_calls[0] if tool_calls else {}
        report("tool_call", name=call.get("name"), arguments=call.get("arguments"))
        followup = await collector.finished(index + 1)  # Pipecat ran the tool and asked again
        roles = [m.get("role") for m in context.get_messages() if isinstance(m, dict)]
        report("tool_followup", text=followup.text, tool_calls=len(tool_calls) - 1, roles=roles)

    async def barge_in() -> None:
        index = await say(LONG_TURN)
        await collector.wait_for(lambda: len(collector.responses) > index and bool(collector.responses[index].pieces))
        await worker.queue_frame(InterruptionFrame())  # the caller speaks over the bot
        cut = await collector.finished(index)
        after = await collector.finished(await say(AFTER_BARGE_IN))
        report(
            "barge_in",
            first_text=cut.text,
            interrupted=cut.interrupted,
            next_text=after.text,
            errors=pipeline_errors[:],
        )

    try:
        await play_in_order(
            [
                ("stream", stream),
                ("multi_turn", multi_turn),
                ("tool_call", tool_round_trip),
                ("barge_in", barge_in),
            ]
        )
    finally:
        await worker.queue_frame(EndFrame())
        try:
            await asyncio.wait_for(running, 20)
        except Exception:  # shutting down: cancel whatever is left
            await runner.cancel()


if __name__ == "__main__":
    asyncio.run(main())
