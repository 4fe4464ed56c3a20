"""OpenAI's chat completions wire format, as the real API sends it."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import orjson
from pydantic import Field

from router.simulator.replies import PlannedReply, PlannedToolCall, PromptUsage, ToolSpec, plan_reply
from router.simulator.settings import ModelBehaviour
from router.simulator.streaming import SseFrame, openai_event
from router.simulator.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    count_content_tokens,
    count_json_tokens,
    count_tokens,
)
from router.simulator.wire import Answer, GenerationRequest, LenientModel, Message, RequestProblem, WireFormat

_ERROR_TYPE_BY_STATUS = {429: "requests", 500: "server_error"}


class ChatMessage(Message):
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class FunctionDefinition(LenientModel):
    name: str
    parameters: dict[str, Any] | None = None


class ChatTool(LenientModel):
    type: str = "function"
    function: FunctionDefinition | None = None


class StreamOptions(LenientModel):
    include_usage: bool = False


class ChatCompletionRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    tools: list[ChatTool] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def prompt_tokens(self) -> int:
        total = REPLY_PRIMING_TOKENS
        for message in self.messages:
            total += MESSAGE_OVERHEAD_TOKENS + count_content_tokens(message.content) + count_tokens(message.name)
            total += count_json_tokens(message.tool_calls)
        for tool in self.tools or ():
            total += count_json_tokens(tool.model_dump(exclude_none=True))
        return total

    def chosen_tool(self) -> ToolSpec | None:
        """The function to call, or None when the turn must be answered with text."""
        if not self.tools or self.tool_choice == "none" or self.messages[-1].role == "tool":
            return None
        functions = [tool.function for tool in self.tools if tool.type == "function" and tool.function]
        if not functions:
            return None
        named = self.tool_choice.get("function", {}).get("name") if isinstance(self.tool_choice, dict) else None
        chosen = next((function for function in functions if function.name == named), functions[0])
        return ToolSpec(chosen.name, chosen.parameters)


class OpenAIChatFormat(WireFormat[ChatCompletionRequest]):
    endpoint = "/v1/chat/completions"

    def parse(self, document: Any) -> ChatCompletionRequest:
        return ChatCompletionRequest.model_validate(document)

    def error_body(self, status: int, problem: RequestProblem) -> bytes:
        return openai_error_body(status, problem)

    def answer(self, request: ChatCompletionRequest, behaviour: ModelBehaviour) -> Answer:
        replies = _plan_choices(request, behaviour)
        choices = []
        for index, reply in enumerate(replies):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if reply.tool_call else reply.text,
                "refusal": None,
                "annotations": [],
            }
            if reply.tool_call:
                message["tool_calls"] = [_tool_call_json(reply.tool_call, _call_id())]
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": reply.finish_reason})
        body = {
            **_envelope(request, "chat.completion"),
            "choices": choices,
            "usage": _usage_json(request, behaviour, replies),
        }
        return Answer(orjson.dumps(body), generated_tokens=max(len(reply.pieces) for reply in replies))

    def stream_frames(
        self, request: ChatCompletionRequest, behaviour: ModelBehaviour, usage_in_stream: bool
    ) -> list[SseFrame]:
        replies = _plan_choices(request, behaviour)
        envelope = _envelope(request, "chat.completion.chunk")
        options = request.stream_options
        include_usage = usage_in_stream and options is not None and options.include_usage
        # With include_usage, OpenAI sends "usage": null on every chunk until the final usage chunk.
        usage_field = {"usage": None} if include_usage else {}

        def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**envelope, "choices": [choice], **usage_field}

        call_ids = [_call_id() for _ in replies]
        frames = [
            openai_event(chunk(index, _first_delta(reply, call_ids[index]))) for index, reply in enumerate(replies)
        ]
        longest = max(len(reply.pieces) for reply in replies)
        for position in range(longest):
            for index, reply in enumerate(replies):
                pieces = reply.pieces
                if position < len(pieces):
                    frames.append(openai_event(chunk(index, _piece_delta(reply, pieces[position])), position))
        frames.extend(openai_event(chunk(index, {}, reply.finish_reason)) for index, reply in enumerate(replies))
        if include_usage:
            frames.append(openai_event({**envelope, "choices": [], "usage": _usage_json(request, behaviour, replies)}))
        frames.append(openai_event(None))
        return frames


def openai_error_body(status: int, problem: RequestProblem) -> bytes:
    error_type = _ERROR_TYPE_BY_STATUS.get(status, "invalid_request_error")
    return orjson.dumps(
        {
            "error": {
                "message": problem.message,
                "type": error_type,
                "param": problem.param,
                "code": problem.code,
            }
        }
    )


def _plan_choices(request: ChatCompletionRequest, behaviour: ModelBehaviour) -> list[PlannedReply]:
    tool = request.chosen_tool()
    last_user_text = request.last_user_text()
    return [
        plan_reply(
            model=request.model,
            behaviour=behaviour,
            last_user_text=last_user_text,
            token_cap=request.token_cap,
            choice_index=index,
            tool=tool,
        )
        for index in range(request.n)
    ]


def _envelope(request: ChatCompletionRequest, object_name: str) -> dict[str, Any]:
    fingerprint = hashlib.blake2b(request.model.encode(), digest_size=5).hexdigest()
    return {
        "id": "chatcmpl-" + secrets.token_hex(15),
        "object": object_name,
        "created": int(time.time()),
        "model": request.model,
        "service_tier": "default",
        "system_fingerprint": "fp_" + fingerprint,
    }


def _usage_json(
    request: ChatCompletionRequest, behaviour: ModelBehaviour, replies: list[PlannedReply]
) -> dict[str, Any]:
    prompt = PromptUsage.of(request.prompt_tokens(), behaviour)
    completion_tokens = sum(reply.completion_tokens for reply in replies)
    return {
        "prompt_tokens": prompt.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt.prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": prompt.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": behaviour.reasoning_tokens * len(replies),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _tool_call_json(call: PlannedToolCall, call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def _first_delta(reply: PlannedReply, call_id: str) -> dict[str, Any]:
    if reply.tool_call is None:
        return {"role": "assistant", "content": "", "refusal": None}
    call = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": reply.tool_call.name, "arguments": ""},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}


def _piece_delta(reply: PlannedReply, piece: str) -> dict[str, Any]:
    if reply.tool_call is None:
        return {"content": piece}
    return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
