"""The gateway YAML: deployments, tiers (ordered fallback chains), limits and the policy to load.

Secrets never live here: a deployment names the environment variable that holds its key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.accounting.budgets import BudgetConfig
from router.accounting.pricing import PriceOverride
from router.accounting.speech import SpeechPrices
from router.yamlsource import YamlDocument

RESERVED_MODEL_NAMES = frozenset({"auto"})
SIMULATOR_API_BASE = "simulator"
# litellm provider prefixes whose wire format is OpenAI's: these take the pooled-HTTP fast path.
OPENAI_COMPATIBLE_PREFIXES = frozenset({"openai", "hosted_vllm", "openai_compatible", "text-completion-openai"})
DEFAULTS_DIR = Path(__file__).parent / "defaults"
# A symlink to the checkout's policies/ (the one source), copied into the wheel as package data.
SHIPPED_POLICIES_DIR = Path(__file__).parent / "policies"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(StrictModel):
    connect: float = Field(default=3.0, gt=0, description="Seconds to open a connection.")
    first_token: float = Field(default=15.0, gt=0, description="Seconds until the first byte of the answer.")
    total: float = Field(default=120.0, gt=0, description="Seconds for the whole answer.")


class Deployment(StrictModel):
    name: str = Field(min_length=1)
    model: str = Field(min_length=1, description="litellm model string, e.g. openai/gpt-4o-mini.")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    provider: Literal["auto", "openai_compatible", "litellm"] = "auto"
    price: PriceOverride | None = Field(default=None, description="Price override (per token or per million).")
    timeouts: Timeouts | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Fields merged into every request.")

    @property
    def provider_prefix(self) -> str | None:
        prefix, sep, _ = self.model.partition("/")
        return prefix if sep else None

    @property
    def upstream_model(self) -> str:
        """The model name the upstream itself knows (the litellm provider prefix removed)."""
        return self.model.partition("/")[2] if self.provider_prefix else self.model

    @property
    def uses_fast_path(self) -> bool:
        if self.provider == "auto":
            return self.api_base is not None and (self.provider_prefix or "openai") in OPENAI_COMPATIBLE_PREFIXES
        return self.provider == "openai_compatible"

    @property
    def is_simulated(self) -> bool:
        return self.api_base == SIMULATOR_API_BASE

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class BreakerConfig(StrictModel):
    """When a deployment's circuit opens, and for how long (see router/providers/health.py)."""

    consecutive_failures: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=20, ge=1)
    min_requests: int = Field(default=10, ge=1)
    open_seconds: float = Field(default=10.0, gt=0)


class FallbackConfig(StrictModel):
    next_tier_up: bool = Field(default=True, description="After a tier's chain, try the tiers above it.")
    max_attempts: int = Field(default=4, ge=1, description="Deployments tried per request at most.")
    retry_after_cap_seconds: float = Field(
        default=60.0, ge=0, description="Longest Retry-After a deployment is parked for."
    )
    retries: int = Field(default=1, ge=0, description="Extra rounds over the chain when every deployment failed.")
    backoff_seconds: float = Field(default=0.05, ge=0, description="Base of the jittered exponential backoff.")
    retry_wait_cap_seconds: float = Field(
        default=1.0, ge=0, description="A round waits for a Retry-After only when it is this short."
    )


class Limits(StrictModel):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_messages: int = Field(default=1000, gt=0)
    max_content_chars: int = Field(default=400_000, gt=0)
    max_n: int = Field(default=8, gt=0)
    max_tokens: int = Field(default=128_000, gt=0)
    # orjson cannot write documents nested past 255 levels, and no tool schema needs more than a few dozen.
    max_json_depth: int = Field(default=64, gt=0, le=200, description="Nesting of arrays and objects in a body.")
    reserve_output_tokens: int = Field(
        default=4096, gt=0, description="Answer tokens a budget reserves for a request that sets no max_tokens."
    )
    classification_deadline_ms: float = Field(
        default=250.0,
        gt=0,
        description="A turn whose classification takes longer is routed by the policy's classifier_failure route.",
    )


class PermissionsConfig(StrictModel):
    """What a key limited to some tiers or models gets when the policy routes its turn beyond them."""

    above_allowance: Literal["cap", "refuse"] = Field(
        default="cap",
        description="cap: serve the nearest tier the key may use (above the policy's if any, else the best below) "
        "and say so in x-switchboard-capped (a voice caller in an emergency gets an answer, not dead air); "
        "refuse: 403.",
    )


class LatencyGuard(StrictModel):
    """Voice deadlines of one tier or deployment (router/providers/hedge.py): no dead air on the phone."""

    first_token_deadline_ms: float | None = Field(
        default=None,
        gt=0,
        le=600_000,
        description="A stream with no first content token by then starts the next deployment (a hedge) "
        "without cancelling this one; whichever yields content first is streamed.",
    )
    hedge_after_ms: float | None = Field(
        default=None,
        gt=0,
        le=600_000,
        description="Start the hedge this early instead (streams; for non-streamed answers, the only trigger).",
    )
    stall_ms: float | None = Field(
        default=None, gt=0, le=600_000, description="A stream silent this long mid-answer ends with an error event."
    )


