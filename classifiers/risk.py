"""Risk head: one calibrated binary logistic regression per risk (one-vs-rest, multi-label)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from classifiers.linear import CalibratedLinear, KeepsLinearCopy, ScoreHead

MAX_CALIBRATION_FOLDS = 5


class RiskClassifier(KeepsLinearCopy, ClassifierMixin, BaseEstimator):
    """Independent probability per risk; ``Y`` is a 0/1 matrix with one column per name in ``risk_names``.

    A risk with fewer than two positive examples cannot be calibrated; its head predicts the training prior
    (the deterministic detectors still cover it).
    """

    _fitted_attribute = "heads_"

    def __init__(self, C: float = 4.0, class_weight: str | None = "balanced") -> None:
        self.C = C
        self.class_weight = class_weight

    def fit(self, X: np.ndarray, Y: np.ndarray, risk_names: Sequence[str]) -> RiskClassifier:
        labels = np.asarray(Y, dtype=np.int64)
        if labels.shape != (X.shape[0], len(risk_names)):
            raise ValueError(f"Y must have shape {(X.shape[0], len(risk_names))}, got {labels.shape}")
        self.classes_ = np.asarray(list(risk_names), dtype=object)
        self.heads_ = [self._fit_head(X, labels[:, column]) for column in range(labels.shape[1])]
        self.linear_ = self._build_linear()
        return self

    def _build_linear(self) -> CalibratedLinear:
        return _stacked_heads(self.heads_)

    def _fit_head(self, X: np.ndarray, y: np.ndarray) -> CalibratedClassifierCV | DummyClassifier:
        folds = min(MAX_CALIBRATION_FOLDS, int(y.sum()), int(len(y) - y.sum()))
        if folds < 2:
            return DummyClassifier(strategy="prior").fit(X, y)
        regression = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        return CalibratedClassifierCV(regression, method="sigmoid", cv=folds, ensemble=False).fit(X, y)

    def head(self) -> ScoreHead:
        """The fitted heads as plain arrays: what a saved model stores and the gateway runs."""
        check_is_fitted(self, "linear_")
        return ScoreHead(self.classes_, self.linear_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of each risk, shape (n_samples, n_risks); the heads' own numbers, computed in one go."""
        return self.head().predict_proba(X)

    def predict(self, X: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
        return (self.predict_proba(X) >= thresholds).astype(np.int64)


def _stacked_heads(heads: list[CalibratedClassifierCV | DummyClassifier]) -> CalibratedLinear:
    parts = []
    for head in heads:
        if isinstance(head, CalibratedClassifierCV):
            parts.append(CalibratedLinear.from_calibrated(head))
        else:
            classes = list(head.classes_)
            prior = float(head.class_prior_[classes.index(1)]) if 1 in classes else 0.0
            parts.append(CalibratedLinear.constant(prior, head.n_features_in_))
    return CalibratedLinear.stack(parts)
