"""Learner comparison for issue 12: which classifier routes best on public sources it never saw.

For each held-out source, a model is trained on the written set plus every *other* public source (or on the
written set alone), and the gateway's own decision — the classifier and ``policies/default.yaml`` through the
policy engine, with call state for multi-turn sources — is taken on the held-out source's turns. Reported per
source: small_leak (contract high-stakes turns routed small), small_capture (small-safe turns routed small),
frontier share, and for calls the leak after a call's first high-stakes turn. ``bench/routing_quality.py``
(``switchboard eval --routing``) is the project's benchmark; this script is the quicker loop behind the choice of
learner written up in ``docs/learner-comparison.md``.

    python -m bench.learner_comparison --learner written --learner combined --out bench/results/learners.json
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from classifiers.corpus import MULTI_TURN_SOURCES, SOURCES, CorpusRow, iter_calls, load_corpus
from classifiers.dataset import load_turns
from classifiers.embeddings import TextEncoder, TorchEncoder, load_encoder
from classifiers.pipeline import TurnClassifier
from classifiers.routing_quality import training_frame
from classifiers.schemas import Conversation
from classifiers.train import TrainingSettings, corpus_sample, fit_model
from router.config import load_config
from router.facts import TurnClassification, turn_facts
from router.policy.facts import HIGH_STAKES_MARK, CallFacts
from router.policy.store import load_policy
from router.traffic.classify import CachingEncoder

REPO = Path(__file__).resolve().parent.parent
WRITTEN = REPO / "classifiers" / "data" / "utterances.csv"
POLICY = REPO / "policies" / "default.yaml"
TIERS = ["small", "standard", "frontier"]


@dataclass
class Tally:
    high: int = 0
    high_small: int = 0
    safe: int = 0
    safe_small: int = 0
    turns: int = 0
    frontier: int = 0
    leaks: list[str] = field(default_factory=list)

    def add(self, contract: str, tier: str, text: str) -> None:
        self.turns += 1
        self.frontier += tier == "frontier"
        if contract == "high_stakes":
            self.high += 1
            if tier == "small":
                self.high_small += 1
                self.leaks.append(text)
        elif contract == "small_safe":
            self.safe += 1
            self.safe_small += tier == "small"

    def figures(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "small_leak": self.high_small / self.high if self.high else None,
            "high_stakes_turns": self.high,
            "small_capture": self.safe_small / self.safe if self.safe else None,
            "small_safe_turns": self.safe,
            "frontier_share": self.frontier / self.turns if self.turns else None,
            "leak_examples": self.leaks[:8],
        }


def messages_of(row: CorpusRow) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in row.history] + [{"role": "user", "content": row.text}]


class Router:
    """The gateway's decision offline: classifier → facts → the default policy's engine."""

    def __init__(self, classifier: TurnClassifier) -> None:
        self.classifier = classifier
        self.engine = load_policy(POLICY, load_config(None).config).engine

    def tier(self, messages: list[dict[str, str]], call: CallFacts | None = None) -> tuple[str, bool]:
        result = self.classifier.classify(Conversation.from_messages(messages))
        facts = turn_facts(
            tenant="bench",
            agent=None,
            requested_model="auto",
            messages=messages,
            tools=None,
            metadata=None,
            classification=TurnClassification.of(result),
            call=call,
        )
        decision = self.engine.decide(facts)
        return str(decision.tier), decision.high_stakes


def evaluate_single(router: Router, rows: Sequence[CorpusRow]) -> dict[str, Any]:
    tally = Tally()
    for row in rows:
        tier, _ = router.tier([{"role": "user", "content": row.text}])
        tally.add(row.contract, tier, row.text)
    return tally.figures()


def evaluate_calls(router: Router, rows: Sequence[CorpusRow], max_calls: int) -> dict[str, Any]:
    """Every call replayed in order with its history and call state; after a call's first high-stakes turn every
    later turn counts as high-stakes (the contract's stickiness)."""
    tally, after, clean = Tally(), Tally(), Tally()
    for number, (_, turns) in enumerate(iter_calls(rows)):
        if number >= max_calls:
            break
        seen_high, reached_high, max_tier = False, False, None
        call_has_high = any(turn.contract == "high_stakes" for turn in turns)
        for index, turn in enumerate(turns):
            facts = CallFacts(
                turn=index + 1,
                max_tier=max_tier,
                high_stakes_seen=reached_high,
                risks_seen=frozenset({HIGH_STAKES_MARK}) if reached_high else frozenset(),
            )
            tier, high = router.tier(messages_of(turn), facts)
            reached_high = reached_high or high
            max_tier = max(filter(None, [max_tier, tier]), key=TIERS.index)
            seen_high = seen_high or turn.contract == "high_stakes"
            tally.add(turn.contract, tier, turn.text)
            if seen_high:
                after.add("high_stakes", tier, turn.text)
            elif not call_has_high:
                clean.add(turn.contract, tier, turn.text)
    figures = tally.figures()
    figures["call_leak_after_first_high"] = after.figures()["small_leak"]
    figures["call_turns_after_first_high"] = after.high
    figures["call_capture_in_calls_without_high"] = clean.figures()["small_capture"]
    return figures


def sample(rows: Sequence[CorpusRow], limit: int, seed: int) -> list[CorpusRow]:
    if len(rows) <= limit:
        return list(rows)
    chosen = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
    return [rows[i] for i in sorted(chosen)]


LEARNERS: dict[str, Callable[[pd.DataFrame, list[CorpusRow]], pd.DataFrame]] = {
    "written": lambda written, _rows: written,
    "combined": lambda written, rows: pd.concat([written, training_frame(rows)], ignore_index=True),
}


@click.command()
@click.option("--learner", "learners", multiple=True, type=click.Choice(sorted(LEARNERS)), default=["combined"])
@click.option("--source", "sources", multiple=True, type=click.Choice(SOURCES), default=SOURCES)
@click.option("--per-source", default=2500, show_default=True, help="Training rows taken from each other source.")
@click.option("--test-rows", default=1500, show_default=True, help="Single-turn rows evaluated per held-out source.")
@click.option("--test-calls", default=120, show_default=True, help="Calls replayed per held-out multi-turn source.")
@click.option("--seed", default=13, show_default=True)
@click.option("--corpus-dir", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "bench" / "results" / "learners.json")
@click.option(
    "--encoder-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A fine-tuned sentence-transformers directory (bench/finetune_encoder.py), run in fp32 torch.",
)
def main(
    learners: Sequence[str],
    sources: Sequence[str],
    per_source: int,
    test_rows: int,
    test_calls: int,
    seed: int,
    corpus_dir: Path | None,
    out: Path,
    encoder_dir: Path | None,
) -> None:
    rows = load_corpus(directory=corpus_dir) if corpus_dir else load_corpus()
    written = load_turns(WRITTEN)
    base = TorchEncoder(encoder_dir, f"fine-tuned:{encoder_dir}", threads=1) if encoder_dir else load_encoder()
    encoder: TextEncoder = CachingEncoder(base, max_texts=400_000)
    results: dict[str, dict[str, Any]] = {}
    for learner in learners:
        written_only = None
        for held_out in sources:
            started = time.perf_counter()
            if learner == "written":  # the same model for every held-out source
                written_only = written_only or fit_model(written, encoder, TrainingSettings(seed=seed))
                model = written_only
            else:
                training = corpus_sample([row for row in rows if row.source != held_out], per_source, seed)
                model = fit_model(LEARNERS[learner](written, training), encoder, TrainingSettings(seed=seed))
            router = Router(TurnClassifier(model, encoder))
            testing = [row for row in rows if row.source == held_out]
            if held_out in MULTI_TURN_SOURCES:
                figures = evaluate_calls(router, testing, test_calls)
            else:
                figures = evaluate_single(router, sample(testing, test_rows, seed))
            figures["seconds"] = round(time.perf_counter() - started, 1)
            results.setdefault(learner, {})[held_out] = figures
            click.echo(
                f"{learner:9s} {held_out:20s} " + json.dumps({k: v for k, v in figures.items() if k != "leak_examples"})
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