class LatencyConfig(StrictModel):
    """Latency guards by tier and by deployment; a deployment's own fields win over its tier's."""

    tiers: dict[str, LatencyGuard] = Field(default_factory=dict)
    deployments: dict[str, LatencyGuard] = Field(default_factory=dict)


class SimulatorSection(StrictModel):
    embedded: bool = Field(default=False, description="Start the provider simulator inside the gateway.")
    config: Path | None = Field(default=None, description="SimulatorSettings YAML; unset = its default.")


class GatewayConfig(StrictModel):
    deployments: list[Deployment] = Field(min_length=1)
    tiers: dict[str, list[str]] = Field(min_length=1, description="Tier name → fallback chain, cheapest first.")
    policy: Path = Field(default=Path("default"), description="Policy YAML; a bare name = a shipped policy.")
    shadow_policy: Path | None = None
    baseline_deployment: str | None = Field(
        default=None, description="Prices the counterfactual; default: the first deployment of the top tier."
    )
    timeouts: Timeouts = Timeouts()
    fallback: FallbackConfig = FallbackConfig()
    limits: Limits = Limits()
    permissions: PermissionsConfig = PermissionsConfig()
    simulator: SimulatorSection = SimulatorSection()
    breaker: BreakerConfig = BreakerConfig()
    budgets: BudgetConfig | None = None
    latency: LatencyConfig = LatencyConfig()
    speech_prices: SpeechPrices = SpeechPrices()

    @field_validator("tiers")
    @classmethod
    def _tiers_not_empty(cls, tiers: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, chain in tiers.items():
            if not chain:
                raise ValueError(f"tier '{name}' has no deployments")
        return tiers

    @model_validator(mode="after")
    def _names_resolve(self) -> GatewayConfig:
        names = [d.name for d in self.deployments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate deployment names: {', '.join(duplicates)}")
        for tier, chain in self.tiers.items():
            for member in chain:
                if member not in names:
                    raise ValueError(f"tier '{tier}' names unknown deployment '{member}'")
        clashes = (set(self.tiers) & set(names)) | ((set(self.tiers) | set(names)) & RESERVED_MODEL_NAMES)
        if clashes:
            raise ValueError(f"names used twice (tier, deployment or 'auto'): {', '.join(sorted(clashes))}")
        if self.baseline_deployment is not None and self.baseline_deployment not in names:
            raise ValueError(f"baseline_deployment '{self.baseline_deployment}' is not a deployment")
        unknown = (set(self.latency.tiers) - set(self.tiers)) | (set(self.latency.deployments) - set(names))
        if unknown:
            raise ValueError(f"latency names unknown tiers or deployments: {', '.join(sorted(unknown))}")
        return self

    @property
    def tier_order(self) -> list[str]:
        return list(self.tiers)

    def deployment(self, name: str) -> Deployment:
        return next(d for d in self.deployments if d.name == name)

    @property
    def baseline(self) -> Deployment:
        name = self.baseline_deployment or self.tiers[self.tier_order[-1]][0]
        return self.deployment(name)

    def timeouts_for(self, deployment: Deployment) -> Timeouts:
        return deployment.timeouts or self.timeouts


def resolve_policy_path(path: Path, relative_to: Path) -> Path:
    """A bare name (``default``, ``clinic``) means a policy shipped in ``policies/``; else a path."""
    if path.suffix == "" and len(path.parts) == 1:
        return SHIPPED_POLICIES_DIR / f"{path}.yaml"
    return path if path.is_absolute() else relative_to / path


class LoadedConfig(BaseModel):
    """A validated config plus where it came from (relative paths resolve against its folder)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    config: GatewayConfig
    source: str
    folder: Path

    @property
    def embedded(self) -> bool:
        return self.source == str(DEFAULTS_DIR / "gateway.yaml")

    def policy_path(self, override: Path | None = None) -> Path:
        return resolve_policy_path(override or self.config.policy, self.folder if override is None else Path.cwd())

    def shadow_policy_path(self) -> Path | None:
        shadow = self.config.shadow_policy
        return resolve_policy_path(shadow, self.folder) if shadow is not None else None


def load_config(path: Path | None) -> LoadedConfig:
    """Load and validate the gateway YAML; ``None`` loads the embedded simulator default."""
    source = path if path is not None else DEFAULTS_DIR / "gateway.yaml"
    document = YamlDocument.from_path(source)
    config = document.validate(GatewayConfig)
    return LoadedConfig(config=config, source=str(source), folder=source.resolve().parent)
