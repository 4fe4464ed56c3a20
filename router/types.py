"""The records and seams every layer shares: who asks (``Caller``), one turn (``Turn``), how it went (``Outcome``,
``Attempts``), a refused request (``Rejection``), and the Protocols the gateway is built from.

This module is the bottom layer (see ``.importlinter``): at run time it imports nothing from ``router``, so the
gateway, the relay, the recorder, auth and rate limits can all depend on it without depending on each other. The
names below ``TYPE_CHECKING`` are for annotations only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from router.accounting.budgets import Reservation
    from router.accounting.usage import Usage
    from router.config import Deployment
    from router.facts import TurnClassification
    from router.policy.engine import Decision
    from router.policy.facts import Facts
    from router.policy.store import Catalog
    from router.providers.hedge import HedgeReport

# An ``Attempt`` outcome: cancelled because another deployment answered first (router/providers/hedge.py).
HEDGE_LOST = "hedge_lost"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: from the virtual key, or from headers when the gateway runs without keys."""

    tenant: str
    agent: str | None = None
    key_id: str | None = None
    allowed_tiers: frozenset[str] | None = None
    allowed_models: frozenset[str] | None = None
    agent_pinned: bool = False  # the agent is the key's own, not the caller's X-Agent


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    outcome: str  # "ok", "parked" (cooling down / breaker open) or the ``FailureKind``
    status: int | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class Attempts:
    items: list[Attempt] = field(default_factory=list)
    hedge: HedgeReport | None = None  # set when a hedge ran beside a slow attempt (router/providers/hedge.py)

    @property
    def fallbacks(self) -> int:
        """Deployments tried before the one that answered (parked ones, and hedge losers, were not fallen over
        from)."""
        tried = [a for a in self.items if a.outcome not in ("parked", HEDGE_LOST)]
        return max(0, len(tried) - 1) if tried and tried[-1].outcome == "ok" else len(tried)


@dataclass(slots=True)
class Turn:
    request_id: str
    received_at: datetime
    started: float
    body: dict[str, Any]
    upstream_body: dict[str, Any]
    caller: Caller
    call_id: str | None
    caller_id: str | None
    facts: Facts
    classification: TurnClassification | None
    classification_ms: float
    decision: Decision
    policy_version: str
    shadow: tuple[str, Decision] | None
    stream: bool
    include_usage: bool
    reservation: Reservation | None = None
    capped_from: str | None = None  # the tier the policy chose when the key's allowance served a lower one


@dataclass(slots=True)
class Outcome:
    status: int = 200
    error_type: str | None = None
    deployment: Deployment | None = None
    tier: str | None = None  # the tier that served (set with the deployment; fallbacks may climb)
    attempts: Attempts = field(default_factory=Attempts)
    usage: Usage | None = None
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    interrupted: bool = False
    interrupted_usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    request_id: str
    received_at: datetime
    caller: Caller | None
    requested_model: str | None
    call_id: str | None
    status: int
    error_type: str
    total_ms: float
    policy_version: str


class RateLimit(Protocol):
    async def check(self, caller: Caller, estimated_tokens: int) -> None:
        """Raise ``RateLimited`` when these tokens would pass the caller's tokens-per-minute limit."""
        ...


class TurnClassifier(Protocol):
    async def classify(
        self, messages: list[dict[str, Any]], has_tools: bool, catalog: Catalog | None = None
    ) -> TurnClassification: ...


class Accountant(Protocol):
    def price(self, deployment: Deployment, usage: Usage) -> tuple[float, float]:
        """(cost, baseline cost) in USD of these tokens on this deployment."""
        ...

    async def record(self, turn: Turn, outcome: Outcome) -> None:
        """Ledger + metrics; returns once the record is durable, raises ``LedgerUnavailable`` if it is not."""
        ...

    async def record_stream_start(self, turn: Turn, deployment: Deployment, hedge: HedgeReport | None = None) -> None:
        """Make a provisional record of a stream, and the records of its hedge's priced losers, durable before its
        first byte is sent."""
        ...

    def record_rejection(self, rejection: Rejection) -> None: ...

    def max_cost(self, deployments: list[Deployment], prompt_tokens: int, max_output_tokens: int) -> float:
        """The most these tokens could cost on the dearest of these deployments (for budget reservations)."""
        ...
