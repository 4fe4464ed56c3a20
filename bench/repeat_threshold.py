"""The evidence for ``router.voice.circles.SAME_REQUEST_COSINE``: when does an earlier user turn repeat the latest?

Two measurements, both through the code the gateway runs (the shipped classifier's ``earlier_user_similarity`` and
``circles.repeats``):

* the labelled pairs ``tests/data/repeat_pairs.csv`` (a rephrased request vs a different request on the same
  subject, four domains): precision and recall of "repeats" at each threshold, and of the lexical rule for
  comparison;
* the traffic generator's calls, which never repeat a request: at each threshold, how many turns have 1, 2 (the
  default policy escalates) or 3 (it recommends a handoff after escalation) repeats; then every turn decided by the
  default policy with the call state the gateway keeps, counting going-in-circles escalations and handoffs;
* what the similarity adds to a classification: each generated turn classified alone in log order (as the gateway's
  worker does), the similarity step timed and the texts it had to encode counted (the rest are cache hits).

Run: ``nice python bench/repeat_threshold.py [--calls 1000 --seed 7]`` (about a minute on the 2-core machine).
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from classifiers.embeddings import CachingEncoder
from classifiers.folding import fold_disguises
from classifiers.pipeline import TurnClassifier
from classifiers.schemas import Conversation
from router.config import load_config
from router.facts import TurnClassification, turn_facts
from router.policy.engine import TierLadder
from router.policy.store import load_policy
from router.traffic.generate import sample_turns
from router.traffic.redact import Redactor
from router.traffic.replay import CallMemory
from router.voice.circles import SAME_REQUEST_COSINE, repeats

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "repeat_pairs.csv"
THRESHOLDS = (0.6, 0.65, 0.7, 0.725, 0.75, 0.775, 0.8, 0.85)
BATCH = 64


def pair_chat(earlier: str, latest: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": earlier},
        {"role": "assistant", "content": "Let me look into that for you."},
        {"role": "user", "content": latest},
    ]


def classify(classifier: TurnClassifier, chats: Sequence[list[dict[str, Any]]]) -> list[TurnClassification]:
    result: list[TurnClassification] = []
    for start in range(0, len(chats), BATCH):
        batch = [Conversation.from_messages(chat) for chat in chats[start : start + BATCH]]
        result += [TurnClassification.of(c) for c in classifier.classify_batch(batch)]
    return result


def pair_figures(classifier: TurnClassifier) -> None:
    with PAIRS.open(newline="") as file:
        rows = list(csv.DictReader(file))
    chats = [pair_chat(row["earlier"], row["latest"]) for row in rows]
    same = [row["label"] == "same" for row in rows]
    classified = classify(classifier, chats)
    click.echo(f"labelled pairs: {sum(same)} rephrasings, {len(same) - sum(same)} different requests")

    def line(name: str, predicted: list[bool]) -> None:
        tp = sum(p and s for p, s in zip(predicted, same, strict=True))
        fp = sum(p and not s for p, s in zip(predicted, same, strict=True))
        precision = tp / (tp + fp) if tp + fp else float("nan")
        click.echo(f"  {name:>16}  tp {tp:3d}  fp {fp:3d}  precision {precision:.3f}  recall {tp / sum(same):.3f}")

    line("lexical", [repeats(chat) > 0 for chat in chats])
    for threshold in THRESHOLDS:
        predicted = [
            repeats(chat, c.earlier_user_similarity, threshold) > 0 for chat, c in zip(chats, classified, strict=True)
        ]
        line(f"cosine >= {threshold:.3f}", predicted)


def generated_figures(classifier: TurnClassifier, calls: int, seed: int) -> None:
    turns = [turn.record for turn in sample_turns(calls, seed=seed, masker=Redactor())]
    chats = [record.chat_messages for record in turns]
    classified = classify(classifier, chats)
    click.echo(f"generated calls: {calls} calls, {len(turns)} turns (seed {seed})")
    for threshold in THRESHOLDS:
        counts = Counter(
            min(repeats(chat, c.earlier_user_similarity, threshold), 3)
            for chat, c in zip(chats, classified, strict=True)
        )
        click.echo(
            f"  cosine >= {threshold:.3f}  turns with 1 repeat {counts[1]:4d}, 2 {counts[2]:3d}, "
            f"3 or more {counts[3]:3d}"
        )
    loaded = load_config(None)
    policy = load_policy(loaded.policy_path(), loaded.config)
    memory = CallMemory(TierLadder(loaded.config.tiers), timedelta(days=policy.policy.caller_memory_days))
    escalations = handoffs = 0
    for record, chat, classification in zip(turns, chats, classified, strict=True):
        facts = turn_facts(
            tenant=record.tenant,
            agent=record.agent,
            requested_model=record.requested_model,
            messages=chat,
            tools=record.tool_stubs,
            metadata=None,
            classification=classification,
            call=memory.facts(record),
        )
        decision = policy.engine.decide(facts)
        deployment = decision.deployment or loaded.config.tiers[decision.tier or ""][0]
        memory.remember(record, decision, classification.intent, deployment)
        escalations += decision.rule == "going-in-circles"
        handoffs += decision.handoff is not None
    click.echo(
        f"  default policy (cosine >= {SAME_REQUEST_COSINE}): {escalations} going-in-circles escalations, "
        f"{handoffs} handoffs in {len(turns)} turns"
    )


def similarity_cost(classifier: TurnClassifier, calls: int, seed: int) -> None:
    """Each turn's similarity step run just before the turn is classified, in log order: the earlier user turns it
    reads were encoded when they were the latest turn, so what it encodes beyond the latest text is the extra work."""
    encoder = classifier.encoder
    assert isinstance(encoder, CachingEncoder), "the gateway's classifier caches vectors by text"
    conversations = [
        Conversation.from_messages(turn.record.chat_messages)
        for turn in sample_turns(calls, seed=seed + 1, masker=Redactor())
    ]
    milliseconds, extra = [], 0
    for conversation in conversations:
        normalised = conversation.normalised()
        latest = encoder.encode([fold_disguises(normalised.latest_user_text)])  # the classification encodes it too
        before = encoder.encoded
        started = time.perf_counter()
        classifier._earlier_user_similarity([normalised], latest)
        milliseconds.append((time.perf_counter() - started) * 1000)
        extra += encoder.encoded - before
        classifier.classify(conversation)
    p50, p99 = np.percentile(milliseconds, [50, 99])
    click.echo(
        f"similarity step: {len(conversations)} turns in log order, p50 {p50:.2f} ms, p99 {p99:.2f} ms in the "
        f"classifier's thread, {extra} texts encoded beyond each turn's own"
    )


@click.command()
@click.option("--calls", default=1000, show_default=True, help="Generated calls to measure.")
@click.option("--seed", default=7, show_default=True)
def main(calls: int, seed: int) -> None:
    classifier = TurnClassifier.load()
    pair_figures(classifier)
    generated_figures(classifier, calls, seed)
    similarity_cost(TurnClassifier.load(), calls // 5, seed)  # an empty vector cache, as a gateway starts


if __name__ == "__main__":
    main()
