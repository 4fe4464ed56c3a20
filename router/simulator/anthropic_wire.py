"""Anthropic's messages wire format, as the real API sends it."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from pydantic import Field

from router.simulator.replies import FinishReason, PlannedReply, PromptUsage, ToolMode, ToolOffer, ToolSpec, plan_reply
from router.simulator.settings import ModelBehaviour
from router.simulator.streaming import SseFrame, anthropic_event
from router.simulator.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    count_content_tokens,
    count_json_tokens,
)
from router.simulator.wire import Answer, GenerationRequest, LenientModel, Message, RequestProblem, WireFormat

_ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_STOP_REASON = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
}
_TOOL_MODE = {"auto": ToolMode.AUTO, "any": ToolMode.REQUIRED, "tool": ToolMode.REQUIRED, "none": ToolMode.NONE}


class AnthropicMessage(Message):
    content: str | list[dict[str, Any]]


class AnthropicTool(LenientModel):
    name: str
    description: str | None = None
    # Server tools (web search, code execution...) have a versioned type and no input schema.
    input_schema: dict[str, Any] | None = None


class MessagesRequest(GenerationRequest):
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: dict[str, Any] | None = None

    def prompt_tokens(self) -> int:
        total = REPLY_PRIMING_TOKENS + count_content_tokens(self.system)
        for message in self.messages:
            total += MESSAGE_OVERHEAD_TOKENS + count_content_tokens(message.content)
        for tool in self.tools or ():
            total += count_json_tokens(tool.model_dump(exclude_none=True))
        return total

    def tool_offer(self) -> ToolOffer:
        choice = self.tool_choice or {}
        choice_type = str(choice.get("type") or "")
        forced = choice.get("name") if choice_type == "tool" else None
        return ToolOffer(
            # Server tools (web search...) run on Anthropic's side: the model never calls them here.
            tools=[
                ToolSpec(tool.name, tool.input_schema, tool.description)
                for tool in self.tools or ()
                if tool.input_schema is not None
            ],
            mode=_TOOL_MODE.get(choice_type, ToolMode.AUTO),
            forced_name=forced if isinstance(forced, str) else None,
            parallel=choice.get("disable_parallel_tool_use") is not True,
            answers_tool_result=self._answers_tool_result(),
        )

    def _answers_tool_result(self) -> bool:
        last = self.messages[-1]
        return isinstance(last.content, list) and any(block.get("type") == "tool_result" for block in last.content)


class AnthropicMessagesFormat(WireFormat[MessagesRequest]):
    endpoint = "/v1/messages"

    def parse(self, document: Any) -> MessagesRequest:
        return MessagesRequest.model_validate(document)

    def error_body(self, status: int, problem: RequestProblem) -> bytes:
        error_type = _ERROR_TYPE_BY_STATUS.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": error_type, "message": problem.message}})

    def answer(self, request: MessagesRequest, behaviour: ModelBehaviour) -> Answer:
        reply = _plan(request, behaviour)
        content: list[dict[str, Any]]
        if reply.tool_calls:
            content = [
                {"type": "tool_use", "id": _tool_use_id(), "name": call.name, "input": call.arguments}
                for call in reply.tool_calls
            ]
        else:
            content = [{"type": "text", "text": reply.text}]
        usage = _usage_json(request, behaviour, output_tokens=reply.completion_tokens)
        body = {
            **_message_envelope(request),
            "content": content,
            "stop_reason": _STOP_REASON[reply.finish_reason],
            "usage": usage,
        }
        return Answer(orjson.dumps(body), generated_tokens=len(reply.pieces))

    def stream_frames(
        self, request: MessagesRequest, behaviour: ModelBehaviour, usage_in_stream: bool
    ) -> list[SseFrame]:
        # Anthropic streams always carry usage (the SDKs require it), so usage_in_stream does not apply.
        reply = _plan(request, behaviour)
        # Like the real API, message_start counts a first output token; message_delta has the final count.
        message = {**_message_envelope(request), "content": [], "stop_reason": None}
        message["usage"] = _usage_json(request, behaviour, output_tokens=1)
        frames = [anthropic_event({"type": "message_start", "message": message})]
        position = 0
        for index, (block, deltas) in enumerate(_content_blocks(reply)):
            frames.append(anthropic_event({"type": "content_block_start", "index": index, "content_block": block}))
            if index == 0:
                frames.append(anthropic_event({"type": "ping"}))
            for delta in deltas:
                frames.append(
                    anthropic_event({"type": "content_block_delta", "index": index, "delta": delta}, position)
                )
                position += 1
            frames.append(anthropic_event({"type": "content_block_stop", "index": index}))
        frames.append(
            anthropic_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _STOP_REASON[reply.finish_reason], "stop_sequence": None},
                    "usage": {"output_tokens": reply.completion_tokens},
                }
            )
        )
        frames.append(anthropic_event({"type": "message_stop"}))
        return frames


def _content_blocks(reply: PlannedReply) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each content block's opening as ``content_block_start`` carries it, and its deltas: one text block, or
    one ``tool_use`` block per call (its input streamed as JSON fragments)."""
    if not reply.tool_calls:
        return [({"type": "text", "text": ""}, [{"type": "text_delta", "text": piece} for piece in reply.text_pieces])]
    return [
        (
            {"type": "tool_use", "id": _tool_use_id(), "name": call.name, "input": {}},
            [{"type": "input_json_delta", "partial_json": piece} for piece in call.argument_pieces],
        )
        for call in reply.tool_calls
    ]


def _plan(request: MessagesRequest, behaviour: ModelBehaviour) -> PlannedReply:
    last_user_text = request.last_user_text()
    return plan_reply(
        model=request.model,
        behaviour=behaviour,
        last_user_text=last_user_text,
        token_cap=request.max_tokens,
        tools=request.tool_offer().calls_for(last_user_text),
    )


def _message_envelope(request: MessagesRequest) -> dict[str, Any]:
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "stop_sequence": None,
    }


def _usage_json(request: MessagesRequest, behaviour: ModelBehaviour, output_tokens: int) -> dict[str, Any]:
    prompt = PromptUsage.of(request.prompt_tokens(), behaviour)
    # Anthropic's input_tokens exclude the tokens read from the cache.
    return {
        "input_tokens": prompt.prompt_tokens - prompt.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": prompt.cached_tokens,
        "output_tokens": output_tokens,
    }


def _tool_use_id() -> str:
    return "toolu_" + secrets.token_hex(12)
