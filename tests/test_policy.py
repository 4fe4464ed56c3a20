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
    return PolicyEngine(Policy.model_validate(policy), TierLadder(CONFIG.tiers), [d.name for d in CONFIG.deployments])


def facts(**overrides: object) -> Facts:
    values: dict = {"tenant": "acme", "requested_model": "auto"}
    values.update(overrides)
    return Facts(**values)


@pytest.fixture(scope="module")
def default_engine() -> PolicyEngine:
    return load_policy(REPO / "policies" / "default.yaml", CONFIG).engine


def test_topic_alone_never_raises_a_turn_and_stakes_put_it_on_frontier(default_engine: PolicyEngine) -> None:
    # "which cards do you support?": payment is the topic, the stakes are low.
    faq = default_engine.decide(facts(intent="faq", intent_confidence=0.9, risks={"payment": 0.97}, stakes=0.05))
    assert (faq.tier, faq.rule, faq.high_stakes, faq.risks_present) == ("small", "no-stakes", False, ("payment",))
    chatter = default_engine.decide(facts(intent="other", intent_confidence=0.4, stakes=0.02))
    assert (chatter.tier, chatter.rule) == ("small", "no-stakes")
    card = default_engine.decide(facts(intent="data_collection", intent_confidence=0.9, stakes=1.0))
    assert card.tier == "frontier" and card.high_stakes
    assert "floor:high_stakes(1.00)->frontier" in card.reasons
    unsure = default_engine.decide(facts(intent="faq", intent_confidence=0.9, stakes=0.35))
    assert (unsure.tier, unsure.rule, unsure.high_stakes) == ("standard", "uncertain-stakes", False)


def test_complaints_go_at_least_to_standard(default_engine: PolicyEngine) -> None:
    calm = default_engine.decide(facts(intent="complaint", intent_confidence=0.9, stakes=0.1))
    assert (calm.tier, calm.rule) == ("standard", "complaints")
    about_money = default_engine.decide(facts(intent="complaint", intent_confidence=0.9, stakes=0.9))
    assert about_money.tier == "frontier"


def test_stakes_are_sticky_for_the_rest_of_the_call(default_engine: PolicyEngine) -> None:
    after_claim = CallFacts(turn=4, max_tier="frontier", escalated_at_turn=2, high_stakes_seen=True)
    thanks = default_engine.decide(facts(intent="smalltalk", intent_confidence=0.9, stakes=0.01, call=after_claim))
    assert thanks.tier == "frontier" and "floor:high_stakes(earlier in call)->frontier" in thanks.reasons
    # A call that only reached frontier on a long context (no stakes) is not held there.
    long_context_only = CallFacts(turn=4, max_tier="frontier", escalated_at_turn=2)
    later = default_engine.decide(facts(intent="smalltalk", intent_confidence=0.9, stakes=0.01, call=long_context_only))
    assert later.tier == "small"


def test_floor_applies_to_explicit_tier_requests_but_not_pinned_deployments(
    default_engine: PolicyEngine,
) -> None:
    asked_small = default_engine.decide(facts(requested_model="small", stakes=0.9))
    assert (asked_small.tier, asked_small.rule) == ("frontier", "requested-tier")
    pinned = default_engine.decide(facts(requested_model="gpt-4o-mini", stakes=0.9))
    assert (pinned.deployment, pinned.tier, pinned.rule) == ("gpt-4o-mini", None, "pinned-deployment")


def test_low_confidence_escalates() -> None:
    e = engine({"default": "small", "low_confidence": {"below": 0.45, "escalate_to": "standard"}})
    unsure = e.decide(facts(intent="faq", intent_confidence=0.3))
    assert unsure.tier == "standard" and unsure.reasons[0].startswith("low_confidence")


def test_stakes_and_language_conditions() -> None:
    e = engine(
        {
            "default": "small",
            "stakes_threshold": 0.7,
            "rules": [
                {
                    "name": "spanish-with-some-stakes",
                    "when": {"language": "es", "stakes": {"gte": 0.2}},
                    "route": "standard",
                },
                {"name": "high", "when": {"high_stakes": True}, "route": "frontier"},
                {"name": "seen", "when": {"call": {"high_stakes_seen": True}}, "route": "standard"},
            ],
        }
    )
    assert e.decide(facts(language="es", stakes=0.3)).rule == "spanish-with-some-stakes"
    assert e.decide(facts(language="en", stakes=0.3)).rule == "default"
    assert e.decide(facts(stakes=0.69)).rule == "default"  # under this policy's own threshold
    assert e.decide(facts(stakes=0.7)).rule == "high"
    assert e.decide(facts(call=CallFacts(turn=2, high_stakes_seen=True))).rule == "seen"
    assert e.decide(facts()).rule == "default"  # no classification: no stakes
    unjudged = engine(
        {"default": "standard", "rules": [{"name": "cheap", "when": {"high_stakes": False}, "route": "small"}]}
    )
    assert unjudged.decide(facts()).tier == "standard"  # classifier off: never "no stakes"


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
    # A soft budget never pushes a turn below its floor, nor downgrades a high-stakes turn.
    assert e.decide(facts(risks={"payment": 0.9}, budget_soft_exceeded=True)).tier == "frontier"
    assert e.decide(facts(intent="complaint", stakes=0.9, budget_soft_exceeded=True)).tier == "standard"
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
def test_invalid_policy_is_rejected_with_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
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
