"""Token prices per deployment, from litellm's bundled model cost map, and the cost of one answer.

The cost map is read from ``litellm_prices.json``, a table derived from the pinned litellm's own file
(``router.accounting.price_table``), so pricing never imports litellm.

Arithmetic is exact: prices are held as ``Decimal`` built from the *decimal text* of litellm's floats
(``1.5e-07`` becomes ``Decimal("1.5E-7")``, not the binary expansion of the float), and costs are
sums of ``Decimal`` products. Convert with ``float(cost.cost_usd)`` only at the edge (ledger, metrics).

Only the base price tier is used: litellm's long-context tiers (``*_above_200k_tokens``), batch, flex
and priority prices are ignored, because the gateway serves interactive, standard-tier traffic.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from router.accounting.price_table import load_table
from router.accounting.usage import Usage

PER_MTOK = Decimal(1_000_000)

# litellm cost-map field for each of our price kinds.
_LITELLM_FIELDS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "cache_creation": "cache_creation_input_token_cost",
    "reasoning": "output_cost_per_reasoning_token",
}
PRICE_KINDS = tuple(_LITELLM_FIELDS)
# The cost map's first entry documents its schema; it is not a model.
LITELLM_SCHEMA_ENTRY = "sample_spec"


@functools.cache
def litellm_cost_map() -> Mapping[str, Any]:
    """litellm's model cost map (the priced entries of the pinned release), from the shipped table; never
    fetched from the network and never through ``import litellm``."""
    return load_table()["models"]


class ModelPrice(BaseModel):
    """USD per token for each kind of token; ``known`` is False when no price was found (all zero)."""

    model_config = ConfigDict(frozen=True)

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal = Decimal(0)
    cache_creation: Decimal = Decimal(0)
    reasoning: Decimal = Decimal(0)
    known: bool = True

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        # Cache reads and writes default to the input price (a model without a listed cache price
        # bills cached tokens like any other prompt token); reasoning defaults to the output price.
        if not isinstance(data, Mapping):
            return data
        filled = dict(data)
        input_price = filled.get("input") or Decimal(0)
        output_price = filled.get("output") or Decimal(0)
        defaults = {"cached_input": input_price, "cache_creation": input_price, "reasoning": output_price}
        for kind, default in defaults.items():
            if filled.get(kind) is None:
                filled[kind] = default
        return filled


def _listed_prices(entry: Mapping[str, Any]) -> dict[str, Decimal]:
    """The prices a litellm entry lists, as exact decimals of their printed values."""
    return {
        kind: Decimal(str(entry[field]))
        for kind, field in _LITELLM_FIELDS.items()
        if isinstance(entry.get(field), int | float)
    }


class PriceOverride(BaseModel):
    """Operator-set prices that win over litellm's, field by field.

    Each kind may be given per token (``input: 1.5e-7``) or, friendlier in YAML, per million tokens
    (``input_per_mtok: 0.15``); giving both for the same kind is an error. An override makes the price
    ``known`` even for a model litellm does not list (self-hosted models priced by their operator).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal | None = Field(default=None, ge=0)
    output: Decimal | None = Field(default=None, ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_creation: Decimal | None = Field(default=None, ge=0)
    reasoning: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _per_mtok_to_per_token(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        converted = dict(data)
        for kind in PRICE_KINDS:
            per_mtok = converted.pop(f"{kind}_per_mtok", None)
            if per_mtok is None:
                continue
            if converted.get(kind) is not None:
                raise ValueError(f"give either {kind} or {kind}_per_mtok, not both")
            converted[kind] = Decimal(str(per_mtok)) / PER_MTOK
        return converted


class DeploymentPricing(BaseModel):
    """How one deployment is priced: its litellm model string and an optional override."""

    model_config = ConfigDict(frozen=True)

    model: str
    override: PriceOverride | None = None


class Cost(BaseModel):
    """What one answer cost, by kind of token. All amounts are exact ``Decimal`` USD."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    model: str
    known: bool
    input_usd: Decimal = Decimal(0)
    cached_input_usd: Decimal = Decimal(0)
    cache_creation_usd: Decimal = Decimal(0)
    output_usd: Decimal = Decimal(0)
    reasoning_usd: Decimal = Decimal(0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> Decimal:
        return self.input_usd + self.cached_input_usd + self.cache_creation_usd + self.output_usd + self.reasoning_usd


def _lookup_litellm(cost_map: Mapping[str, Any], model: str) -> Mapping[str, Any] | None:
    """The cost-map entry of ``model``, given with or without its provider prefix.

    ``openai/gpt-4o-mini`` resolves to the ``gpt-4o-mini`` entry only because that entry's provider is
    ``openai``: ``hosted_vllm/gpt-4o-mini`` is someone's own server and must not inherit OpenAI's price.
    """
    if model == LITELLM_SCHEMA_ENTRY:
        return None
    entry = cost_map.get(model)
    if entry is None:
        provider, sep, bare = model.partition("/")
        candidate = cost_map.get(bare) if sep else None
        if candidate is not None and candidate.get("litellm_provider") == provider:
            entry = candidate
    if not isinstance(entry, Mapping) or not isinstance(entry.get("input_cost_per_token"), int | float):
        return None
    return entry


def _as_pricing(value: DeploymentPricing | str | tuple[str, PriceOverride | None]) -> DeploymentPricing:
    if isinstance(value, DeploymentPricing):
        return value
    if isinstance(value, str):
        return DeploymentPricing(model=value)
    model, override = value
    return DeploymentPricing(model=model, override=override)


class PriceBook:
    """Prices of the gateway's deployments. Pure: no I/O beyond reading the bundled cost map once."""

    def __init__(
        self,
        deployments: Mapping[str, DeploymentPricing | str | tuple[str, PriceOverride | None]],
        cost_map: Mapping[str, Any] | None = None,
    ) -> None:
        self._cost_map = litellm_cost_map() if cost_map is None else cost_map
        self._deployments = {name: _as_pricing(value) for name, value in deployments.items()}
        self._prices = {
            name: self._resolve(pricing.model, pricing.override) for name, pricing in self._deployments.items()
        }

    def _resolve(self, model: str, override: PriceOverride | None) -> ModelPrice:
        """litellm's listed prices with the override's fields on top, then defaults for the rest.

        Defaults come after the merge, so overriding only ``input`` also moves the cache prices that
        litellm does not list (they default to the input price).
        """
        entry = _lookup_litellm(self._cost_map, model)
        listed = _listed_prices(entry) if entry is not None else {}
        given = override.model_dump(exclude_none=True) if override is not None else {}
        return ModelPrice(**(listed | given), known=entry is not None or bool(given))

    def price_of(self, model: str) -> ModelPrice:
        """litellm's price of a model string; all zero with ``known=False`` when litellm lacks it."""
        return self._resolve(model, None)

    def deployment_price(self, deployment: str) -> ModelPrice:
        """The effective price of a configured deployment (override applied)."""
        try:
            return self._prices[deployment]
        except KeyError:
            raise KeyError(f"no pricing for deployment {deployment!r}") from None

    def cost(self, deployment: str, usage: Usage) -> Cost:
        """What ``usage`` cost on ``deployment``.

        Uncached input is ``prompt - cached - cache_creation`` and plain output is
        ``completion - reasoning`` (Usage counts cache and reasoning tokens inside the totals). Counts
        that would go negative on an inconsistent upstream report are clamped to zero.
        """
        price = self.deployment_price(deployment)
        uncached = max(usage.prompt_tokens - usage.cached_prompt_tokens - usage.cache_creation_tokens, 0)
        plain_output = max(usage.completion_tokens - usage.reasoning_tokens, 0)
        return Cost(
            deployment=deployment,
            model=self._deployments[deployment].model,
            known=price.known,
            input_usd=uncached * price.input,
            cached_input_usd=usage.cached_prompt_tokens * price.cached_input,
            cache_creation_usd=usage.cache_creation_tokens * price.cache_creation,
            output_usd=plain_output * price.output,
            reasoning_usd=usage.reasoning_tokens * price.reasoning,
        )

    def baseline_cost(self, usage: Usage, baseline_deployment: str, served_deployment: str | None = None) -> Cost:
        """What the same tokens would have cost had every turn gone to ``baseline_deployment``.

        A prompt cache lives with one provider's deployment, so tokens that were cache hits (or cache
        writes) on the served deployment would not have been on the baseline: unless the baseline *is*
        the served deployment, every prompt token is priced as uncached input there. Completion and
        reasoning tokens are priced as they are. Savings (``baseline - cost``) are signed: they are
        negative when the served deployment is dearer than the baseline (an escalation to frontier).
        """
        if baseline_deployment == served_deployment:
            return self.cost(baseline_deployment, usage)
        uncached = usage.model_copy(update={"cached_prompt_tokens": 0, "cache_creation_tokens": 0})
        return self.cost(baseline_deployment, uncached)

    def max_cost(self, deployment: str, prompt_tokens: int, max_output_tokens: int) -> Decimal:
        """An upper bound on the cost of a request, for budget reservation.

        Each prompt token is priced at the dearer of input and cache write, each output token at the
        dearer of output and reasoning, so the bound holds whatever the upstream caches or reasons.
        """
        price = self.deployment_price(deployment)
        return prompt_tokens * max(price.input, price.cache_creation) + max_output_tokens * max(
            price.output, price.reasoning
        )
