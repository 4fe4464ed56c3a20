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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifiers.embeddings import CachingEncoder
from classifiers.schemas import Classification, Conversation

if TYPE_CHECKING:
    from classifiers import TurnClassifier


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
