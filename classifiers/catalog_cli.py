"""``switchboard catalog check|fit|eval``: validate a tenant intent catalog, tune its thresholds, measure it.

Labelled turns are a CSV with columns ``text,intent`` and optionally ``risks``: ``intent`` is a catalog intent
name or ``none`` (a turn the catalog must not claim); ``risks`` (``;``-separated) adds true risks to a row beyond
those its intent declares, e.g. an emergency phrase among the ``none`` rows.

Routing-critical figures of ``eval`` (the generic classifier runs too, unless ``--catalog-only``):

* high-risk recall: of the turns with a true risk, the share where every true risk is present after ``merge``
  (raised by the matched catalog intent, or found by the generic heads or a detector);
* small-safe precision: of the turns matched to an intent whose tier is ``small`` and not high-stakes after
  ``merge`` (a high-stakes turn is lifted by the policy's floor), the share that truly carry no risk.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.metrics import precision_recall_fscore_support

from classifiers.catalog import (
    NO_MATCH,
    Catalog,
    CatalogEmbeddingCache,
    CatalogIndex,
    CatalogMatch,
    CatalogVocabulary,
    IntentThresholdFit,
    cross_validated_claims,
    fit_thresholds,
    load_catalog,
    merge,
    write_thresholds,
)
from classifiers.embeddings import EncoderRuntime, TextEncoder, load_encoder
from classifiers.pipeline import TurnClassifier
from classifiers.schemas import Classification, Conversation, normalise_text
from router.yamlsource import ConfigFileError

SMALL_TIER = "small"
_RUNTIME = click.Choice([runtime.value for runtime in EncoderRuntime])
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@dataclass
class CatalogTools:
    """What the catalog commands share; a caller (or a test) may hand in a loaded encoder and a cache as ``obj``."""

    encoder: TextEncoder | None = None
    cache: CatalogEmbeddingCache | None = None

    def encoder_for(self, runtime: str | None) -> TextEncoder:
        if self.encoder is None or (runtime is not None and self.encoder.runtime != runtime):
            self.encoder = load_encoder(runtime)
        return self.encoder


class LabelledTurns(BaseModel):
    texts: list[str]
    intents: list[str]
    extra_risks: list[frozenset[str]]


def load_labelled(path: Path, catalog: Catalog, vocabulary: CatalogVocabulary) -> LabelledTurns:
    """The labelled CSV; an unknown intent or risk is reported at its CSV line."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in ("text", "intent") if column not in frame.columns]
    if missing:
        raise ConfigFileError(str(path), 1, f"missing columns {missing} (need text,intent[,risks])")
    names = {intent.name for intent in catalog.intents} | {NO_MATCH}
    cells = frame["risks"] if "risks" in frame.columns else [""] * len(frame)
    texts, intents, risks = [], [], []
    for row, (text, intent, cell) in enumerate(zip(frame["text"], frame["intent"], cells, strict=True)):
        line = row + 2  # the header is line 1
        if not normalise_text(text):
            raise ConfigFileError(str(path), line, "empty text")
        if intent.strip() not in names:
            raise ConfigFileError(str(path), line, f"unknown intent '{intent}' (catalog {catalog.name} or 'none')")
        row_risks = frozenset(risk.strip() for risk in cell.split(";") if risk.strip())
        unknown = sorted(row_risks - set(vocabulary.risks))
        if unknown:
            raise ConfigFileError(str(path), line, f"unknown risks {unknown}")
        texts.append(text)
        intents.append(intent.strip())
        risks.append(row_risks)
    if not texts:
        raise ConfigFileError(str(path), None, "no labelled turns")
    return LabelledTurns(texts=texts, intents=intents, extra_risks=risks)


class LabelScore(BaseModel):
    label: str
    precision: float
    recall: float
    support: int


class Confusion(BaseModel):
    true: str
    predicted: str
    count: int
    example: str


class CatalogEvaluation(BaseModel):
    catalog: str
    rows: int
    with_generic: bool
    scores: list[LabelScore]
    accuracy: float
    high_risk_recall: float
    high_risk_rows: int
    high_risk_by_catalog: int
    high_risk_missed: int
    small_safe_precision: float
    small_tier_rows: int
    small_claims_lifted: int
    confusions: list[Confusion]


def true_risks(catalog: Catalog, turns: LabelledTurns) -> list[frozenset[str]]:
    declared = {intent.name: frozenset(intent.risks) for intent in catalog.intents} | {NO_MATCH: frozenset()}
    return [declared[intent] | extra for intent, extra in zip(turns.intents, turns.extra_risks, strict=True)]


