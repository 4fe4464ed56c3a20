"""The per-request fault draw."""

from __future__ import annotations

import random
from enum import StrEnum

from router.simulator.settings import ModelBehaviour


class FaultKind(StrEnum):
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    TIMEOUT = "timeout"
    DROP = "drop"
    AUTH_FAILURE = "401"
    SLOW_FIRST_TOKEN = "slow_first_token"
    STALL = "stall"


class FaultInjector:
    """Draws at most one fault per request from the model's rates.

    Every request consumes exactly one draw, whatever its model, so with a seed the n-th request
    always meets the same fault regardless of which models the earlier requests named.
    """

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._rng = random.Random(seed)

    def restart(self) -> None:
        """Start the sequence again (from the seed, or from fresh entropy without one)."""
        self._rng = random.Random(self._seed)

    def draw(self, behaviour: ModelBehaviour) -> FaultKind | None:
        roll = self._rng.random()
        for kind, rate in (
            (FaultKind.RATE_LIMIT, behaviour.rate_429),
            (FaultKind.SERVER_ERROR, behaviour.rate_500),
            (FaultKind.TIMEOUT, behaviour.rate_timeout),
            (FaultKind.DROP, behaviour.rate_drop),
            (FaultKind.AUTH_FAILURE, behaviour.rate_401),
            (FaultKind.SLOW_FIRST_TOKEN, behaviour.rate_slow_first_token),
            (FaultKind.STALL, behaviour.rate_stall),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None
