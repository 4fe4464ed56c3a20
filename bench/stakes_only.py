"""The stakes alone, leave-one-source-out, in seconds per fold: a quick screen for stakes-learner ideas.

The routing harness (``bench/routing_quality.py``) measures the gateway's whole decision and takes minutes per
fold, because every fold fits all the heads. Most stakes-learner ideas only change the stakes; this fits only the
stakes head (the features ``classifiers.train`` builds: embeddings of turn and context, risk keywords, character
n-grams) on each fold's training rows, blends the nearest-example vote, applies the stakes cues, and reports what
the routing harness would at the uncertain band's lower edge: **leak** (high-stakes turns under the band, counting
only a call's turns before its first high-stakes one, since stickiness covers the rest), **capture** (small-safe
turns under it), and the leak at the score that lets 80 % of small-safe turns through, which compares learners at
equal capture. It leaves out what the harness has: the policy's intent rules, detectors, earlier turns, call state
and the written set's neutral-context copies. Round 5 of ``docs/learner-comparison.md`` chose the vote with it.

Use seeds the harness does not (it reports seeds 7 and 11), so a screen never tunes on the reported samples:

    python bench/stakes_only.py --seed 23 --train-turns 300 --variant base --variant vote=0.3 --variant C=1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score

from classifiers.corpus import SOURCES, CorpusRow, load_corpus
from classifiers.dataset import conversations, label_sets
from classifiers.embeddings import CachingEncoder, TextEncoder, load_encoder
from classifiers.features import (
    embed_turns,
    lexical_vectorizer,
    turn_features,
    with_keywords,
    with_lexical,
)
from classifiers.lexicon import RiskLexicon
from classifiers.neighbours import ExampleIndex, blend_stakes
from classifiers.pipeline import single_blas_thread, turn_cue
from classifiers.risk import RiskClassifier
from classifiers.routing_quality import (
    RoutingSettings,
    after_high_stakes,
    evaluation_sample,
    fold_frame,
    previous_assistant_text,
)
from classifiers.schemas import Conversation
from classifiers.stakes_cues import CUE_STAKES
from classifiers.train import TrainingSettings, corpus_sample, folded, stakes_targets

SHIPPED = TrainingSettings()  # the shipped learner's recipe: a variant changes only what it names
UNCERTAIN_BAND_LOW = 0.3  # the default policy's ``uncertain-stakes`` rule: under it a turn without stakes goes small
EQUAL_CAPTURE = 0.8


@dataclass(frozen=True)
class Variant:
    """A stakes learner: the head's C and n-gram weight, and the nearest-example vote's weight and k (``base``: the
    shipped head without the vote)."""

    name: str
    c: float = SHIPPED.stakes_c
    lexical_weight: float = SHIPPED.stakes_lexical_weight
    vote_weight: float = 0.0
    vote_k: int = SHIPPED.neighbour_stakes_k

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``base`` or comma-separated ``key=value`` of ``C``, ``lexical``, ``vote``, ``k``."""
        if spec == "base":
            return cls(spec)
        fields = {"C": "c", "lexical": "lexical_weight", "vote": "vote_weight", "k": "vote_k"}
        values: dict[str, float | int] = {}
        for item in spec.split(","):
            key, _, value = item.partition("=")
            if key not in fields:
                raise click.BadParameter(f"unknown key {key!r} in {spec!r}; known: base, {', '.join(fields)}")
            values[fields[key]] = int(value) if key == "k" else float(value)
        return cls(spec, **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Features:
    user: np.ndarray
    dense: np.ndarray
    lexical: Any  # scipy CSR matrix
    texts: list[str]


def features(
    turns: Sequence[Conversation], encoder: TextEncoder, keywords: RiskLexicon, vectorizer: TfidfVectorizer
) -> Features:
    """The stakes head's inputs for turns already folded, as ``classifiers.train`` builds them."""
    texts = [turn.latest_user_text for turn in turns]
    user, context = embed_turns(encoder, turns)
    dense = with_keywords(turn_features(user, context, SHIPPED.feature_scheme), texts, keywords, SHIPPED.keyword_weight)
    return Features(user, dense, vectorizer.transform(texts), texts)


def fold_scores(
    held_out: str,
    rows: dict[str, list[CorpusRow]],
    settings: RoutingSettings,
    encoder: TextEncoder,
    variants: list[Variant],
) -> pd.DataFrame:
    """Per measured turn of ``held_out``: its contract label, whether it follows a high-stakes turn of its call,
    and each variant's stakes (head, vote, cue)."""
    training = [
        row
        for source in SOURCES
        if source != held_out
        for row in corpus_sample(rows[source], settings.train_turns, settings.seed)
    ]
    frame = fold_frame(training)
    _, risks = label_sets(frame)
    keywords = RiskLexicon(risks)
    turns = [folded(turn) for turn in conversations(frame)]
    vectorizer = lexical_vectorizer().fit([turn.latest_user_text for turn in turns])
    train = features(turns, encoder, keywords, vectorizer)
    targets = stakes_targets(frame)
    labelled = targets >= 0
    index = ExampleIndex(train.user, train.texts, frame["intent"].tolist(), targets)

    measured = evaluation_sample(held_out, rows[held_out], settings)
    asked = [
        folded(Conversation(latest_user_text=row.text, previous_assistant_text=previous_assistant_text(row) or None))
        for row in measured
    ]
    test = features(asked, encoder, keywords, vectorizer)
    similarities = index.similarities(test.user)
    cued = np.array([turn_cue(turn) is not None for turn in asked])
    result = pd.DataFrame(
        {
            "source": held_out,
            "contract": [row.contract for row in measured],
            "after_high_stakes": after_high_stakes(measured),
        }
    )
    for variant in variants:
        with single_blas_thread():
            head = RiskClassifier(C=variant.c).fit(
                with_lexical(train.dense, train.lexical, variant.lexical_weight)[labelled],
                targets[labelled].reshape(-1, 1),
                ["stakes"],
            )
            learned = head.predict_proba(with_lexical(test.dense, test.lexical, variant.lexical_weight))[:, 0]
        stakes = blend_stakes(learned, index.stakes_vote(similarities, variant.vote_k), variant.vote_weight)
        result[variant.name] = np.where(cued, np.maximum(stakes, CUE_STAKES), stakes)
    return result


def summary(scores: pd.DataFrame, variant: str) -> dict[str, float]:
    first_high = scores[(scores["contract"] == "high_stakes") & ~scores["after_high_stakes"]]
    small_safe = scores[(scores["contract"] == "small_safe") & ~scores["after_high_stakes"]]
    labelled = scores[scores["contract"] != "standard"]
    equal_capture = float(np.quantile(small_safe[variant], EQUAL_CAPTURE))
    return {
        "leak": float((first_high[variant] < UNCERTAIN_BAND_LOW).mean()),
        "capture": float((small_safe[variant] < UNCERTAIN_BAND_LOW).mean()),
        "leak_at_equal_capture": float((first_high[variant] < equal_capture).mean()),
        "auc": float(roc_auc_score(labelled["contract"] == "high_stakes", labelled[variant])),
    }


@click.command()
@click.option("--seed", default=23, show_default=True, help="Sampling seed (the harness reports 7 and 11).")
@click.option("--train-turns", default=300, show_default=True, help="Training turns per source.")
@click.option("--variant", "variants", multiple=True, default=("base", "vote=0.3"), show_default=True)
def main(seed: int, train_turns: int, variants: tuple[str, ...]) -> None:
    """Screen stakes learners leave-one-source-out on the public corpus."""
    chosen = [Variant.parse(spec) for spec in variants]
    settings = RoutingSettings(seed=seed, train_turns=train_turns)
    corpus = load_corpus()
    rows = {source: [row for row in corpus if row.source == source] for source in SOURCES}
    encoder = CachingEncoder(load_encoder("onnx"))
    scores = pd.concat([fold_scores(source, rows, settings, encoder, chosen) for source in SOURCES], ignore_index=True)
    click.echo(f"seed {seed}, {train_turns} training turns per source, band {UNCERTAIN_BAND_LOW}")
    click.echo("| variant | leak | capture | leak at 80 % capture | ROC AUC |\n| --- | ---: | ---: | ---: | ---: |")
    for variant in chosen:
        found = summary(scores, variant.name)
        click.echo(
            f"| {variant.name} | {found['leak']:.1%} | {found['capture']:.1%} | "
            f"{found['leak_at_equal_capture']:.1%} | {found['auc']:.3f} |"
        )


if __name__ == "__main__":
    main()