def evaluate_catalog(
    index: CatalogIndex,
    turns: LabelledTurns,
    encoder: TextEncoder,
    generic: TurnClassifier | None,
    small_tier: str = SMALL_TIER,
) -> CatalogEvaluation:
    matches = index.match_texts(turns.texts, encoder)
    final = _final_classifications(turns.texts, matches, generic)
    threshold = generic.threshold if generic is not None else (lambda _risk: 1.0)
    present = [{risk for risk, p in c.risks.items() if p >= threshold(risk)} for c in final]
    truth = true_risks(index.catalog, turns)
    predicted = [match.intent_name if match else NO_MATCH for match in matches]

    risky = [row for row, risks in enumerate(truth) if risks]
    caught = [row for row in risky if truth[row] <= present[row]]
    by_catalog = [row for row in risky if (match := matches[row]) is not None and truth[row] <= set(match.risks)]
    small_claims = [row for row, match in enumerate(matches) if match is not None and match.tier == small_tier]
    small_routed = [row for row in small_claims if not final[row].high_stakes]
    safe = [row for row in small_routed if not truth[row]]

    labels = [intent.name for intent in index.catalog.intents] + [NO_MATCH]
    precision, recall, _, support = precision_recall_fscore_support(
        turns.intents, predicted, labels=labels, zero_division=0
    )
    return CatalogEvaluation(
        catalog=index.catalog.name,
        rows=len(turns.texts),
        with_generic=generic is not None,
        scores=[
            LabelScore(label=label, precision=p, recall=r, support=int(s))
            for label, p, r, s in zip(labels, precision, recall, support, strict=True)
        ],
        accuracy=float(np.mean([t == p for t, p in zip(turns.intents, predicted, strict=True)])),
        high_risk_recall=len(caught) / len(risky) if risky else float("nan"),
        high_risk_rows=len(risky),
        high_risk_by_catalog=len(by_catalog),
        high_risk_missed=len(risky) - len(caught),
        small_safe_precision=len(safe) / len(small_routed) if small_routed else float("nan"),
        small_tier_rows=len(small_routed),
        small_claims_lifted=len(small_claims) - len(small_routed),
        confusions=_confusions(turns, predicted),
    )


def _final_classifications(
    texts: list[str], matches: list[CatalogMatch | None], generic: TurnClassifier | None
) -> list[Classification]:
    """What the policy would see: the generic classification merged with the match (or the match alone)."""
    if generic is None:
        # Catalog only: nothing outside the catalog flags a risk, so an unmatched turn carries none.
        blank = Classification(
            intent="other", intent_confidence=0.0, risks={}, reasons=[], detectors=[], high_stakes=False
        )
        return [merge(blank, match, lambda _risk: 1.0) for match in matches]
    conversations = [Conversation(latest_user_text=text) for text in texts]
    classified = [
        c for start in range(0, len(texts), 64) for c in generic.classify_batch(conversations[start : start + 64])
    ]
    return [merge(c, match, generic.threshold) for c, match in zip(classified, matches, strict=True)]


def _confusions(turns: LabelledTurns, predicted: list[str]) -> list[Confusion]:
    pairs = Counter((t, p) for t, p in zip(turns.intents, predicted, strict=True) if t != p)
    first: dict[tuple[str, str], str] = {}
    for text, t, p in zip(turns.texts, turns.intents, predicted, strict=True):
        first.setdefault((t, p), text)
    return [
        Confusion(true=t, predicted=p, count=count, example=first[(t, p)])
        for (t, p), count in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    ]


def format_evaluation(report: CatalogEvaluation) -> str:
    lines = [
        f"catalog {report.catalog}: {report.rows} labelled turns",
        "",
        "intent                      precision  recall  support",
    ]
    lines += [f"{s.label:<27} {s.precision:9.3f} {s.recall:7.3f} {s.support:8d}" for s in report.scores]
    lines += [f"accuracy (catalog intent or none) {report.accuracy:.3f}", ""]
    source = "after merge with the generic classifier" if report.with_generic else "catalog only"
    lines += [
        f"high-risk recall      {report.high_risk_recall:.3f}  (of {report.high_risk_rows} turns with a true risk, "
        f"{source}; {report.high_risk_by_catalog} raised by the catalog, {report.high_risk_missed} missed)",
        f"small-safe precision  {report.small_safe_precision:.3f}  (of {report.small_tier_rows} turns sent to "
        f"'{SMALL_TIER}'; {report.small_claims_lifted} more '{SMALL_TIER}' claims lifted as high-stakes)",
        "",
    ]
    wrong = [c for c in report.confusions if c.predicted != NO_MATCH]
    missed = [c for c in report.confusions if c.predicted == NO_MATCH]
    lines.append("wrong claims (true -> claimed: count, e.g.)" if wrong else "wrong claims: none")
    lines += [f"  {c.true} -> {c.predicted}: {c.count}, e.g. {c.example!r}" for c in wrong]
    if missed:
        lines.append("left to the generic classifier: " + ", ".join(f"{c.true} {c.count}" for c in missed))
    return "\n".join(lines)


def format_fit(results: list[IntentThresholdFit]) -> str:
    lines = ["intent                      threshold        precision  recall  support  claimed"]
    for r in results:
        change = f"{r.previous:.3f}->{r.threshold:.3f}" if r.fitted else f"{r.threshold:.3f} (kept)"
        lines.append(f"{r.intent:<27} {change:<16} {r.precision:9.3f} {r.recall:7.3f} {r.support:8d} {r.claimed:8d}")
    return "\n".join(lines)


