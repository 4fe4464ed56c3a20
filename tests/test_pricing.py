from __future__ import annotations

from decimal import Decimal

import pytest

from router.accounting.price_table import derive, installed_cost_map, load_table
from router.accounting.pricing import DeploymentPricing, PriceBook, PriceOverride, litellm_cost_map
from router.accounting.usage import Usage

# A cost map in litellm's shape with round prices, so every expected cost below is computed by hand.
COST_MAP = {
    "reasoner": {
        "litellm_provider": "openai",
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 8e-06,
        "cache_read_input_token_cost": 5e-07,
    },
    "claude-mid": {
        "litellm_provider": "anthropic",
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
    },
    "thinker": {
        "litellm_provider": "openai",
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 4e-06,
        "output_cost_per_reasoning_token": 6e-06,
    },
    "sample_spec": {"input_cost_per_token": 0.0, "litellm_provider": "one of ..."},
}


def book(**deployments: DeploymentPricing | str | tuple[str, PriceOverride | None]) -> PriceBook:
    return PriceBook(deployments, cost_map=COST_MAP)


def test_openai_usage_with_cached_and_reasoning_tokens() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 2_000,
            "prompt_tokens_details": {"cached_tokens": 4_000},
            "completion_tokens_details": {"reasoning_tokens": 1_500},
        }
    )
    assert usage is not None
    cost = book(r="openai/reasoner").cost("r", usage)
    # 6,000 uncached × 2e-6 = 0.012; 4,000 cached × 5e-7 = 0.002;
    # 500 visible output × 8e-6 = 0.004; 1,500 reasoning × 8e-6 (= output price) = 0.012.
    assert cost.input_usd == Decimal("0.012")
    assert cost.cached_input_usd == Decimal("0.002")
    assert cost.cache_creation_usd == 0
    assert cost.output_usd == Decimal("0.004")
    assert cost.reasoning_usd == Decimal("0.012")
    assert cost.cost_usd == Decimal("0.030")
    assert cost.known and cost.model == "openai/reasoner"


def test_anthropic_usage_with_cache_read_and_write() -> None:
    usage = Usage.from_anthropic(
        {
            "input_tokens": 1_000,
            "cache_read_input_tokens": 20_000,
            "cache_creation_input_tokens": 3_000,
            "output_tokens": 400,
        }
    )
    assert usage is not None
    cost = book(c="anthropic/claude-mid").cost("c", usage)
    # 1,000 × 3e-6 = 0.003; 20,000 × 3e-7 = 0.006; 3,000 × 3.75e-6 = 0.01125; 400 × 1.5e-5 = 0.006.
    assert (cost.input_usd, cost.cached_input_usd, cost.cache_creation_usd, cost.output_usd) == (
        Decimal("0.003"),
        Decimal("0.006"),
        Decimal("0.01125"),
        Decimal("0.006"),
    )
    assert cost.cost_usd == Decimal("0.02625")


def test_listed_reasoning_price_is_used() -> None:
    cost = book(t="thinker").cost("t", Usage(prompt_tokens=100, completion_tokens=300, reasoning_tokens=200))
    assert cost.reasoning_usd == Decimal("0.0012")  # 200 × 6e-6
    assert cost.output_usd == Decimal("0.0004")  # 100 × 4e-6
    assert cost.cost_usd == Decimal("0.0017")


def test_prices_are_exact_decimals_of_litellm_values() -> None:
    price = book(c="claude-mid").deployment_price("c")
    assert price.cache_creation == Decimal("3.75E-6")
    # Not cached tokens' price listed: it defaults to the input price.
    assert book(t="thinker").deployment_price("t").cached_input == Decimal("1E-6")


def test_provider_prefix_must_match_the_listed_provider() -> None:
    prices = book(a="openai/reasoner", b="reasoner", c="anthropic/reasoner", d="hosted_vllm/reasoner")
    assert prices.deployment_price("a") == prices.deployment_price("b")
    assert prices.deployment_price("a").known
    for self_hosted in ("c", "d"):
        price = prices.deployment_price(self_hosted)
        assert not price.known
        assert price.input == price.output == 0


def test_unknown_model_costs_zero_and_says_so() -> None:
    cost = book(v="hosted_vllm/meta-llama/Llama-3.1-8B").cost("v", Usage(prompt_tokens=1000, completion_tokens=50))
    assert cost.cost_usd == 0
    assert not cost.known
    assert not book(s="sample_spec").deployment_price("s").known


def test_override_wins_field_by_field() -> None:
    override = PriceOverride(input_per_mtok=1.0, cache_creation=Decimal("5E-6"))
    price = book(c=("anthropic/claude-mid", override)).deployment_price("c")
    assert price.input == Decimal("0.000001")
    assert price.cache_creation == Decimal("5E-6")
    assert price.output == Decimal("1.5E-5")  # litellm's, not overridden
    assert price.cached_input == Decimal("3E-7")


