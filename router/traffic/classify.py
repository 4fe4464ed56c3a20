"""The shipped turn classifier, set up for replaying large logs: each text embedded once, batches in parallel.

A replay classifies tens of thousands of conversations, and the same texts come back again and again: the agent's
questions ("can I have your date of birth?") are the context of many turns, and short answers repeat. The ONNX
encoder embeds every text in its own run, so a text's vector does not depend on the batch it came in, and a cache
of vectors by text changes no classification while skipping most of the encoder's work.

``ShippedClassifier`` pickles to its model path alone: each worker process of a parallel replay loads the model
once (see ``_load``), on its first batch.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from classifiers.schemas import Classification, Conversation

if TYPE_CHECKING:
    from classifiers import TurnClassifier
    from classifiers.embeddings import TextEncoder

DEFAULT_CACHED_TEXTS = 200_000  # 384 float32s each: about 300 MB at most


class CachingEncoder:
    """A ``TextEncoder`` that remembers the vector of each text it encoded (least recently used out first)."""

    def __init__(self, encoder: TextEncoder, max_texts: int = DEFAULT_CACHED_TEXTS) -> None:
        self._encoder = encoder
        self.encoder_id = encoder.encoder_id
        self.runtime = encoder.runtime
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max_texts = max_texts
        self.encoded = 0
        self.reused = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            for text, vector in zip(missing, self._encoder.encode(missing), strict=True):
                self._vectors[text] = vector
            self.encoded += len(missing)
        self.reused += len(texts) - len(missing)
        rows = []
        for text in texts:
            self._vectors.move_to_end(text)
            rows.append(self._vectors[text])
        while len(self._vectors) > self._max_texts:
            self._vectors.popitem(last=False)
        return np.vstack(rows) if rows else np.empty((0, 0), dtype=np.float32)


@functools.cache
def _load(model_path: Path | None) -> TurnClassifier:
    """The classifier of this process (one per model): loading takes seconds, so each worker does it once."""
    from classifiers import TurnClassifier
    from classifiers.embeddings import load_encoder

    return TurnClassifier.load(model_path, encoder=CachingEncoder(load_encoder()))


def classify_in_worker(classifier: Any, batch: Sequence[Conversation]) -> list[Classification]:
    """A replay worker's task; it lives here so that a worker process imports no more than it needs."""
    return classifier.classify_batch(batch)


class ShippedClassifier:
    """``classifiers.TurnClassifier`` (the shipped model unless ``model_path``), loaded on first use."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = model_path

    def cache_key(self, conversation: Conversation) -> tuple[str, ...]:
        from classifiers import TurnClassifier

        return TurnClassifier.cache_key(conversation)

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]:
        return _load(self.model_path).classify_batch(conversations)
