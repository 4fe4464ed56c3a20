"""What every provider offers the fallback chain, and how it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

from router.config import Deployment, Timeouts

FailureKind = Literal["connect", "timeout", "rate_limited", "server", "client", "dropped", "auth"]
# The kinds after which another deployment may succeed; a client error would fail everywhere. An upstream that
# rejects the operator's credentials ("auth") is the operator's problem, never the tenant's: fall over to the next.
RETRYABLE: frozenset[FailureKind] = frozenset({"connect", "timeout", "rate_limited", "server", "dropped", "auth"})


class ProviderError(Exception):
    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


def failure_kind_of_status(status: int) -> FailureKind:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status in (408, 504):
        return "timeout"
    return "server" if status >= 500 else "client"


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from model providers, and a cooldown of our own applies anyway


class Provider(Protocol):
    async def complete(self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts) -> dict[str, Any]:
        """One non-streamed OpenAI ``chat.completion`` object."""
        ...

    def stream(self, deployment: Deployment, body: dict[str, Any], timeouts: Timeouts) -> AsyncIterator[dict[str, Any]]:
        """OpenAI ``chat.completion.chunk`` objects; usage arrives in a chunk with ``choices: []``."""
        ...

    async def aclose(self) -> None: ...
