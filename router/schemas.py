"""API payloads. Requests are validated for what the gateway reads, and forwarded as the client sent them.

Scalars are not coerced, as OpenAI's own API does not: ``"stream": "yes"``, ``"n": "2"`` or ``"max_tokens": true``
are 400s naming the field. Unknown fields are kept (``extra="allow"``) and forwarded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


def _json_number(value: Any) -> Any:
    """Numbers stay numbers: a string or a boolean is refused, while ``2.0`` is the integer 2 (as in JSON Schema)."""
    if isinstance(value, str | bool):
        kind = "boolean" if isinstance(value, bool) else "string"
        raise PydanticCustomError("number_type", "Input should be a number, not a {kind}", {"kind": kind})
    return value


# Bounds inside the Annotated, so the JSON schema (OpenAPI) keeps them as minimum/maximum.
PositiveInteger = Annotated[int, Field(ge=1), BeforeValidator(_json_number)]
Temperature = Annotated[float, Field(ge=0, le=2), BeforeValidator(_json_number)]
Probability = Annotated[float, Field(ge=0, le=1), BeforeValidator(_json_number)]


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
    n: PositiveInteger | None = None
    max_tokens: PositiveInteger | None = None
    max_completion_tokens: PositiveInteger | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
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
