"""Turn classification for Switchboard: intent and risk of the latest user turn of a chat."""

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
