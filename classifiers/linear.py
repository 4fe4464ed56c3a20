"""Sigmoid-calibrated linear scores in plain numpy.

scikit-learn's ``predict_proba`` on a ``CalibratedClassifierCV`` re-validates its input dozens of times per call,
which cost ~5 ms per turn, more than the encoder. The fitted weights and calibration parameters are copied out
once after ``fit``; tests check the result equals scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.special import expit, logit
from sklearn.calibration import CalibratedClassifierCV

from classifiers.features import SplitFeatures


@dataclass(frozen=True)
class CalibratedLinear:
    """``expit(-(slope * (X @ coef.T + intercept) + offset))``: one calibrated one-vs-rest score per row of coef."""

    coef: np.ndarray
    intercept: np.ndarray
    slope: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_calibrated(cls, model: CalibratedClassifierCV) -> CalibratedLinear:
        """Copy a fitted ``CalibratedClassifierCV(LogisticRegression, method="sigmoid", ensemble=False)``."""
        (calibrated,) = model.calibrated_classifiers_
        estimator = calibrated.estimator
        if model.method != "sigmoid" or not np.array_equal(estimator.classes_, model.classes_):
            raise ValueError("only sigmoid calibration of an estimator that saw every class is supported")
        return cls(
            coef=np.asarray(estimator.coef_, dtype=np.float64),
            intercept=np.asarray(estimator.intercept_, dtype=np.float64),
            slope=np.asarray([calibrator.a_ for calibrator in calibrated.calibrators], dtype=np.float64),
            offset=np.asarray([calibrator.b_ for calibrator in calibrated.calibrators], dtype=np.float64),
        )

    @classmethod
    def constant(cls, probability: float, n_features: int) -> CalibratedLinear:
        """A score that ignores its input, e.g. the prior of a label too rare to learn."""
        clipped = float(np.clip(probability, 1e-6, 1 - 1e-6))
        return cls(np.zeros((1, n_features)), np.zeros(1), np.zeros(1), np.asarray([-logit(clipped)]))

    @classmethod
    def stack(cls, parts: list[CalibratedLinear]) -> CalibratedLinear:
        return cls(
            coef=np.vstack([part.coef for part in parts]),
            intercept=np.concatenate([part.intercept for part in parts]),
            slope=np.concatenate([part.slope for part in parts]),
            offset=np.concatenate([part.offset for part in parts]),
        )

    def scores(self, X: np.ndarray | sparse.spmatrix | SplitFeatures) -> np.ndarray:
        decision = np.asarray(X @ self.coef.T) + self.intercept
        return expit(-(self.slope * decision + self.offset))


class KeepsLinearCopy:
    """For estimators holding a numpy copy of their fitted heads in ``linear_``: rebuilt on load, never pickled
    (pickling it too would double the model file). Subclasses name the fitted attribute the copy derives from and
    how to build it."""

    _fitted_attribute: str

    def _build_linear(self) -> CalibratedLinear:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, object]:
        state = dict(super().__getstate__())  # type: ignore[misc, call-overload]
        state.pop("linear_", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        if hasattr(self, self._fitted_attribute):
            self.linear_ = self._build_linear()
