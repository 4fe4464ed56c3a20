"""Turn classification for Switchboard: intent and risk of the latest user turn of a chat.

    classifier = TurnClassifier.load()                      # the shipped model, int8 ONNX encoder
    batching = BatchingClassifier(classifier)               # in the gateway: async, micro-batched, cached
    result = await batching.classify(Conversation.from_messages(request_messages, has_tools=bool(tools)))
    result.intent, result.intent_confidence, result.risks, result.high_stakes, result.reasons
    ...
    await batching.aclose()

``SWITCHBOARD_EMBEDDINGS=onnx|torch`` picks the encoder runtime, ``SWITCHBOARD_EMBEDDING_THREADS`` its
threads (default 1), ``SWITCHBOARD_CACHE_DIR`` where tenant catalogs' example embeddings are cached.
"""

from classifiers.batching import BatchingClassifier
from classifiers.pipeline import EncoderMismatchError, TurnClassifier, TurnModel
from classifiers.schemas import Classification, Conversation

__all__ = [
    "BatchingClassifier",
    "Classification",
    "Conversation",
    "EncoderMismatchError",
    "TurnClassifier",
    "TurnModel",
]
