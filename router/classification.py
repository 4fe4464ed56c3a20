"""The gateway's side of classification: messages in, a routing-ready TurnClassification out, off the loop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from classifiers import BatchingClassifier, Conversation, TurnClassifier
from router.facts import TurnClassification
from router.policy.store import Vocabulary

logger = logging.getLogger(__name__)


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
        return cls(classifier, BatchingClassifier(classifier))

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(intents=frozenset(self._classifier.intents), risks=frozenset(self._classifier.risks))

    async def classify(self, messages: list[dict[str, Any]], has_tools: bool) -> TurnClassification:
        result = await self._batching.classify(Conversation.from_messages(messages, has_tools=has_tools))
        return TurnClassification(
            intent=result.intent,
            intent_confidence=result.intent_confidence,
            risks=dict(result.risks),
            reasons=tuple(result.reasons),
        )

    async def aclose(self) -> None:
        await self._batching.aclose()
