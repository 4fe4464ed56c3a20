"""API payloads. Requests are validated for what the gateway reads, and forwarded as the client sent them.

Scalars are strict, as OpenAI's own API is: ``"stream": "yes"``, ``"n": "2"`` or ``"max_tokens": true`` are 400s
naming the field, not coerced. Unknown fields are kept (``extra="allow"``) and forwarded.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(strict=True)
    arguments: str = Field(strict=True, description="The arguments as a JSON text, as the model produced them.")


class ToolCall(BaseModel):
    """An assistant message's tool call; token counting and the classifiers read its function's name and arguments."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(strict=True)
    type: Literal["function"] = "function"
    function: ToolCallFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # Assistant messages carrying tool_calls may omit content entirely (Pipecat, LiveKit, LiteLLM do).
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(default=None, strict=True)
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(default=None, strict=True)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = Field(default=None, strict=True)


class ChatCompletionRequest(BaseModel):
    """The fields the gateway interprets; every other field is kept and forwarded."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, strict=True)
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    top_p: float | None = Field(default=None, ge=0, le=1, strict=True)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    user: str | None = Field(default=None, strict=True)
    metadata: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
