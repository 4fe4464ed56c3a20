"""Facts → decision: pure, synchronous and cheap (conditions are compiled to closures once per policy)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from router.policy.facts import HIGH_STAKES_MARK, Facts
from router.policy.schema import CallCondition, Condition, Policy, Range, RiskCondition, Route, VoiceCondition

Predicate = Callable[[Facts], bool]

PINNED_RULE = "pinned-deployment"
REQUESTED_TIER_RULE = "requested-tier"
DEFAULT_RULE = "default"
CATALOG_RULE_PREFIX = "catalog:"


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a turn goes and why. ``deployment`` is set only when one deployment is pinned."""

    tier: str | None
    deployment: str | None
    rule: str
    high_stakes: bool
    risks_present: tuple[str, ...]
    reasons: tuple[str, ...]
    handoff: str | None = None  # the policy's handoff that holds: recommend a human to the voice platform
    handoff_reason: str | None = None

    @property
    def call_labels(self) -> tuple[str, ...]:
        """What the call remembers of this turn: its risks, and the mark of a high-stakes turn."""
        return (*self.risks_present, HIGH_STAKES_MARK) if self.high_stakes else self.risks_present


class TierLadder:
    """Tiers from cheapest to most capable, as declared in the gateway config."""

    def __init__(self, tiers: Mapping[str, Sequence[str]]) -> None:
        self.order = list(tiers)
        self._rank = {tier: rank for rank, tier in enumerate(self.order)}
        self._tier_of_deployment = {d: tier for tier, chain in tiers.items() for d in chain}

    def __contains__(self, tier: object) -> bool:
        return tier in self._rank

    def rank(self, tier: str) -> int:
        return self._rank[tier]

    def at_least(self, tier: str, floor: str) -> str:
        return floor if self._rank[floor] > self._rank[tier] else tier

    def tier_of(self, deployment: str) -> str | None:
        return self._tier_of_deployment.get(deployment)

    def decided_tier(self, decision: Decision) -> str | None:
        """The tier a decision uses (a call's state records it): its own, or that of the deployment it pins."""
        return decision.tier or self.tier_of(decision.deployment or "")


