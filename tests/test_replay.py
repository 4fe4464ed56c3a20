"""Offline replay: call state as live, hand-checked pricing, exact decision diffs, floor checks and the gate."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifiers.schemas import Classification, Conversation
from router.accounting.pricing import litellm_cost_map
from router.accounting.tokens import prompt_tokens, text_tokens
from router.accounting.usage import Usage
from router.config import SHIPPED_POLICIES_DIR, load_config
from router.policy.engine import TierLadder
from router.policy.facts import Facts
from router.policy.store import load_policy
from router.traffic.classify import CachingEncoder, ShippedClassifier
from router.traffic.cli import GATE_FAILED_EXIT, replay_command
from router.traffic.gate import gate_failures, gate_violations, required_tiers
from router.traffic.generate import write_sample_log
from router.traffic.log import LoggedMessage, TrafficMetadata, TrafficRecord, VoiceMetadata
from router.traffic.redact import Redactor
from router.traffic.replay import CallMemory, replay
from router.traffic.report import build_report, floor_violations

CONFIG = load_config(None)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
RISKS = ("payment", "medical", "legal", "pii", "account_security", "emergency")
SYSTEM = "You are the receptionist of North Clinic."
# The user's words (after stand-ins) → (intent, risks present, stakes).
LABELS = {
    "hi i need an appointment": ("scheduling", {}, 0.02),
    "my card is 4111 1111 1111 1111": ("transaction", {"payment": 1.0, "pii": 1.0}, 1.0),
    "what time do you close": ("faq", {}, 0.01),
    "pay my balance with this card 4111 1111 1111 1111": ("transaction", {"payment": 1.0, "pii": 1.0}, 1.0),
}


class FixedClassifier:
    """Classifications fixed by the user's words; counts what it was asked to classify."""

    def __init__(self) -> None:
        self.classified: list[str] = []

    def cache_key(self, conversation: Conversation) -> tuple[str, str | None]:
        return conversation.latest_user_text, conversation.previous_assistant_text

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]:
        results = []
        for conversation in conversations:
            self.classified.append(conversation.latest_user_text)
            intent, present, stakes = LABELS[conversation.latest_user_text]
            risks = {risk: present.get(risk, 0.02) for risk in RISKS}
            results.append(
                Classification(
                    intent=intent,
                    intent_confidence=0.9,
                    risks=risks,
                    reasons=["fixed"],
                    detectors=[],
                    stakes=stakes,
                    high_stakes=stakes >= 0.5,
                )
            )
        return results


def _messages(*exchanges: str) -> list[LoggedMessage]:
    messages = [LoggedMessage(role="system", content=SYSTEM)]
    for index, text in enumerate(exchanges):
        messages.append(LoggedMessage(role="assistant" if index % 2 == 0 else "user", content=text))
    return messages


def _turn(request_id: str, call: str, seconds: int, messages: list[LoggedMessage], **fields: object) -> TrafficRecord:
    defaults: dict[str, object] = {
        "tenant": "clinic-north",
        "agent": "front-desk",
        "caller_id": "caller-1",
        "requested_model": "auto",
        "tools": ["find_slots"],
        "metadata": TrafficMetadata(voice=VoiceMetadata(asr_confidence=0.9, call_seconds=float(seconds))),
    }
    return TrafficRecord(
        ts=T0 + timedelta(seconds=seconds),
        request_id=request_id,
        call_id=call,
        messages=messages,
        **(defaults | fields),
    )


GREETING, ASK_CARD, TAKEN = "North Clinic, how can I help?", "Sure. What's the card number?", "Thanks, that's paid."
HAND_LOG = [
    # No usage logged: the replay estimates it, the completion from the reply that turn 2 carries.
    _turn("t1", "call-1", 5, _messages(GREETING, "hi i need an appointment"), usage=None),
    _turn(
        "t2",
        "call-1",
        15,
        _messages(GREETING, "hi i need an appointment", ASK_CARD, "my card is [CARD]"),
        usage=Usage(prompt_tokens=600, completion_tokens=30, cached_prompt_tokens=256),
    ),
    _turn(
        "t3",
        "call-1",
        25,
        _messages(GREETING, "hi i need an appointment", ASK_CARD, "my card is [CARD]", TAKEN, "what time do you close"),
        usage=Usage(prompt_tokens=700, completion_tokens=25, cached_prompt_tokens=512),
    ),
    # Pinned by the caller to a small deployment, with a payment risk: the policy does not route it.
    _turn(
        "t4",
        "call-2",
        8,
        _messages(GREETING, "pay my balance with this card [CARD]"),
        tenant="bank-retail",
        caller_id="caller-9",
        requested_model="gpt-4o-mini",
        usage=Usage(prompt_tokens=300, completion_tokens=50),
    ),
]


