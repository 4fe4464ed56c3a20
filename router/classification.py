"""The gateway's side of classification: messages in, a routing-ready TurnClassification out, off the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from classifiers import BatchingClassifier, Conversation, TurnClassifier
from classifiers.catalog import CatalogIndex, CatalogVocabulary, merge
from router.facts import TurnClassification
from router.policy.store import Catalog, Vocabulary

logger = logging.getLogger(__name__)


def vocabulary_of(classifier: TurnClassifier) -> Vocabulary:
    return Vocabulary(intents=frozenset(classifier.intents), risks=frozenset(classifier.risks))


def catalog_loader(classifier: TurnClassifier, tiers: Iterable[str]) -> Callable[[Path], Catalog]:
    """Loads tenant catalogs with this classifier's encoder and labels (example embeddings cached on disk)."""
    vocabulary = CatalogVocabulary(intents=classifier.intents, risks=classifier.risks, tiers=list(tiers))

    def load(path: Path) -> Catalog:
        return CatalogIndex.load(path, classifier.encoder, vocabulary=vocabulary)

    return load


class GatewayClassifier:
    """Adapts the classifiers package to the gateway: micro-batched inference in its own thread, cached."""

    def __init__(self, classifier: TurnClassifier, batching: BatchingClassifier) -> None:
        self._classifier = classifier
        self._batching = batching

    @classmethod
    async def load(cls, model_path: Path | None) -> GatewayClassifier:
        """Load the model (seconds: embeddings runtime and heads) without blocking the loop, then warm it up."""
        classifier = await asyncio.to_thread(TurnClassifier.load, model_path)
        await asyncio.to_thread(classifier.classify, Conversation(latest_user_text="hello, are you there?"))
        logger.info("classifier loaded: intents %s, risks %s", classifier.intents, classifier.risks)
        # No batching wait: ONNX encodes one text per run anyway, and turns that arrive while the worker is busy
        # are batched regardless; waiting would only add its delay to every lone turn.
        return cls(classifier, BatchingClassifier(classifier, max_wait_ms=0.0))

    @property
    def vocabulary(self) -> Vocabulary:
        return vocabulary_of(self._classifier)

    def catalog_loader(self, tiers: Iterable[str]) -> Callable[[Path], Catalog]:
        return catalog_loader(self._classifier, tiers)

    async def classify(
        self, messages: list[dict[str, Any]], has_tools: bool, catalog: Catalog | None = None
    ) -> TurnClassification:
        result = await self._batching.classify(Conversation.from_messages(messages, has_tools=has_tools))
        match = None
        if isinstance(catalog, CatalogIndex) and result.embedding is not None:
            # The generic result is cached per text; the tenant's catalog is a vectorised dot product on top.
            match = catalog.match_one(result.embedding)
            result = merge(result, match, self._classifier.threshold)
        return TurnClassification.of(result, match)

    async def aclose(self) -> None:
        await self._batching.aclose()
