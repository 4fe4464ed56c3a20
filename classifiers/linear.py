"""Sigmoid-calibrated linear scores in plain numpy: what the gateway runs, with no scikit-learn or scipy.

scikit-learn's ``predict_proba`` on a ``CalibratedClassifierCV`` re-validates its input dozens of times per call,
which cost ~5 ms per turn, more than the encoder. The fitted weights and calibration parameters are copied out
once after ``fit`` (``from_calibrated`` reads the fitted attributes, so this module never imports scikit-learn);
the serving heads below hold only these arrays and are what a saved model stores. Tests check the scores equal
scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass(frozen=True)
class CalibratedLinear:
    """``expit(-(slope * (X @ coef.T + intercept) + offset))``: one calibrated one-vs-rest score per row of coef."""

    coef: np.ndarray
    intercept: np.ndarray
    slope: np.ndarray
    offset: np.ndarray
    _weights: np.ndarray = field(init=False, repr=False, compare=False)

    @classmethod
    def from_calibrated(cls, model: Any) -> CalibratedLinear:
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

    def __post_init__(self) -> None:
        # ``X @ coef.T`` on a transposed view is several times slower than on a contiguous matrix.
        object.__setattr__(self, "_weights", np.ascontiguousarray(self.coef.T))

    def scores(self, X: Any) -> np.ndarray:
        decision = np.asarray(X @ self._weights) + self.intercept
        return expit(-(self.slope * decision + self.offset))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.coef": self.coef,
            f"{prefix}.intercept": self.intercept,
            f"{prefix}.slope": self.slope,
            f"{prefix}.offset": self.offset,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> CalibratedLinear:
        return cls(*(np.asarray(arrays[f"{prefix}.{name}"], dtype=np.float64) for name in _LINEAR_FIELDS))


_LINEAR_FIELDS = ("coef", "intercept", "slope", "offset")


class Head(Protocol):
    """What the classifier needs of a head; the training estimators (``classifiers.intent``/``risk``) qualify."""

    @property
    def classes_(self) -> np.ndarray: ...

    @property
    def linear_(self) -> CalibratedLinear: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class IntentHead:
    """One intent per turn: calibrated one-vs-rest scores of the fine labels, normalised, summed into intents."""

    classes_: np.ndarray
    linear_: CalibratedLinear
    fine_to_coarse_: np.ndarray

    def predict_proba(self, X: Any) -> np.ndarray:
        """Same numbers as scikit-learn's ``predict_proba(X) @ fine_to_coarse_``, without its overhead."""
        scores = self.linear_.scores(X)
        totals = scores.sum(axis=1, keepdims=True)
        uniform = np.full_like(scores, 1.0 / scores.shape[1])
        fine = np.divide(scores, totals, out=uniform, where=totals != 0)
        return fine @ self.fine_to_coarse_


@dataclass(frozen=True)
class ScoreHead:
    """Independent calibrated probability per label (the risk head, the stakes head)."""

    classes_: np.ndarray
    linear_: CalibratedLinear

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.linear_.scores(X)


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
