"""Intent head: a calibrated logistic regression over turn features, optionally trained on finer labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from classifiers.linear import CalibratedLinear, IntentHead, KeepsLinearCopy

MAX_CALIBRATION_FOLDS = 5


class IntentClassifier(KeepsLinearCopy, ClassifierMixin, BaseEstimator):
    """One intent per turn with calibrated probabilities.

    With ``fine_labels`` passed to ``fit`` the regression learns those (for example intent within a domain,
    which keeps apart turns that share an intent but read very differently) and the probabilities of the fine
    labels of each intent are summed back into it. Fine labels rarer than the calibration folds fold back into
    their intent.
    """

    _fitted_attribute = "model_"

    def __init__(self, C: float = 4.0, class_weight: str | None = "balanced") -> None:
        self.C = C
        self.class_weight = class_weight

    def fit(self, X: np.ndarray, y: Sequence[str], fine_labels: Sequence[str] | None = None) -> IntentClassifier:
        coarse = np.asarray(y, dtype=object)
        self.classes_ = np.unique(coarse)
        targets = coarse if fine_labels is None else _merge_rare(np.asarray(fine_labels, dtype=object), coarse)
        folds = min(MAX_CALIBRATION_FOLDS, int(min(np.unique(targets, return_counts=True)[1])))
        if folds < 2:
            raise ValueError("every intent needs at least two training examples")
        regression = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        self.model_ = CalibratedClassifierCV(regression, method="sigmoid", cv=folds, ensemble=False).fit(X, targets)
        fine_to_coarse = dict(zip(targets, coarse, strict=True))
        index = {label: position for position, label in enumerate(self.classes_)}
        self.fine_to_coarse_ = np.zeros((len(self.model_.classes_), len(self.classes_)), dtype=np.float64)
        for row, fine in enumerate(self.model_.classes_):
            self.fine_to_coarse_[row, index[fine_to_coarse[fine]]] = 1.0
        self.linear_ = self._build_linear()
        return self

    def _build_linear(self) -> CalibratedLinear:
        return CalibratedLinear.from_calibrated(self.model_)

    def head(self) -> IntentHead:
        """The fitted head as plain arrays: what a saved model stores and the gateway runs."""
        check_is_fitted(self, "linear_")
        return IntentHead(self.classes_, self.linear_, self.fine_to_coarse_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.head().predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _merge_rare(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    labels, counts = np.unique(fine, return_counts=True)
    rare = set(labels[counts < MAX_CALIBRATION_FOLDS])
    return np.asarray([c if f in rare else f for f, c in zip(fine, coarse, strict=True)], dtype=object)
