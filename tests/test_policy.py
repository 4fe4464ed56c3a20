"""The policy language: rules, floors and adjustments (pure engine), and file errors at their line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from router.config import GatewayConfig, load_config
from router.policy.engine import PolicyEngine, TierLadder
from router.policy.facts import CallFacts, Facts, VoiceFacts
from router.policy.schema import Policy
from router.policy.store import PolicyStore, Vocabulary, load_policy
from router.yamlsource import ConfigFileError

REPO = Path(__file__).resolve().parent.parent
CONFIG = load_config(None).config  # the embedded default: small, standard, frontier


def engine(policy: dict) -> PolicyEngine:
    return PolicyEngine(
        Policy.model_validate(policy), TierLadder(CONFIG.tiers), [d.name for d in CONFIG.deployments]
    )


def facts(**overrides: object) -> Facts:
    values: dict = {"tenant": "acme", "requested_model": "auto"}
    values.update(overrides)
    return Facts(**values)


@pytest.fixture(scope="module")
def default_engine() -> PolicyEngine:
    return load_policy(REPO / "policies" / "default.yaml", CONFIG).engine


def test_cheap_turn_goes_small_and_risky_turns_hit_their_floors(default_engine: PolicyEngine) -> None:
    faq = default_engine.decide(facts(intent="faq", intent_confidence=0.9, risks={"payment": 0.1}))
    assert (faq.tier, faq.rule, faq.high_stakes) == ("small", "chatter-and-lookups", False)
    card = default_engine.decide(
        facts(intent="data_collection", intent_confidence=0.9, risks={"payment": 0.97})
    )
    assert card.tier == "frontier" and card.high_stakes and card.risks_present == ("payment",)
    assert any(reason.startswith("floor:payment") for reason in card.reasons)
    emergency = default_engine.decide(
        facts(intent="smalltalk", intent_confidence=0.9, risks={"emergency": 0.4})
    )
    assert emergency.tier == "frontier"  # the emergency threshold is lower (0.35)


def test_floor_applies_to_explicit_tier_requests_but_not_pinned_deployments(
    default_engine: PolicyEngine,
) -> None:
    asked_small = default_engine.decide(facts(requested_model="small", risks={"medical": 0.9}))
    assert (asked_small.tier, asked_small.rule) == ("frontier", "requested-tier")
    pinned = default_engine.decide(facts(requested_model="gpt-4o-mini", risks={"medical": 0.9}))
    assert (pinned.deployment, pinned.tier, pinned.rule) == ("gpt-4o-mini", None, "pinned-deployment")


def test_low_confidence_escalates(default_engine: PolicyEngine) -> None:
    unsure = default_engine.decide(facts(intent="faq", intent_confidence=0.3))
    assert unsure.tier == "standard" and unsure.reasons[0].startswith("low_confidence")


def test_classifier_failure_routes_to_its_fallback(default_engine: PolicyEngine) -> None:
    assert default_engine.decide(facts(classifier_failed=True)).tier == "frontier"


def test_conditions_compose() -> None:
    policy = {
        "default": "standard",
        "rules": [
            {"name": "long", "when": {"prompt_tokens": {"gte": 1000}}, "route": "frontier"},
            {
                "name": "vip-or-tools",
                "when": {"any_of": [{"tenant": "vip"}, {"tools": True, "message_count": {"lt": 3}}]},
                "route": {"deployment": "gpt-4.1"},
            },
            {"name": "not-acme", "when": {"not": {"tenant": ["acme"]}}, "route": "small"},
            {
                "name": "risky",
                "when": {"risk": {"any": ["legal"], "none": ["medical"], "threshold": 0.2}},
                "route": "frontier",
            },
            {"name": "noisy-line", "when": {"voice": {"asr_confidence": {"lt": 0.6}}}, "route": "frontier"},
        ],
    }
    e = engine(policy)
    assert e.decide(facts(prompt_tokens=5000)).rule == "long"
    vip = e.decide(facts(tenant="vip"))
    assert (vip.rule, vip.tier) == ("vip-or-tools", "standard")  # a deployment's route takes its tier
    assert e.decide(facts(has_tools=True, message_count=2)).rule == "vip-or-tools"
    assert e.decide(facts(tenant="other")).rule == "not-acme"
    assert e.decide(facts(risks={"legal": 0.3})).rule == "risky"
    assert e.decide(facts(risks={"legal": 0.3, "medical": 0.9})).rule == "default"
    assert e.decide(facts(voice=VoiceFacts(asr_confidence=0.4))).rule == "noisy-line"
    assert e.decide(facts()).rule == "default"


def test_stickiness_budget_downgrade_and_sticky_risk_floors() -> None:
    e = engine(
        {
            "default": "small",
            "stickiness": {"from_tier": "frontier", "turns": 3},
            "budget_downgrade": {"tier": "small"},
            "floor": {"risks": {"payment": "frontier"}, "sticky_risks": True},
            "rules": [{"name": "complaints", "when": {"intent": "complaint"}, "route": "standard"}],
        }
    )
    escalated = CallFacts(turn=5, max_tier="frontier", escalated_at_turn=3)
    assert e.decide(facts(call=escalated)).tier == "frontier"
    expired = CallFacts(turn=7, max_tier="frontier", escalated_at_turn=3)
    assert e.decide(facts(call=expired)).tier == "small"
    assert e.decide(facts(intent="complaint", budget_soft_exceeded=True)).tier == "small"
    # A soft budget never pushes a high-stakes turn below its floor.
    assert e.decide(facts(risks={"payment": 0.9}, budget_soft_exceeded=True)).tier == "frontier"
    remembered = CallFacts(turn=2, risks_seen=frozenset({"payment"}))
    assert e.decide(facts(call=remembered)).tier == "frontier"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("default: small\nrules:\n  - name: a\n    route: fronteir\n", 4, "unknown tier 'fronteir'"),
        ("default: small\nrules:\n  - name: a\n    when: {intnet: [faq]}\n    route: small\n", 4, "intnet"),
        ("default: small\nrules:\n  - name: a\n    when: {intent: [faq]\n", 5, "invalid YAML"),
        (
            "default: small\nrules:\n  - name: all\n    route: small\n  - name: never\n    route: frontier\n",
            5,
            "unreachable",
        ),
        ("default: small\nfloor:\n  risks:\n    payment: huge\n", 4, "unknown tier 'huge'"),
        ("rules: []\n", 1, "default"),
    ],
)
def test_invalid_policy_is_rejected_with_line_and_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_policy(write(tmp_path, text), CONFIG)
    assert caught.value.line == line
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"{tmp_path / 'policy.yaml'}:{line}:")


def test_unknown_labels_are_rejected_when_the_vocabulary_is_known(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "default: small\nrules:\n  - name: a\n    when: {risk: {any: [paymnet]}}\n    route: small\n",
    )
    with pytest.raises(ConfigFileError, match="unknown risk 'paymnet'"):
        load_policy(path, CONFIG, Vocabulary(risks={"payment", "medical"}))


def test_store_keeps_the_running_policy_when_a_reload_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "name: one\ndefault: small\n")
    store = PolicyStore(path, CONFIG)
    first = store.active.version
    path.write_text("name: two\ndefault: nowhere\n")
    with pytest.raises(ConfigFileError):
        store.reload()
    assert store.active.version == first and "nowhere" in (store.last_error or "")
    path.write_text("name: two\ndefault: frontier\n")
    assert store.reload().version.startswith("two@") and store.last_error is None


def test_gateway_config_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("deployments:\n  - name: a\n    model: openai/x\ntiers:\n  small: [a, b]\n")
    with pytest.raises(ConfigFileError, match="unknown deployment 'b'"):
        load_config(path)
    assert isinstance(CONFIG, GatewayConfig)