def _price(deployment: str, usage: Usage) -> Decimal:
    """Priced by hand from litellm's per-token prices."""
    entry = litellm_cost_map()[CONFIG.config.deployment(deployment).upstream_model]
    listed = {key: Decimal(str(entry[key])) for key in ("input_cost_per_token", "output_cost_per_token")}
    cached_price = Decimal(str(entry.get("cache_read_input_token_cost", entry["input_cost_per_token"])))
    uncached = usage.prompt_tokens - usage.cached_prompt_tokens
    return (
        uncached * listed["input_cost_per_token"]
        + usage.cached_prompt_tokens * cached_price
        + usage.completion_tokens * listed["output_cost_per_token"]
    )


def _policy(name: str) -> object:
    return load_policy(SHIPPED_POLICIES_DIR / f"{name}.yaml", CONFIG.config)


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (SHIPPED_POLICIES_DIR / "default.yaml").read_text()
    assert old in text
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(old, new).replace("name: default", f"name: {name}"))
    return path


CHATTER_TO_STANDARD = (
    "    when: {high_stakes: false}\n    route: small",
    "    when: {high_stakes: false}\n    route: standard",
)


@pytest.fixture(scope="module")
def hand_replay() -> object:
    return replay(HAND_LOG, {"P": _policy("default")}, CONFIG.config, FixedClassifier())


def test_decisions_replay_call_state_as_live(hand_replay) -> None:
    turns = hand_replay.turns.set_index("request_id")
    assert list(turns["rule.P"]) == ["no-stakes", "default", "no-stakes", "pinned-deployment"]
    assert list(turns["tier.P"]) == ["small", "frontier", "frontier", "small"]
    assert list(turns["deployment.P"]) == ["gpt-4o-mini", "claude-sonnet-4-5", "claude-sonnet-4-5", "gpt-4o-mini"]
    assert turns.loc["t2", "reasons.P"] == "floor:high_stakes(1.00)->frontier"
    # A high-stakes turn earlier in the call keeps its floor (sticky_high_stakes) for an otherwise cheap question.
    assert turns.loc["t3", "reasons.P"] == "floor:high_stakes(earlier in call)->frontier"
    assert turns.loc["t2", "risks.P"] == "payment,pii"
    assert list(turns["turn"]) == [1, 2, 3, 1]


def test_costs_reconcile_with_hand_pricing(hand_replay) -> None:
    turns = hand_replay.turns.set_index("request_id")
    estimated = Usage(
        prompt_tokens=prompt_tokens(
            [{"role": m.role, "content": m.content} for m in HAND_LOG[0].messages],
            [{"type": "function", "function": {"name": "find_slots"}}],
        ),
        completion_tokens=text_tokens(ASK_CARD),
    )
    assert (turns.loc["t1", "prompt_tokens"], turns.loc["t1", "completion_tokens"]) == (
        estimated.prompt_tokens,
        estimated.completion_tokens,
    )
    assert bool(turns.loc["t1", "usage_estimated"])
    t2, t3, t4 = (record.usage for record in HAND_LOG[1:])
    uncached_t2 = t2.model_copy(update={"cached_prompt_tokens": 0})  # the call was on another deployment before
    expected = {
        "t1": _price("gpt-4o-mini", estimated),
        "t2": _price("claude-sonnet-4-5", uncached_t2),
        "t3": _price("claude-sonnet-4-5", t3),  # same deployment as the turn before: its prompt cache holds
        "t4": _price("gpt-4o-mini", t4),
    }
    baseline = {
        rid: _price("claude-sonnet-4-5", usage) for rid, usage in zip(expected, [estimated, t2, t3, t4], strict=True)
    }
    for rid in expected:
        assert turns.loc[rid, "cost.P"] == pytest.approx(float(expected[rid]), rel=1e-12)
        assert turns.loc[rid, "baseline_cost"] == pytest.approx(float(baseline[rid]), rel=1e-12)
    summary = build_report(hand_replay).summary
    total, all_frontier = sum(expected.values()), sum(baseline.values())
    assert summary.loc["P", "cost_usd"] == pytest.approx(float(total))
    assert summary.loc["P", "savings_usd"] == pytest.approx(float(all_frontier - total))
    assert summary.loc["P", "cost_per_call_usd"] == pytest.approx(float(total) / 2)
    assert summary.loc["P", "floor_violations"] == 0, "the pinned turn is not the policy's doing"


def test_identical_conversations_are_classified_once() -> None:
    classifier = FixedClassifier()
    repeated = HAND_LOG[0].model_copy(update={"request_id": "t1b", "call_id": "call-3"})
    result = replay(
        [HAND_LOG[0], repeated, *HAND_LOG[1:]], {"P": _policy("default")}, CONFIG.config, classifier, batch_size=2
    )
    assert sorted(classifier.classified) == sorted(set(LABELS))
    assert result.unique_conversations == 4 and len(result.turns) == 5


