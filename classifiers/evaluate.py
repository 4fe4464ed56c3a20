"""Evaluation back end for ``switchboard eval``: per-label scores and the two routing-safety numbers.

* high-risk recall: of the turns that are high-stakes under the routing contract (``classifiers.contract``),
  the share classified high-stakes. A miss sends a high-stakes turn to a cheap model.
* small-safe precision: of the turns the default policy sends to the small tier (not high-stakes and intent in
  ``SMALL_TIER_INTENTS``), the share that are not high-stakes under the contract.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from classifiers.contract import HIGH_STAKES, written_contract
from classifiers.dataset import conversations, risk_sets
from classifiers.pipeline import TurnClassifier
from classifiers.schemas import Classification

SMALL_TIER_INTENTS = frozenset({"faq", "smalltalk", "data_collection"})


class LabelScore(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class EvaluationReport(BaseModel):
    rows: int
    intent_scores: list[LabelScore]
    intent_macro_f1: float
    intent_accuracy: float
    confusion_labels: list[str]
    confusion: list[list[int]]
    risk_scores: list[LabelScore]
    high_risk_recall: float
    high_risk_rows: int
    small_safe_precision: float
    small_tier_rows: int

    def headline(self) -> dict[str, float]:
        return {
            "intent_macro_f1": self.intent_macro_f1,
            "intent_accuracy": self.intent_accuracy,
            "high_risk_recall": self.high_risk_recall,
            "small_safe_precision": self.small_safe_precision,
        }


def evaluate(classifier: TurnClassifier, frame: pd.DataFrame, batch_size: int = 64) -> EvaluationReport:
    turns = conversations(frame)
    predictions: list[Classification] = []
    for start in range(0, len(turns), batch_size):
        predictions.extend(classifier.classify_batch(turns[start : start + batch_size]))
    return score(frame["intent"].tolist(), risk_sets(frame), predictions, classifier)


def score(
    true_intents: list[str],
    true_risks: list[set[str]],
    predictions: list[Classification],
    classifier: TurnClassifier,
) -> EvaluationReport:
    predicted_intents = [prediction.intent for prediction in predictions]
    intent_labels = sorted(set(true_intents) | set(predicted_intents))
    risk_labels = sorted(set().union(*true_risks, *(p.risks for p in predictions)))
    predicted_risks = [
        {risk for risk, probability in p.risks.items() if probability >= classifier.threshold(risk)}
        for p in predictions
    ]
    risky = [
        written_contract(intent, risks) == HIGH_STAKES for intent, risks in zip(true_intents, true_risks, strict=True)
    ]
    caught = [p.high_stakes for p, is_risky in zip(predictions, risky, strict=True) if is_risky]
    small_tier = [
        not is_risky
        for p, is_risky in zip(predictions, risky, strict=True)
        if not p.high_stakes and p.intent in SMALL_TIER_INTENTS
    ]
    return EvaluationReport(
        rows=len(predictions),
        intent_scores=_label_scores(true_intents, predicted_intents, intent_labels),
        intent_macro_f1=float(f1_score(true_intents, predicted_intents, labels=intent_labels, average="macro")),
        intent_accuracy=float(np.mean([t == p for t, p in zip(true_intents, predicted_intents, strict=True)])),
        confusion_labels=intent_labels,
        confusion=confusion_matrix(true_intents, predicted_intents, labels=intent_labels).tolist(),
        risk_scores=[_binary_score(risk, true_risks, predicted_risks) for risk in risk_labels],
        high_risk_recall=float(np.mean(caught)) if caught else float("nan"),
        high_risk_rows=len(caught),
        small_safe_precision=float(np.mean(small_tier)) if small_tier else float("nan"),
        small_tier_rows=len(small_tier),
    )


def _label_scores(truth: list[str], predicted: list[str], labels: list[str]) -> list[LabelScore]:
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    return [
        LabelScore(label=label, precision=p, recall=r, f1=f, support=int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]


def _binary_score(risk: str, truth: Iterable[set[str]], predicted: Iterable[set[str]]) -> LabelScore:
    true_flags = [risk in risks for risks in truth]
    predicted_flags = [risk in risks for risks in predicted]
    precision, recall, f1, _ = precision_recall_fscore_support(
        true_flags, predicted_flags, average="binary", zero_division=0
    )
    return LabelScore(label=risk, precision=precision, recall=recall, f1=f1, support=sum(true_flags))


def format_report(report: EvaluationReport) -> str:
    lines = [f"rows: {report.rows}", "", "intent            precision  recall     f1  support"]
    lines += [_score_line(s) for s in report.intent_scores]
    lines += [f"macro-F1 {report.intent_macro_f1:.3f}   accuracy {report.intent_accuracy:.3f}", ""]
    width = max(len(label) for label in report.confusion_labels)
    short = [label[:6] for label in report.confusion_labels]
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * (width + 1) + " ".join(f"{label:>6}" for label in short))
    for label, row in zip(report.confusion_labels, report.confusion, strict=True):
        lines.append(f"{label:<{width}} " + " ".join(f"{count:>6}" for count in row))
    lines += ["", "risk              precision  recall     f1  support"]
    lines += [_score_line(s) for s in report.risk_scores]
    lines += [
        "",
        f"high-risk recall      {report.high_risk_recall:.3f}  (of {report.high_risk_rows} high-stakes turns)",
        f"small-safe precision  {report.small_safe_precision:.3f}  (of {report.small_tier_rows} turns routed small)",
    ]
    return "\n".join(lines)


def _score_line(score: LabelScore) -> str:
    return f"{score.label:<17} {score.precision:9.3f} {score.recall:7.3f} {score.f1:6.3f} {score.support:8d}"
