"""Nearest labelled training turns, quoted as the human-readable reason for a prediction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class Neighbour(BaseModel):
    text: str
    intent: str
    similarity: float

    @property
    def reason(self) -> str:
        quoted = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return f"nearest:{quoted!r} ({self.intent}, {self.similarity:.2f})"


class ExampleIndex:
    """Exhaustive cosine search over normalised training embeddings, stored as float16 to keep models small."""

    def __init__(self, vectors: np.ndarray, texts: Sequence[str], intents: Sequence[str]) -> None:
        if not len(vectors) == len(texts) == len(intents):
            raise ValueError("vectors, texts and intents must have the same length")
        self.vectors = np.asarray(vectors, dtype=np.float16)
        self.texts = list(texts)
        self.intents = list(intents)
        self._search_matrix: np.ndarray | None = None

    def __getstate__(self) -> dict[str, object]:
        # The float32 search copy is rebuilt on first use; only the compact float16 vectors are pickled.
        return {**self.__dict__, "_search_matrix": None}

    def nearest(self, queries: np.ndarray, k: int = 2) -> list[list[Neighbour]]:
        if self._search_matrix is None:
            self._search_matrix = self.vectors.astype(np.float32).T
        similarities = np.asarray(queries, dtype=np.float32) @ self._search_matrix
        count = min(k, len(self.texts))
        found = []
        for row in similarities:
            top = np.argpartition(-row, count - 1)[:count] if count else np.empty(0, dtype=np.intp)
            ordered = sorted(top, key=lambda index: -row[index])
            found.append(
                [Neighbour(text=self.texts[i], intent=self.intents[i], similarity=float(row[i])) for i in ordered]
            )
        return found
