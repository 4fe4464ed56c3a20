"""What a virtual key may use, decided per deployment, whatever name the request used to get there.

A key's ``allowed_tiers`` and ``allowed_models`` both apply to every deployment the gateway would call: a deployment
is usable when it is in ``allowed_models`` (if set) and belongs to one of the ``allowed_tiers`` (if set). Asking for
a tier, a deployment or ``auto`` only changes which deployments are considered, never which are permitted.
"""

from __future__ import annotations

from typing import Protocol

from router.config import GatewayConfig
from router.errors import PermissionDenied


class Restricted(Protocol):
    """The limits a caller carries (``None``: no limit)."""

    @property
    def allowed_tiers(self) -> frozenset[str] | None: ...

    @property
    def allowed_models(self) -> frozenset[str] | None: ...


class Allowance:
    def __init__(self, config: GatewayConfig) -> None:
        self._order = config.tier_order
        self._tiers = config.tiers
        self._tiers_of: dict[str, frozenset[str]] = {
            d.name: frozenset(tier for tier, chain in config.tiers.items() if d.name in chain)
            for d in config.deployments
        }

    def permits(self, caller: Restricted, deployment: str) -> bool:
        """May this caller's request be sent to ``deployment``?"""
        if caller.allowed_models is not None and deployment not in caller.allowed_models:
            return False
        return caller.allowed_tiers is None or bool(self._tiers_of.get(deployment, frozenset()) & caller.allowed_tiers)

    def may_use_tier(self, caller: Restricted, tier: str) -> bool:
        if caller.allowed_tiers is not None and tier not in caller.allowed_tiers:
            return False
        return any(self.permits(caller, deployment) for deployment in self._tiers[tier])

    def check_requested(self, caller: Restricted, model: str) -> None:
        """403 when the request names a tier or deployment the key may not use (``auto`` is checked once routed)."""
        if model == "auto":
            return
        if model in self._tiers:
            if not self.may_use_tier(caller, model):
                raise PermissionDenied(f"this key may not use tier '{model}'", param="model")
        elif not self.permits(caller, model):
            raise PermissionDenied(f"this key may not use the deployment '{model}'", param="model")

    def nearest_tier(self, caller: Restricted, tier: str) -> str | None:
        """The tier to serve a turn the policy routed to ``tier`` when the key may not use it: the lowest it may use
        above it (the policy's floors still hold), else the best it may use below (an answer beats dead air on a
        voice call), else ``None``."""
        usable = [t for t in self._order if self.may_use_tier(caller, t)]
        rank = self._order.index(tier)
        above = [t for t in usable if self._order.index(t) > rank]
        if above:
            return above[0]
        return usable[-1] if usable else None