def claim_summary(truth: list[str], predicted: list[str]) -> str:
    claimed = [(t, p) for t, p in zip(truth, predicted, strict=True) if p != NO_MATCH]
    owned = [(t, p) for t, p in zip(truth, predicted, strict=True) if t != NO_MATCH]
    unowned = [(t, p) for t, p in zip(truth, predicted, strict=True) if t == NO_MATCH]
    precision = np.mean([t == p for t, p in claimed]) if claimed else float("nan")
    recall = np.mean([t == p for t, p in owned]) if owned else float("nan")
    left = np.mean([p == NO_MATCH for _, p in unowned]) if unowned else float("nan")
    return (
        f"claim precision {precision:.3f} ({len(claimed)} claims), recall {recall:.3f} ({len(owned)} catalog turns), "
        f"'none' turns left alone {left:.3f} ({len(unowned)})"
    )


def _load(path: Path, tools: CatalogTools, runtime: str | None) -> tuple[CatalogIndex, TextEncoder]:
    encoder = tools.encoder_for(runtime)
    try:
        return CatalogIndex.load(path, encoder, cache=tools.cache), encoder
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc


def _labelled(path: Path, catalog: Catalog) -> LabelledTurns:
    try:
        return load_labelled(path, catalog, CatalogVocabulary())
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("catalog")
@click.pass_context
def catalog(context: click.Context) -> None:
    """Tenant intent catalogs: check, fit thresholds on labelled turns, evaluate."""
    context.ensure_object(CatalogTools)


@catalog.command("check")
@click.option("--catalog", "catalog_path", required=True, type=_FILE)
def check_command(catalog_path: Path) -> None:
    """Validate a catalog file (no model needed); exit 1 with the line and reason when invalid."""
    try:
        loaded = load_catalog(catalog_path)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    examples = sum(len(intent.examples) for intent in loaded.catalog.intents)
    click.echo(f"valid: {loaded.version} ({len(loaded.catalog.intents)} intents, {examples} examples)")


@catalog.command("fit")
@click.option("--catalog", "catalog_path", required=True, type=_FILE)
@click.option("--data", "data_path", required=True, type=_FILE, help="CSV text,intent[,risks]; intent 'none' allowed.")
@click.option("--min-precision", default=0.9, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--min-threshold", default=0.4, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20), help="For the held-out estimate.")
@click.option("--dry-run", is_flag=True, help="Print the thresholds without writing them.")
@click.option("--runtime", type=_RUNTIME, default=None, help="Embedding runtime (default: $SWITCHBOARD_EMBEDDINGS).")
@click.pass_obj
def fit_command(
    tools: CatalogTools,
    catalog_path: Path,
    data_path: Path,
    min_precision: float,
    min_threshold: float,
    folds: int,
    dry_run: bool,
    runtime: str | None,
) -> None:
    """Tune each intent's threshold (best F1 with precision >= --min-precision) and write it into the catalog."""
    index, encoder = _load(catalog_path, tools, runtime)
    turns = _labelled(data_path, index.catalog)
    scores = index.scores(encoder.encode([normalise_text(text) for text in turns.texts]))
    settings = {"min_precision": min_precision, "min_threshold": min_threshold}
    results = fit_thresholds(index.catalog, scores, turns.intents, **settings)
    click.echo(format_fit(results))
    held_out = cross_validated_claims(
        index.catalog, scores, turns.intents, folds=folds, min_precision=min_precision, min_threshold=min_threshold
    )
    click.echo(f"{folds}-fold held-out: {claim_summary(turns.intents, held_out)}")
    if dry_run:
        return
    kept_comments = write_thresholds(catalog_path, {r.intent: r.threshold for r in results if r.fitted})
    note = "" if kept_comments else " (rewritten with yaml.safe_dump: comments were lost)"
    click.echo(f"wrote {sum(r.fitted for r in results)} thresholds to {catalog_path}{note}")


@catalog.command("eval")
@click.option("--catalog", "catalog_path", required=True, type=_FILE)
@click.option("--data", "data_path", required=True, type=_FILE, help="CSV text,intent[,risks]; intent 'none' allowed.")
@click.option("--model", "model_path", type=_FILE, default=None, help="Generic classifier (default: the shipped one).")
@click.option("--catalog-only", is_flag=True, help="Leave the generic classifier out of the routing figures.")
@click.option("--runtime", type=_RUNTIME, default=None, help="Embedding runtime (default: $SWITCHBOARD_EMBEDDINGS).")
@click.pass_obj
def eval_command(
    tools: CatalogTools,
    catalog_path: Path,
    data_path: Path,
    model_path: Path | None,
    catalog_only: bool,
    runtime: str | None,
) -> None:
    """Per-intent precision/recall, high-risk recall, small-safe precision and the confusions of a catalog."""
    index, encoder = _load(catalog_path, tools, runtime)
    turns = _labelled(data_path, index.catalog)
    generic = None if catalog_only else TurnClassifier.load(model_path, encoder=encoder)
    click.echo(format_evaluation(evaluate_catalog(index, turns, encoder, generic)))
