"""The routing-quality harness: metric arithmetic on a hand-computed example, and a smoke run of the harness."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd
import pytest

from classifiers.corpus import CorpusRow, iter_calls, load_source
from classifiers.dataset import load_turns
from classifiers.embeddings import TextEncoder
from classifiers.pipeline import TurnClassifier
from classifiers.routing_quality import (
    WRITTEN_TURNS_PATH,
    RoutingSettings,
    after_high_stakes,
    call_metrics,
    contract_tier,
    previous_assistant_text,
    render_markdown,
    run_routing_quality,
    training_frame,
    turn_metrics,
)
from classifiers.train import TrainingSettings, fit_model


def decided_turns() -> pd.DataFrame:
    """Call A: a high-stakes turn at index 1, a small turn after it; call B: no high-stakes turn; two single turns.
    A turn costs 1 on small, 5 on standard, 10 on frontier; contract_cost prices it on its ``contract_tier``."""
    rows = [
        # call_id, turn_index, contract, tier, cost, baseline_cost, contract_cost
        ("A", 0, "small_safe", "small", 1.0, 10.0, 1.0),
        ("A", 1, "high_stakes", "frontier", 10.0, 10.0, 10.0),
        ("A", 2, "small_safe", "small", 1.0, 10.0, 10.0),
        ("A", 3, "small_safe", "frontier", 10.0, 10.0, 10.0),
        ("B", 0, "small_safe", "small", 1.0, 10.0, 1.0),
        ("B", 1, "small_safe", "standard", 5.0, 10.0, 1.0),
        (None, None, "high_stakes", "small", 1.0, 10.0, 10.0),
        (None, None, "standard", "small", 1.0, 10.0, 5.0),
    ]
    columns = ["call_id", "turn_index", "contract", "tier", "cost", "baseline_cost", "contract_cost"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["source"] = "x"
    frame["after_high_stakes"] = [False, False, True, True, False, False, False, False]
    return frame


def test_turn_metrics_by_hand() -> None:
    metrics = turn_metrics(decided_turns())
    assert metrics["turns"] == 8
    assert metrics["high_stakes_turns"] == 2
    assert metrics["small_leak"] == pytest.approx(1 / 2)  # the single high-stakes turn went small
    # A2 and A3 follow A's high-stakes turn: the contract keeps them off small, so capture counts A0, B0, B1.
    assert metrics["small_safe_after_stakes"] == 2
    assert metrics["small_capture"] == pytest.approx(2 / 3)
    assert metrics["standard_to_small"] == pytest.approx(1.0)
    assert metrics["frontier_share"] == pytest.approx(2 / 8)
    assert metrics["savings"] == pytest.approx(1 - 30 / 80)
    assert metrics["contract_savings"] == pytest.approx(1 - 48 / 80)


def test_call_metrics_by_hand() -> None:
    metrics = call_metrics(decided_turns())
    assert metrics["calls"] == 2
    assert metrics["calls_with_high_stakes"] == 1
    assert metrics["turns_after_first_high_stakes"] == 2  # A2 and A3
    assert metrics["after_high_leak"] == pytest.approx(1 / 2)  # A2 went small
    assert metrics["calls_leaking"] == pytest.approx(1.0)
    assert metrics["clean_call_capture"] == pytest.approx(1 / 2)  # B0 small, B1 standard
    assert metrics["savings"] == pytest.approx(1 - 28 / 60)
    assert metrics["mean_call_savings"] == pytest.approx(((1 - 22 / 40) + (1 - 6 / 20)) / 2)
    # The contract keeps A2 and A3 on frontier and lets B1 go small: A costs 31 of 40, B 2 of 20.
    assert metrics["contract_savings"] == pytest.approx(1 - 33 / 60)


def test_savings_at_source_mix_weighs_each_kind_of_call_back_to_its_share() -> None:
    # The sample has one call of each kind (A with a high-stakes turn: cost 22 of 40; B without: 6 of 20). In a
    # source where a quarter of the calls have one, A weighs 0.25 / 0.5 and B 0.75 / 0.5.
    metrics = call_metrics(decided_turns(), {"x": 0.25})
    assert metrics["savings_at_source_mix"] == pytest.approx(1 - (0.5 * 22 + 1.5 * 6) / (0.5 * 40 + 1.5 * 20))
    assert metrics["contract_savings_at_source_mix"] == pytest.approx(1 - (0.5 * 31 + 1.5 * 2) / (0.5 * 40 + 1.5 * 20))
    assert call_metrics(decided_turns(), {"x": 0.5})["savings_at_source_mix"] == pytest.approx(1 - 28 / 60)
    assert call_metrics(decided_turns())["savings_at_source_mix"] is None


def test_contract_tier_is_the_cheapest_the_contract_allows() -> None:
    assert contract_tier("small_safe", after_high=False) == "small"
    assert contract_tier("standard", after_high=False) == "standard"
    assert contract_tier("high_stakes", after_high=False) == "frontier"
    # Stickiness: whatever a turn is, once its call had a high-stakes turn it stays on frontier.
    assert contract_tier("small_safe", after_high=True) == "frontier"
    assert contract_tier("standard", after_high=True) == "frontier"


def test_empty_denominators_are_none() -> None:
    frame = decided_turns()
    only_safe = frame[frame["contract"] == "small_safe"]
    assert turn_metrics(only_safe)["small_leak"] is None
    assert call_metrics(only_safe)["after_high_leak"] is None


def test_after_high_stakes_follows_each_call_in_turn_order() -> None:
    def row(call_id: str | None, contract: str) -> CorpusRow:
        return CorpusRow.model_validate(
            {
                "source": "sgd",
                "split": "train",
                "text": "yes",
                "source_label": "x",
                "contract": contract,
                "intent": "smalltalk",
                "call_id": call_id,
                "turn_index": None if call_id is None else 0,
            }
        )

    rows = [
        row("a", "small_safe"),
        row("a", "high_stakes"),
        row("b", "small_safe"),  # another call: not sticky
        row("a", "small_safe"),
        row(None, "high_stakes"),
        row(None, "small_safe"),  # single turns have no call to carry stakes
    ]
    assert after_high_stakes(rows) == [False, False, False, True, False, False]


def test_training_frame_takes_the_agent_turn_right_before_the_caller() -> None:
    def row(history: list[tuple[str, str]]) -> CorpusRow:
        return CorpusRow.model_validate(
            {
                "source": "sgd",
                "split": "train",
                "text": "yes",
                "source_label": "x",
                "contract": "high_stakes",
                "intent": "data_collection",
                "risks": ["payment"],
                "call_id": "c",
                "turn_index": 1,
                "history": [{"role": role, "content": content} for role, content in history],
            }
        )

    answered = row([("user", "send money to Ann"), ("assistant", "Shall I send $20 to Ann?")])
    assert previous_assistant_text(answered) == "Shall I send $20 to Ann?"
    assert previous_assistant_text(row([("assistant", "Hi"), ("user", "hello")])) == ""
    frame = training_frame([answered])
    assert frame.loc[0, "context"] == "Shall I send $20 to Ann?"
    assert frame.loc[0, "risks"] == "payment"


@pytest.mark.e2e
def test_harness_smoke_on_a_tiny_subset() -> None:
    """Before and leave-one-source-out on two small sources, with a real (tiny) learner that records its rows."""
    seen: list[set[str]] = []
    trained_calls: Counter[str] = Counter()

    def tiny_learner(rows: Sequence[CorpusRow], encoder: TextEncoder) -> TurnClassifier:
        """A real model, fitted on the fold's rows and 25 written turns per intent (not all 2,800) to stay quick."""
        seen.append({row.source for row in rows})
        trained_calls.update(row.call_id for row in rows if row.call_id)
        written = load_turns(WRITTEN_TURNS_PATH).groupby("intent").head(25)
        frame = pd.concat([written, training_frame(rows)], ignore_index=True).drop_duplicates(subset="text")
        settings = TrainingSettings(test_size=0.0, neutral_context_augmentation=False)
        return TurnClassifier(fit_model(frame.reset_index(drop=True), encoder, settings), encoder)

    settings = RoutingSettings(eval_turns=12, eval_calls=4, train_turns=40, sources=("hint3", "taskmaster4"))
    run = run_routing_quality(settings, learner=tiny_learner)
    assert seen == [{"taskmaster4"}, {"hint3"}]  # each fold trains without the source it measures
    # Folds sample a multi-turn source as the shipped model's corpus does: whole calls, never scattered turns.
    call_lengths = {call_id: len(turns) for call_id, turns in iter_calls(load_source("taskmaster4"))}
    assert trained_calls and all(call_lengths[call_id] == count for call_id, count in trained_calls.items())
    for summary in (run.before, run.loso):
        assert summary is not None
        assert summary["per_source"]["hint3"]["turns"] == 12
        assert summary["calls_per_source"]["taskmaster4"]["calls"] == 4
        overall = summary["overall"]
        assert 0.0 <= overall["small_share"] <= 1.0 and overall["savings"] is not None
        # Taskmaster-4 calls have no stakes: the contract sends every turn small, which no routing undercuts.
        taskmaster = summary["per_source"]["taskmaster4"]
        assert taskmaster["savings"] <= taskmaster["contract_savings"] < 1.0
    assert run.turns is not None
    assert (run.turns["contract_cost"] <= run.turns["baseline_cost"]).all()  # the baseline is the frontier tier
    assert "| hint3 | 12 |" in render_markdown(run)
    shown = run.before["examples"]["hint3"]
    assert len(shown["leaks"]) + len(shown["missed_captures"]) <= 16
    assert all(example["tier"] == "small" for example in shown["leaks"])
    assert all(example["tier"] != "small" for example in shown["missed_captures"])


def test_held_out_folds_are_measured_while_training_on_every_source() -> None:
    everything = RoutingSettings(sources=("hint3", "sgd", "star"))
    assert everything.measured == ("hint3", "sgd", "star")
    subset = RoutingSettings(sources=("hint3", "sgd", "star"), held_out=("star", "hint3"))
    assert subset.measured == ("hint3", "star")  # in the order of sources; sgd still trains both folds
    assert RoutingSettings(sources=("hint3",), held_out=("star",)).measured == ()


def test_eval_needs_a_model_and_data_unless_routing() -> None:
    from click.testing import CliRunner

    from classifiers.cli import eval_command

    result = CliRunner().invoke(eval_command, [])
    assert result.exit_code == 2
    assert "--model and --data are required (or use --routing)" in result.output