def test_override_prices_an_unknown_model() -> None:
    pricing = DeploymentPricing(
        model="hosted_vllm/qwen",
        override=PriceOverride.model_validate({"input_per_mtok": 0.2, "output_per_mtok": 0.8}),
    )
    prices = book(q=pricing)
    price = prices.deployment_price("q")
    assert price.known
    # Unlisted kinds default from the overridden ones.
    assert price.cached_input == price.cache_creation == Decimal("2E-7")
    assert price.reasoning == Decimal("8E-7")
    cost = prices.cost("q", Usage(prompt_tokens=1_000_000, completion_tokens=500_000))
    assert cost.cost_usd == Decimal("0.6")


def test_override_rejects_both_units_for_one_kind() -> None:
    with pytest.raises(ValueError, match="input_per_mtok"):
        PriceOverride.model_validate({"input": 1e-6, "input_per_mtok": 1.0})


def test_baseline_prices_cached_tokens_as_uncached_unless_same_deployment() -> None:
    prices = book(cheap="reasoner", frontier="claude-mid")
    usage = Usage(prompt_tokens=10_000, cached_prompt_tokens=8_000, completion_tokens=1_000)
    served = prices.cost("cheap", usage)  # 2,000 × 2e-6 + 8,000 × 5e-7 + 1,000 × 8e-6 = 0.016
    assert served.cost_usd == Decimal("0.016")
    baseline = prices.baseline_cost(usage, "frontier", served_deployment="cheap")
    # 10,000 × 3e-6 + 1,000 × 1.5e-5 = 0.045: the cache hits would not have been hits on the baseline.
    assert baseline.cost_usd == Decimal("0.045")
    assert baseline.cached_input_usd == 0
    same = prices.baseline_cost(usage, "cheap", served_deployment="cheap")
    assert same == served
    assert same.cost_usd - served.cost_usd == 0


def test_savings_are_negative_when_the_served_model_is_dearer() -> None:
    prices = book(cheap="reasoner", frontier="claude-mid")
    usage = Usage(prompt_tokens=1_000, completion_tokens=100)
    served = prices.cost("frontier", usage)  # 0.003 + 0.0015
    baseline = prices.baseline_cost(usage, "cheap", served_deployment="frontier")  # 0.002 + 0.0008
    assert baseline.cost_usd - served.cost_usd == Decimal("-0.0017")


def test_max_cost_bounds_any_split_of_the_same_tokens() -> None:
    prices = book(c="claude-mid", t="thinker")
    bound = prices.max_cost("c", prompt_tokens=1_000, max_output_tokens=200)
    assert bound == Decimal("0.00675")  # 1,000 × 3.75e-6 (cache write is dearest) + 200 × 1.5e-5
    for usage in (
        Usage(prompt_tokens=1_000, completion_tokens=200),
        Usage(prompt_tokens=1_000, cache_creation_tokens=1_000, completion_tokens=200),
        Usage(prompt_tokens=1_000, cached_prompt_tokens=900, completion_tokens=200),
    ):
        assert prices.cost("c", usage).cost_usd <= bound
    thinker_bound = prices.max_cost("t", prompt_tokens=0, max_output_tokens=100)
    assert thinker_bound == Decimal("0.0006")  # reasoning (6e-6) is dearer than output here
    assert prices.cost("t", Usage(completion_tokens=100, reasoning_tokens=100)).cost_usd == thinker_bound


def test_unconfigured_deployment_is_an_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        book(a="reasoner").cost("nope", Usage())


@pytest.mark.e2e
def test_bundled_litellm_map_resolves_real_models_offline() -> None:
    prices = PriceBook({"mini": "openai/gpt-4o-mini", "haiku": "anthropic/claude-haiku-4-5", "own": "hosted_vllm/x/y"})
    mini = prices.deployment_price("mini")
    assert mini.known and mini.input > 0 and mini.cached_input < mini.input
    haiku = prices.deployment_price("haiku")
    assert haiku.known and haiku.cache_creation > haiku.input > haiku.cached_input
    assert not prices.deployment_price("own").known


def test_shipped_price_table_is_derived_from_the_pinned_litellm() -> None:
    # The table replaces `import litellm` at start-up; after a pin change it must be regenerated
    # (python -m router.accounting.price_table), which this catches.
    version, cost_map = installed_cost_map()
    assert load_table() == derive(cost_map, version)


def test_shipped_prices_equal_litellms_own() -> None:
    _, cost_map = installed_cost_map()
    shipped = PriceBook({}, cost_map=litellm_cost_map())
    original = PriceBook({}, cost_map=cost_map)
    for model in ("gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku-20241022", "hosted_vllm/gpt-4o-mini"):
        assert shipped.price_of(model) == original.price_of(model)
    assert shipped.price_of("gpt-4o-mini").known
