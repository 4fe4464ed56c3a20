"""What each wire format (OpenAI chat completions, Anthropic messages) must provide to the app."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.accounting.tokens import content_text
from router.simulator.settings import ModelBehaviour
from router.simulator.streaming import SseFrame


class LenientModel(BaseModel):
    # The real APIs accept many more fields (metadata, user, stop, response_format...); keep them all.
    model_config = ConfigDict(extra="allow")


class Message(LenientModel):
    """A chat message as both formats carry it; each format extends it with its own fields."""

    role: str
    content: str | list[dict[str, Any]] | None = None


class GenerationRequest(LenientModel):
    """The fields the app itself reads; each format extends it with its own."""

    model: str
    stream: bool = False
    messages: Sequence[Message] = Field(min_length=1)

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return content_text(message.content)
        return ""


RequestT = TypeVar("RequestT", bound=GenerationRequest)


class RequestProblem(BaseModel):
    """Why a request body was refused, in terms both formats can express."""

    message: str
    param: str | None = None
    code: str | None = None

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> RequestProblem:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if param is None:
            return cls(message=f"Invalid request body: {first['msg']}.")
        if first["type"] == "missing":
            return cls(
                message=f"Missing required parameter: '{param}'.",
                param=param,
                code="missing_required_parameter",
            )
        return cls(message=f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value")


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete non-stream answer and how many tokens its longest choice took to generate."""

    body: bytes
    generated_tokens: int


class WireFormat(ABC, Generic[RequestT]):
    """One API dialect: how to read its requests and write its answers, streams and errors."""

    endpoint: str

    @abstractmethod
    def parse(self, document: Any) -> RequestT:
        """Validate a decoded JSON body; raises pydantic's ValidationError."""

    @abstractmethod
    def error_body(self, status: int, problem: RequestProblem) -> bytes:
        """The JSON error body this dialect sends with ``status``."""

    @abstractmethod
    def answer(self, request: RequestT, behaviour: ModelBehaviour) -> Answer:
        """The complete non-stream answer."""

    @abstractmethod
    def stream_frames(self, request: RequestT, behaviour: ModelBehaviour, usage_in_stream: bool) -> list[SseFrame]:
        """Every event of the streamed answer, its proper end included."""