class PolicyEngine:
    def __init__(self, policy: Policy, ladder: TierLadder, deployments: Sequence[str]) -> None:
        self.policy = policy
        self.ladder = ladder
        self._deployments = frozenset(deployments)
        self._rules = [(rule.name, self._compile(rule.when), rule.route) for rule in policy.rules]
        self._handoffs = [(h.name, self._compile(h.when), h.reason) for h in policy.handoff]
        self._risk_floors = sorted(policy.floor.risks.items(), key=lambda item: ladder.rank(item[1]))

    # -- conditions -------------------------------------------------------------------------------------------

    def present_risks(self, risks: Mapping[str, float], threshold: float | None = None) -> tuple[str, ...]:
        return tuple(
            sorted(
                r for r, p in risks.items() if p >= (threshold if threshold is not None else self.policy.threshold(r))
            )
        )

    def is_high_stakes(self, facts: Facts) -> bool:
        return facts.stakes is not None and facts.stakes >= self.policy.stakes_threshold

    def _compile(self, condition: Condition) -> Predicate:
        checks: list[Predicate] = []
        if condition.tenant is not None:
            tenants = frozenset(condition.tenant)
            checks.append(lambda f: f.tenant in tenants)
        if condition.agent is not None:
            agents = frozenset(condition.agent)
            checks.append(lambda f: f.agent in agents)
        if condition.requested_model is not None:
            models = frozenset(condition.requested_model)
            checks.append(lambda f: f.requested_model in models)
        if condition.message_count is not None:
            checks.append(_in_range(condition.message_count, lambda f: f.message_count))
        if condition.prompt_tokens is not None:
            checks.append(_in_range(condition.prompt_tokens, lambda f: f.prompt_tokens))
        if condition.tools is not None:
            tools = condition.tools
            checks.append(lambda f: f.has_tools == tools)
        if condition.intent is not None:
            intents = frozenset(condition.intent)
            checks.append(lambda f: f.intent in intents)
        if condition.catalog_intent is not None:
            catalog_intents = frozenset(condition.catalog_intent)
            checks.append(lambda f: f.catalog_intent in catalog_intents)
        if condition.intent_confidence is not None:
            checks.append(_in_range(condition.intent_confidence, lambda f: f.intent_confidence))
        if condition.risk is not None:
            checks.append(self._risk_predicate(condition.risk))
        if condition.stakes is not None:
            checks.append(_in_range(condition.stakes, lambda f: f.stakes))
        if condition.high_stakes is not None:
            wanted = condition.high_stakes
            # Like a range over an absent fact: without a classification neither true nor false holds.
            checks.append(lambda f: f.stakes is not None and self.is_high_stakes(f) == wanted)
        if condition.language is not None:
            languages = frozenset(condition.language)
            checks.append(lambda f: f.language in languages)
        if condition.voice is not None:
            checks.extend(_voice_predicates(condition.voice))
        if condition.call is not None:
            checks.extend(self._call_predicates(condition.call))
        if condition.any_of is not None:
            alternatives = [self._compile(c) for c in condition.any_of]
            checks.append(lambda f: any(p(f) for p in alternatives))
        if condition.all_of is not None:
            required = [self._compile(c) for c in condition.all_of]
            checks.append(lambda f: all(p(f) for p in required))
        if condition.not_ is not None:
            negated = self._compile(condition.not_)
            checks.append(lambda f: not negated(f))
        if len(checks) == 1:
            return checks[0]
        return lambda f: all(check(f) for check in checks)

    def _risk_predicate(self, condition: RiskCondition) -> Predicate:
        any_of, all_of, none_of = (
            frozenset(condition.any),
            frozenset(condition.all),
            frozenset(condition.none),
        )

        def check(facts: Facts) -> bool:
            present = set(self.present_risks(facts.risks, condition.threshold))
            return (not any_of or bool(present & any_of)) and all_of <= present and not (present & none_of)

        return check

    def _call_predicates(self, condition: CallCondition) -> list[Predicate]:
        checks: list[Predicate] = []
        if condition.turn is not None:
            checks.append(_in_range(condition.turn, lambda f: f.call.turn if f.call else 1))
        if condition.reached_tier is not None:
            needed = self.ladder.rank(condition.reached_tier)
            checks.append(
                lambda f: (
                    f.call is not None
                    and f.call.max_tier is not None
                    and f.call.max_tier in self.ladder
                    and self.ladder.rank(f.call.max_tier) >= needed
                )
            )
        if condition.risks_seen is not None:
            seen = frozenset(condition.risks_seen)
            checks.append(lambda f: f.call is not None and bool(f.call.risks_seen & seen))
        if condition.high_stakes_seen is not None:
            seen_wanted = condition.high_stakes_seen
            checks.append(lambda f: (f.call is not None and f.call.high_stakes_seen) == seen_wanted)
        if condition.caller_open_complaint is not None:
            wanted = condition.caller_open_complaint
            checks.append(lambda f: (f.call is not None and f.call.caller_open_complaint) == wanted)
        for name in ("repeats", "apologies", "tool_failures", "frustration"):
            bounds = getattr(condition, name)
            if bounds is not None:
                checks.append(_in_range(bounds, _circle_count(name)))
        return checks

    # -- decision ---------------------------------------------------------------------------------------------

    def decide(self, facts: Facts) -> Decision:
        decision = self._route(facts)
        for name, predicate, reason in self._handoffs:
            if predicate(facts):
                return dataclasses.replace(decision, handoff=name, handoff_reason=reason)
        return decision

    def _route(self, facts: Facts) -> Decision:
        present = self.present_risks(facts.risks)
        high = self.is_high_stakes(facts)
        if facts.requested_model in self._deployments:
            return Decision(None, facts.requested_model, PINNED_RULE, high, present, ())
        reasons: list[str] = []
        if facts.requested_model in self.ladder:
            tier, rule = facts.requested_model, REQUESTED_TIER_RULE
        elif facts.catalog_tier is not None and facts.catalog_tier in self.ladder:
            # The tenant declared where this intent goes; floors and adjustments still apply below.
            tier, rule = facts.catalog_tier, f"{CATALOG_RULE_PREFIX}{facts.catalog_intent}"
        else:
            tier, rule = self._first_matching_rule(facts)
        tier = self._adjust(tier, facts, present, high, reasons)
        return Decision(tier, None, rule, high, present, tuple(reasons))

    def _first_matching_rule(self, facts: Facts) -> tuple[str, str]:
        for name, predicate, route in self._rules:
            if predicate(facts):
                return self._tier_of_route(route), name
        return self._tier_of_route(self.policy.default), DEFAULT_RULE

    def _tier_of_route(self, route: Route) -> str:
        if route.tier is not None:
            return route.tier
        assert route.deployment is not None
        tier = self.ladder.tier_of(route.deployment)
        assert tier is not None, "validated by the policy store"
        return tier

    def _adjust(self, tier: str, facts: Facts, present: tuple[str, ...], high: bool, reasons: list[str]) -> str:
        """Everything that moves a turn after its rule: confidence, stickiness, budget, then the floors."""
        policy, ladder = self.policy, self.ladder

        def raise_to(floor: str, why: str) -> None:
            nonlocal tier
            raised = ladder.at_least(tier, floor)
            if raised != tier:
                reasons.append(f"{why}->{floor}")
                tier = raised

        low = policy.low_confidence
        if low is not None and facts.intent_confidence is not None and facts.intent_confidence < low.below:
            raise_to(low.escalate_to, f"low_confidence({facts.intent_confidence:.2f})")
        sticky = policy.stickiness
        call = facts.call
        if sticky is not None and call is not None and call.max_tier in ladder:
            assert call.max_tier is not None
            within = sticky.turns is None or (
                call.escalated_at_turn is not None and call.turn - call.escalated_at_turn <= sticky.turns
            )
            if ladder.rank(call.max_tier) >= ladder.rank(sticky.from_tier) and within:
                raise_to(call.max_tier, "sticky_call")
        if facts.budget_soft_exceeded and policy.budget_downgrade is not None and not (high or present):
            downgrade = policy.budget_downgrade.tier
            if ladder.rank(downgrade) < ladder.rank(tier):
                reasons.append(f"budget_soft_limit->{downgrade}")
                tier = downgrade
        floors = policy.floor
        if floors.high_stakes is not None:
            if high:
                raise_to(floors.high_stakes, f"floor:high_stakes({facts.stakes:.2f})")
            elif floors.sticky_high_stakes and call is not None and call.high_stakes_seen:
                raise_to(floors.high_stakes, "floor:high_stakes(earlier in call)")
        remembered = call.risks_seen if (call is not None and floors.sticky_risks) else frozenset()
        for risk, floor_tier in self._risk_floors:
            if risk in present:
                raise_to(floor_tier, f"floor:{risk}")
            elif risk in remembered:
                raise_to(floor_tier, f"floor:{risk}(earlier in call)")
        if facts.classifier_failed:
            fallback = policy.classifier_failure
            raise_to(
                self._tier_of_route(fallback) if fallback else (floors.high_stakes or tier),
                "classifier_failed",
            )
        return tier


def _voice_value(facts: Facts, field: str) -> float | None:
    value: float | None = getattr(facts.voice, field)
    return value


def _in_range(bounds: Range, value_of: Callable[[Facts], float | None]) -> Predicate:
    def check(facts: Facts) -> bool:
        value = value_of(facts)
        return value is not None and bounds.contains(value)

    return check


def _circle_count(name: str) -> Callable[[Facts], float | None]:
    """A going-in-circles count of the call (0 without one: the signals are read from any conversation)."""

    def value(facts: Facts) -> float | None:
        return float(getattr(facts.call, name)) if facts.call is not None else 0.0

    return value


def _voice_predicates(condition: VoiceCondition) -> list[Predicate]:
    checks: list[Predicate] = []
    for name in ("asr_confidence", "interruptions", "call_seconds"):
        bounds = getattr(condition, name)
        if bounds is not None:
            checks.append(_in_range(bounds, functools.partial(_voice_value, field=name)))
    if condition.ivr_state is not None:
        states = frozenset(condition.ivr_state)
        checks.append(lambda f: f.voice.ivr_state in states)
    if condition.language is not None:
        languages = frozenset(condition.language)
        checks.append(lambda f: f.voice.language in languages)
    return checks
