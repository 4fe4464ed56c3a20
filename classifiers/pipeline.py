"""The turn classifier: embeddings + deterministic detectors + learned intent and risk heads.

A trained ``TurnModel`` (heads, training metadata and the labelled examples quoted as reasons) is shipped
prebuilt in ``classifiers/models/default.joblib`` rather than trained when the gateway starts: routing is then
deterministic across replicas and restarts, start-up costs no training time, and the model that was evaluated
is the model that runs. The embedding runtime is never pickled; it is rebuilt at load and must report the
encoder id the model was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from pydantic import BaseModel, Field
from sklearn.feature_extraction.text import TfidfVectorizer
from threadpoolctl import ThreadpoolController

from classifiers.detectors import detect
from classifiers.embeddings import EncoderRuntime, TextEncoder, load_encoder
from classifiers.features import (
    FeatureScheme,
    SplitFeatures,
    context_tail,
    embed_turns,
    turn_features,
    with_keywords,
)
from classifiers.intent import IntentClassifier
from classifiers.lexicon import RiskLexicon
from classifiers.neighbours import ExampleIndex
from classifiers.risk import RiskClassifier
from classifiers.schemas import Classification, Conversation

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.joblib"
DEFAULT_RISK_THRESHOLD = 0.5


def single_blas_thread(controller: ThreadpoolController | None = None) -> Any:
    """Context manager limiting BLAS libraries to one thread (about 10 µs with a reused controller)."""
    return (controller or ThreadpoolController()).limit(limits=1, user_api="blas")


class EncoderMismatchError(RuntimeError):
    """The model's heads were trained on another encoder's vectors and would be meaningless."""


class ModelMetadata(BaseModel):
    encoder_id: str
    trained_with_runtime: EncoderRuntime
    feature_scheme: FeatureScheme
    intents: list[str]
    risks: list[str]
    training_rows: int
    data_sha256: str
    seed: int
    test_size: float
    settings: dict[str, str | float | int | bool] = Field(default_factory=dict)
    held_out_metrics: dict[str, float] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    trained_at: str


@dataclass
class TurnModel:
    """Everything learned from the labelled turns; what ``train`` writes and ``TurnClassifier.load`` reads."""

    metadata: ModelMetadata
    intent_head: IntentClassifier
    risk_head: RiskClassifier
    examples: ExampleIndex
    # Character n-grams of the user turn, appended to the embeddings with a per-head weight: they carry keywords
    # ("Karte", "factures", "Passwort") of languages the English encoder reads poorly.
    lexical: TfidfVectorizer | None = None
    intent_lexical_weight: float = 1.0
    risk_lexical_weight: float = 0.5
    # Multilingual risk-keyword indicators appended to the embedding features of both heads.
    keywords: RiskLexicon | None = None
    keyword_weight: float = 0.0

    def save(self, path: str | Path) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, target, compress=3)

    @classmethod
    def load(cls, path: str | Path) -> TurnModel:
        model = joblib.load(Path(path))
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a TurnModel")
        return model


class TurnClassifier:
    """Classifies conversations; thread-compatible but not thread-safe (use one worker, see ``batching``)."""

    def __init__(
        self,
        model: TurnModel,
        encoder: TextEncoder,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = DEFAULT_RISK_THRESHOLD,
        neighbours: int = 2,
    ) -> None:
        if encoder.encoder_id != model.metadata.encoder_id:
            raise EncoderMismatchError(
                f"model was trained with {model.metadata.encoder_id}, the encoder is {encoder.encoder_id}"
            )
        self.model = model
        self.encoder = encoder
        self.thresholds = dict(thresholds or {})
        self.default_threshold = default_threshold
        self.neighbours = neighbours
        self._thread_pools = ThreadpoolController()

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        runtime: EncoderRuntime | str | None = None,
        encoder: TextEncoder | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> TurnClassifier:
        """Load a trained model (``None``: the shipped default) and build its encoder."""
        model = TurnModel.load(path or DEFAULT_MODEL_PATH)
        return cls(model, encoder or load_encoder(runtime), thresholds=thresholds)

    @property
    def intents(self) -> list[str]:
        return list(self.model.metadata.intents)

    @property
    def risks(self) -> list[str]:
        return list(self.model.metadata.risks)

    def threshold(self, risk: str) -> float:
        return self.thresholds.get(risk, self.default_threshold)

    @staticmethod
    def cache_key(conversation: Conversation) -> tuple[str, str]:
        """Everything the classification depends on; equal keys give equal classifications."""
        normalised = conversation.normalised()
        return normalised.latest_user_text, context_tail(normalised.previous_assistant_text)

    def classify(self, conversation: Conversation) -> Classification:
        return self.classify_batch([conversation])[0]

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]:
        if not conversations:
            return []
        # One BLAS thread: the heads' matrices are small, and on a busy 2-core box OpenBLAS worker threads
        # spinning for a core cost far more than they save (and would take the event loop's core).
        # scikit-learn's input validation costs more than the TF-IDF transform it guards: our inputs are ours.
        with (
            single_blas_thread(self._thread_pools),
            sklearn.config_context(assume_finite=True, skip_parameter_validation=True),
        ):
            return self._classify_batch(conversations)

    def _classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]:
        turns = [conversation.normalised() for conversation in conversations]
        user, context = embed_turns(self.encoder, turns)
        texts = [turn.latest_user_text for turn in turns]
        features = with_keywords(
            turn_features(user, context, self.model.metadata.feature_scheme),
            texts,
            self.model.keywords,
            self.model.keyword_weight,
        )
        lexical = self.model.lexical.transform(texts) if self.model.lexical is not None else None
        intent_features = SplitFeatures(features, lexical, self.model.intent_lexical_weight)
        risk_features = SplitFeatures(features, lexical, self.model.risk_lexical_weight)
        intent_probabilities = self.model.intent_head.predict_proba(intent_features)
        risk_probabilities = self.model.risk_head.predict_proba(risk_features)
        nearest = self.model.examples.nearest(user, self.neighbours)
        intents = self.model.intent_head.classes_
        return [
            self._assemble(turn, intents, intent_row, risk_row, neighbours).with_embedding(vector)
            for turn, intent_row, risk_row, neighbours, vector in zip(
                turns, intent_probabilities, risk_probabilities, nearest, user, strict=True
            )
        ]

    def _assemble(
        self,
        turn: Conversation,
        intents: np.ndarray,
        intent_row: np.ndarray,
        risk_row: np.ndarray,
        neighbours: list,
    ) -> Classification:
        hits = detect(turn.latest_user_text, context_tail(turn.previous_assistant_text))
        risks = {str(name): float(probability) for name, probability in zip(self.risks, risk_row, strict=True)}
        for hit in hits:
            for risk in hit.risks:
                risks[risk] = 1.0
        best = int(np.argmax(intent_row))
        return Classification(
            intent=str(intents[best]),
            intent_confidence=float(np.clip(intent_row[best], 0.0, 1.0)),
            risks=risks,
            reasons=[hit.reason for hit in hits] + [neighbour.reason for neighbour in neighbours],
            detectors=list(dict.fromkeys(hit.name for hit in hits)),
            high_stakes=any(probability >= self.threshold(risk) for risk, probability in risks.items()),
        )
