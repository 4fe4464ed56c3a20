"""The policy language: ordered rules over request facts that route a turn to a tier, under floors.

A policy is data, validated here; :mod:`router.policy.engine` evaluates it. Every field is documented in
``policies/README.md``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_RISK_THRESHOLD = 0.5
DEFAULT_STAKES_THRESHOLD = 0.5


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Range(StrictModel):
    """A numeric interval; every bound given must hold."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> Range:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        return self

    def contains(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )


class RiskCondition(StrictModel):
    """Which risks are present: a risk is present when its probability reaches its threshold."""

    any: list[str] = Field(default_factory=list, description="At least one of these is present.")
    all: list[str] = Field(default_factory=list, description="Every one of these is present.")
    none: list[str] = Field(default_factory=list, description="None of these is present.")
    threshold: float | None = Field(default=None, ge=0, le=1, description="Overrides the policy thresholds.")

    _lists = field_validator("any", "all", "none", mode="before")(_as_list)

    @model_validator(mode="after")
    def _not_empty(self) -> RiskCondition:
        if not (self.any or self.all or self.none):
            raise ValueError("a risk condition needs any, all or none")
        return self


class VoiceCondition(StrictModel):
    """Signals a voice platform sends in ``metadata.voice``."""

    asr_confidence: Range | None = None
    interruptions: Range | None = None
    call_seconds: Range | None = None
    ivr_state: list[str] | None = None
    language: list[str] | None = None

    _lists = field_validator("ivr_state", "language", mode="before")(_as_list)


class CallCondition(StrictModel):
    """What the gateway remembers about the current call (needs a call id) and the caller."""

    turn: Range | None = Field(default=None, description="1-based turn number within the call.")
    reached_tier: str | None = Field(default=None, description="An earlier turn of the call used this tier or higher.")
    risks_seen: list[str] | None = Field(default=None, description="Any of these risks appeared earlier in the call.")
    high_stakes_seen: bool | None = Field(default=None, description="An earlier turn of the call was high-stakes.")
    caller_open_complaint: bool | None = Field(
        default=None, description="The caller complained in a call within the policy's caller memory window."
    )
    repeats: Range | None = Field(default=None, description="Earlier user turns that repeat the latest one.")
    apologies: Range | None = Field(default=None, description="Assistant turns that apologise or fail to understand.")
    tool_failures: Range | None = Field(
        default=None, description="Tool results with errors, and tool calls repeated with the same arguments."
    )
    frustration: Range | None = Field(default=None, description="User turns with frustration markers.")

    _lists = field_validator("risks_seen", mode="before")(_as_list)


class Condition(StrictModel):
    """All the fields given must hold (AND); ``any_of``/``all_of``/``not`` compose conditions."""

    tenant: list[str] | None = None
    agent: list[str] | None = None
    requested_model: list[str] | None = None
    message_count: Range | None = None
    prompt_tokens: Range | None = None
    tools: bool | None = None
    intent: list[str] | None = None
    catalog_intent: list[str] | None = Field(default=None, description="The tenant catalog intent that matched.")
    intent_confidence: Range | None = None
    risk: RiskCondition | None = None
    stakes: Range | None = Field(default=None, description="The classifier's stakes (0..1).")
    high_stakes: bool | None = None
    language: list[str] | None = Field(default=None, description="The language the classifier saw the turn in.")
    voice: VoiceCondition | None = None
    call: CallCondition | None = None
    any_of: list[Condition] | None = None
    all_of: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    _lists = field_validator(
        "tenant", "agent", "requested_model", "intent", "catalog_intent", "language", mode="before"
    )(_as_list)

    @property
    def is_unconditional(self) -> bool:
        return not self.model_dump(exclude_none=True, by_alias=True)


class Route(StrictModel):
    """Where a rule sends the turn: a tier (its fallback chain) or one deployment."""

    tier: str | None = None
    deployment: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"tier": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> Route:
        if (self.tier is None) == (self.deployment is None):
            raise ValueError("a route names exactly one of tier or deployment")
        return self


class Stickiness(StrictModel):
    """Keep a call on the tier it escalated to."""

    from_tier: str = Field(description="Once a turn of the call used this tier or higher...")
    turns: int | None = Field(default=None, ge=1, description="...stay there this many turns (None: whole call).")


class Rule(StrictModel):
    name: str = Field(min_length=1)
    description: str | None = None
    when: Condition = Condition()
    route: Route


class Handoff(StrictModel):
    """Recommend a human handoff to the voice platform (``x-switchboard-handoff: recommended``) when it holds."""

    name: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=200, description="Sent in x-switchboard-handoff-reason.")
    when: Condition


class Floors(StrictModel):
    """Invariants no rule can break: a high-stakes turn never goes below these tiers."""

    high_stakes: str | None = Field(
        default=None, description="A high-stakes turn (stakes at or above stakes_threshold) → at least this tier."
    )
    sticky_high_stakes: bool = Field(
        default=False, description="Once a turn of the call was high-stakes, every later turn keeps that floor."
    )
    risks: dict[str, str] = Field(default_factory=dict, description="Risk topic → the lowest tier allowed with it.")
    sticky_risks: bool = Field(
        default=False, description="A risk seen earlier in the call keeps its floor for the rest of the call."
    )


class LowConfidence(StrictModel):
    below: float = Field(ge=0, le=1, description="Intent confidence under which the turn escalates.")
    escalate_to: str


class BudgetDowngrade(StrictModel):
    """What a crossed soft budget limit does to turns that are not high-stakes."""

    tier: str


class CatalogRefs(StrictModel):
    """Tenant intent catalogs (paths relative to the policy file): one shared, and per-tenant ones that replace it."""

    shared: str | None = None
    tenants: dict[str, str] = Field(default_factory=dict)


class Policy(StrictModel):
    name: str | None = None
    description: str | None = None
    default: Route = Field(description="Where a turn goes when no rule matches.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Risk → probability threshold.")
    stakes_threshold: float = Field(
        default=DEFAULT_STAKES_THRESHOLD, ge=0, le=1, description="Stakes at which a turn is high-stakes."
    )
    floor: Floors = Floors()
    low_confidence: LowConfidence | None = None
    classifier_failure: Route | None = Field(
        default=None, description="Route when classification fails; default: the high-stakes floor tier."
    )
    stickiness: Stickiness | None = None
    caller_memory_days: float = Field(default=7, gt=0, description="How long a caller's complaint is remembered.")
    budget_downgrade: BudgetDowngrade | None = None
    catalogs: CatalogRefs | None = None
    rules: list[Rule] = Field(default_factory=list)
    handoff: list[Handoff] = Field(
        default_factory=list, description="Checked on every turn after routing; the first that holds is sent."
    )

    @field_validator("thresholds")
    @classmethod
    def _thresholds_are_probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        for risk, threshold in value.items():
            if not 0 <= threshold <= 1:
                raise ValueError(f"threshold of '{risk}' must be within 0..1")
        return value

    @model_validator(mode="after")
    def _rule_names_unique(self) -> Policy:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule names: {', '.join(duplicates)}")
        return self

    def threshold(self, risk: str) -> float:
        return self.thresholds.get(risk, self.thresholds.get("default", DEFAULT_RISK_THRESHOLD))
