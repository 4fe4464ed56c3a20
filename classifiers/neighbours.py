"""Nearest labelled training turns: quoted as the human-readable reason for a prediction, and voting on stakes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

UNKNOWN_STAKES = -1  # a training turn the contract calls ``standard``: it has no say in the stakes vote


class Neighbour(BaseModel):
    text: str
    intent: str
    similarity: float

    @property
    def reason(self) -> str:
        quoted = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return f"nearest:{quoted!r} ({self.intent}, {self.similarity:.2f})"


class ExampleIndex:
    """Exhaustive cosine search over normalised training embeddings, stored as float16 to keep models small.

    ``stakes`` holds each example's contract label (1 high-stakes, 0 small-safe, ``UNKNOWN_STAKES``); an index
    without them (a model trained before the vote existed) votes nothing.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        texts: Sequence[str],
        intents: Sequence[str],
        stakes: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if not len(vectors) == len(texts) == len(intents):
            raise ValueError("vectors, texts and intents must have the same length")
        if stakes is not None and len(stakes) != len(texts):
            raise ValueError("stakes must have one label per example")
        self.vectors = np.asarray(vectors, dtype=np.float16)
        self.texts = list(texts)
        self.intents = list(intents)
        self.stakes = None if stakes is None else np.asarray(stakes, dtype=np.int8)
        self._search_matrix: np.ndarray | None = None

    def __getstate__(self) -> dict[str, object]:
        # The float32 search copy is rebuilt on first use; only the compact float16 vectors are pickled.
        return {**self.__dict__, "_search_matrix": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        # Models pickled before the stakes vote (``classifiers.convert`` reads them) have no labels.
        self.__dict__.update({"stakes": None, **state})

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        """Cosine similarity of each (normalised) query to every example: one row per query."""
        if self._search_matrix is None:
            self._search_matrix = self.vectors.astype(np.float32).T
        return np.asarray(queries, dtype=np.float32) @ self._search_matrix

    def nearest(self, similarities: np.ndarray, k: int = 2) -> list[list[Neighbour]]:
        """The ``k`` most similar examples of each row of :meth:`similarities`, most similar first."""
        count = min(k, len(self.texts))
        found = []
        for row in similarities:
            top = np.argpartition(-row, count - 1)[:count] if count else np.empty(0, dtype=np.intp)
            ordered = sorted(top, key=lambda index: -row[index])
            found.append(
                [Neighbour(text=self.texts[i], intent=self.intents[i], similarity=float(row[i])) for i in ordered]
            )
        return found

    def stakes_vote(self, similarities: np.ndarray, k: int) -> np.ndarray | None:
        """Per row of :meth:`similarities`, the similarity-weighted share of high-stakes turns among the ``k``
        most similar examples with a contract label; ``None`` when the index has no labels.

        A linear head draws one boundary through the whole embedding space; the vote asks what turns phrased
        like this one were, which holds better on sources whose wording training never saw.
        """
        if self.stakes is None:
            return None
        labelled = np.flatnonzero(self.stakes != UNKNOWN_STAKES)
        count = min(k, len(labelled))
        if count == 0:
            return None
        candidates = similarities[:, labelled]
        top = np.argpartition(-candidates, count - 1, axis=1)[:, :count]
        weights = np.take_along_axis(candidates, top, axis=1).clip(min=0.0)
        labels = self.stakes[labelled][top].astype(np.float64)
        total = weights.sum(axis=1)
        return np.where(total > 0, (weights * labels).sum(axis=1) / np.maximum(total, 1e-12), labels.mean(axis=1))


def blend_stakes(head: np.ndarray, vote: np.ndarray | None, weight: float) -> np.ndarray:
    """Learned stakes: ``(1 - weight) * head + weight * vote``, or the head alone without a vote or weight."""
    if vote is None or weight <= 0:
        return head
    return (1.0 - weight) * head + weight * vote