@pytest.mark.e2e
def test_parallel_classification_gives_the_same_replay() -> None:
    policies = {"P": _policy("default")}
    alone = replay(HAND_LOG, policies, CONFIG.config, FixedClassifier(), batch_size=1)
    spread = replay(HAND_LOG, policies, CONFIG.config, FixedClassifier(), batch_size=1, workers=2)
    pd.testing.assert_frame_equal(alone.turns, spread.turns)


class CountingEncoder:
    encoder_id, runtime = "counting@1", "onnx"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(text), ord(text[0])] for text in texts], dtype=np.float32)


def test_caching_encoder_embeds_each_text_once() -> None:
    inner = CountingEncoder()
    encoder = CachingEncoder(inner, max_texts=2)
    first = encoder.encode(["yes", "no", "yes"])
    second = encoder.encode(["no", "okay"])
    assert inner.seen == ["yes", "no", "okay"]
    np.testing.assert_array_equal(first, inner.encode(["yes", "no", "yes"]))
    np.testing.assert_array_equal(second[0], first[1])
    encoder.encode(["yes"])
    assert inner.seen[-1] == "yes", "the least recently used text was forgotten"
    assert encoder.encoder_id == "counting@1"
    assert pickle.loads(pickle.dumps(ShippedClassifier(Path("m.joblib")))).model_path == Path("m.joblib")


def test_caller_memory_ages_with_the_log_not_the_wall_clock() -> None:
    memory = CallMemory(TierLadder(CONFIG.config.tiers), timedelta(days=7))
    complaint = HAND_LOG[0]
    decision = _policy("default").engine.decide(Facts(tenant="clinic-north", requested_model="small"))
    memory.remember(complaint, decision, "complaint", "gpt-4o-mini")
    later = complaint.model_copy(update={"call_id": "call-5", "ts": complaint.ts + timedelta(days=6)})
    much_later = complaint.model_copy(update={"call_id": "call-6", "ts": complaint.ts + timedelta(days=8)})
    assert memory.facts(later).caller_open_complaint
    assert not memory.facts(much_later).caller_open_complaint
    assert memory.facts(complaint).turn == 2 and memory.facts(later).turn == 1


def test_compare_lists_exactly_the_changed_decisions(tmp_path: Path) -> None:
    candidate = load_policy(_variant(tmp_path, "chatty", *CHATTER_TO_STANDARD), CONFIG.config)
    result = replay(HAND_LOG, {"P": _policy("default"), "Q": candidate}, CONFIG.config, FixedClassifier())
    report = build_report(result)
    changes = report.changes
    assert list(changes["request_id"]) == ["t1"], "t3 stays on frontier: its floor outranks the changed rule"
    row = changes.iloc[0]
    assert (row["tier.P"], row["rule.P"], row["tier.Q"], row["rule.Q"]) == (
        "small",
        "no-stakes",
        "standard",
        "no-stakes",
    )
    assert row["direction"] == "up" and row["intent"] == "scheduling" and row["cost_delta_usd"] > 0
    assert report.changes_by_intent.loc["scheduling", "up"] == 1


def test_floor_violations_are_found_independently_of_the_engine(hand_replay) -> None:
    assert floor_violations(hand_replay, "P").empty
    broken_turns = hand_replay.turns.copy()
    broken_turns.loc[broken_turns["request_id"] == "t2", "tier.P"] = "standard"
    broken = dataclasses.replace(hand_replay, turns=broken_turns)
    found = floor_violations(broken, "P")
    assert list(found["request_id"]) == ["t2"]
    assert (found.iloc[0]["tier"], found.iloc[0]["floor"]) == ("standard", "frontier")
    gated = gate_violations(broken, "P", "P")
    assert list(gated["request_id"]) == ["t2"]
    failures = gate_failures(build_report(broken), gated, max_cost_increase_pct=5)
    assert len(failures) == 1 and "P routes 1 turns (1 calls) below the tier P's floors" in failures[0]


def _run(args: list[str]) -> object:
    return CliRunner().invoke(replay_command, args, obj={"classifier": FixedClassifier()}, catch_exceptions=False)


