"""OpenAI's chat completions wire format, as the real API sends it."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import orjson
from pydantic import Field, field_validator

from router.simulator.replies import (
    PlannedReply,
    PlannedToolCall,
    PromptUsage,
    ToolMode,
    ToolOffer,
    ToolSpec,
    plan_reply,
)
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
    description: str | None = None
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
    parallel_tool_calls: bool | None = None

    @field_validator("tool_choice")
    @classmethod
    def _known_tool_choice(cls, choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(choice, str) and choice not in set(ToolMode):
            raise ValueError(f"expected one of {', '.join(ToolMode)}")
        return choice

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

    def tool_offer(self) -> ToolOffer:
        functions = [tool.function for tool in self.tools or () if tool.type == "function" and tool.function]
        choice = self.tool_choice
        named_function = choice.get("function") if isinstance(choice, dict) else None
        forced = named_function.get("name") if isinstance(named_function, dict) else None
        return ToolOffer(
            tools=[ToolSpec(function.name, function.parameters, function.description) for function in functions],
            mode=ToolMode(choice) if isinstance(choice, str) else ToolMode.AUTO,
            forced_name=forced if isinstance(forced, str) else None,
            parallel=self.parallel_tool_calls is not False,
            answers_tool_result=self.messages[-1].role == "tool",
        )


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
                "content": None if reply.tool_calls else reply.text,
                "refusal": None,
                "annotations": [],
            }
            if reply.tool_calls:
                message["tool_calls"] = [_tool_call_json(call, _call_id()) for call in reply.tool_calls]
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

        streams = [_reply_deltas(reply) for reply in replies]
        frames = [openai_event(chunk(index, opening)) for index, (opening, _) in enumerate(streams)]
        # The choices' timed deltas interleave by their place on the token clock, as n choices generate together.
        timed = sorted(
            (position, index, order, delta)
            for index, (_, deltas) in enumerate(streams)
            for order, (position, delta) in enumerate(deltas)
        )
        frames.extend(openai_event(chunk(index, delta), position) for position, index, _, delta in timed)
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
    last_user_text = request.last_user_text()
    tools = request.tool_offer().calls_for(last_user_text)
    return [
        plan_reply(
            model=request.model,
            behaviour=behaviour,
            last_user_text=last_user_text,
            token_cap=request.token_cap,
            choice_index=index,
            tools=tools,
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


def _reply_deltas(reply: PlannedReply) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    """A choice's opening delta, then every later delta with its place on the token clock.

    Each tool call opens with its ``index``, ``id``, type and name (the first one inside the opening delta) and
    then streams its arguments as fragments carrying only that ``index``: OpenAI streams parallel calls one after
    another this way.
    """
    opening: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if not reply.tool_calls:
        return opening, [(position, {"content": piece}) for position, piece in enumerate(reply.text_pieces)]
    opening["content"] = None
    deltas: list[tuple[int, dict[str, Any]]] = []
    position = 0
    for index, call in enumerate(reply.tool_calls):
        function = {"name": call.name, "arguments": ""}
        header = {"tool_calls": [{"index": index, "id": _call_id(), "type": "function", "function": function}]}
        if index == 0:
            opening.update(header)
        else:
            deltas.append((position, header))
        for piece in call.argument_pieces:
            deltas.append((position, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
            position += 1
    return opening, deltas