@pytest.fixture
def hand_log(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(b"".join(record.to_line() for record in HAND_LOG))
    return path


@pytest.mark.e2e
def test_gate_exit_codes(tmp_path: Path, hand_log: Path) -> None:
    chatty = _variant(tmp_path, "chatty", *CHATTER_TO_STANDARD)
    same = _run(["--traffic", str(hand_log), "--policy", "default", "--compare", "default", "--gate"])
    assert same.exit_code == 0 and "gate passed" in same.output
    dearer = _run(["--traffic", str(hand_log), "--policy", "default", "--compare", str(chatty), "--gate"])
    assert dearer.exit_code == GATE_FAILED_EXIT == 3
    assert "more than P" in dearer.output and "limit is +5%" in dearer.output
    base = ["--traffic", str(hand_log), "--policy", "default", "--compare", str(chatty)]
    tolerated = _run([*base, "--gate", "--max-cost-increase-pct", "1000"])
    assert tolerated.exit_code == 0
    ungated = _run(base)
    assert ungated.exit_code == 0


LOWER_FLOOR = (
    "  high_stakes: frontier       # the classifier's stakes, or a detector's hard evidence\n"
    "  sticky_high_stakes: true ",
    "  high_stakes: small\n  sticky_high_stakes: false",
)


def test_gate_requires_the_current_policys_floors_per_turn(hand_replay) -> None:
    required = required_tiers(hand_replay, "P").set_index(hand_replay.turns["request_id"])
    assert pd.isna(required.loc["t1", "required"])
    assert required.loc["t2", "required"] == "frontier" and required.loc["t2", "required_by"] == "P floor.high_stakes"
    assert required.loc["t3", "required_by"] == "P floor.high_stakes (earlier in call)"


def test_the_contract_holds_even_where_the_current_policy_has_no_floor(tmp_path: Path) -> None:
    floorless = load_policy(_variant(tmp_path, "floorless", *LOWER_FLOOR), CONFIG.config)
    result = replay(HAND_LOG, {"P": floorless}, CONFIG.config, FixedClassifier())
    required = required_tiers(result, "P").set_index(result.turns["request_id"])
    assert required.loc["t2", "required"] == "standard"
    assert required.loc["t2", "required_by"] == "contract: high-stakes, never small"
    assert pd.isna(required.loc["t3", "required"])  # the contract's floor is the turn's own stakes


def test_gate_fails_a_candidate_that_lowers_its_own_floors(tmp_path: Path, hand_log: Path) -> None:
    """The candidate has no violation of its own floors, but moves stakes turns off the current policy's floor."""
    lowered = tmp_path / "lowered.yaml"
    lowered.write_text(
        _variant(tmp_path, "lowered", *LOWER_FLOOR).read_text().replace("default: standard", "default: small")
    )
    out = tmp_path / "report"
    run = _run(
        ["--traffic", str(hand_log), "--policy", "default", "--compare", str(lowered), "--gate", "--out", str(out)]
    )
    assert run.exit_code == GATE_FAILED_EXIT, run.output
    assert "Floor violations under Q: 0" in run.output  # what the old gate looked at
    assert "gate failed: Q routes 2 turns (1 calls) below the tier P's floors and the routing contract require" in (
        run.output
    )
    assert "t2 call call-1 turn 2 (transaction, stakes 1.00): small by rule default, requires frontier" in run.output
    assert "t3 call call-1 turn 3" in run.output and "(P floor.high_stakes (earlier in call))" in run.output
    gated = pd.read_csv(out / "gate_violations.csv")
    assert list(gated["request_id"]) == ["t2", "t3"] and set(gated["tier"]) == {"small"}


def test_an_empty_log_is_an_error_not_a_report(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    run = CliRunner().invoke(
        replay_command, ["--traffic", str(empty), "--policy", "default"], obj={"classifier": FixedClassifier()}
    )
    assert run.exit_code == 1 and "holds no traffic records" in run.output


@pytest.mark.e2e
def test_cli_writes_tables_and_charts(tmp_path: Path, hand_log: Path) -> None:
    chatty = _variant(tmp_path, "chatty", *CHATTER_TO_STANDARD)
    out = tmp_path / "report"
    run = _run(["--traffic", str(hand_log), "--policy", "default", "--compare", str(chatty), "--out", str(out)])
    assert run.exit_code == 0
    assert "Decisions that differ between P and Q: 1" in run.output and "turns/s" in run.output
    for name in ("turns", "summary", "tier_mix", "by_intent", "by_risk", "changes", "changes_by_intent"):
        assert (out / f"{name}.csv").stat().st_size > 0, name
    assert list(pd.read_csv(out / "changes.csv")["request_id"]) == ["t1"]
    assert len(pd.read_csv(out / "turns.csv")) == 4
    assert pd.read_csv(out / "floor_violations.Q.csv").empty
    for chart in ("cost_by_tier.png", "changes_by_intent.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), chart


@pytest.mark.e2e
def test_generated_traffic_replays_with_the_shipped_classifier(tmp_path: Path) -> None:
    log = tmp_path / "sample.jsonl"
    turns = write_sample_log(log, 6, seed=2, masker=Redactor())
    run = CliRunner().invoke(
        replay_command, ["--traffic", str(log), "--policy", "default", "--gate"], catch_exceptions=False
    )
    assert run.exit_code == 0, run.output
    assert f"Replayed {turns:,} turns (6 calls)" in run.output
    assert "Floor violations under P: 0" in run.output
