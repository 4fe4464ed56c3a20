"""Turn features for the heads: what the user said, next to what the assistant had just said."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from classifiers.embeddings import EMBEDDING_DIM, TextEncoder
from classifiers.lexicon import RiskLexicon
from classifiers.schemas import Conversation

if TYPE_CHECKING:  # training only: serving reads n-grams with ``classifiers.ngrams``, without scikit-learn
    import scipy.sparse as sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

# The end of the previous assistant turn is what the user answers ("... can I have your card number?");
# keeping only its tail bounds the encoder's cost for long answers.
CONTEXT_TAIL_CHARS = 300


class FeatureScheme(StrEnum):
    USER = "user"  # embedding of the user turn only
    CONCAT = "concat"  # user embedding, then context embedding (zeros when there is no context)


def context_tail(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= CONTEXT_TAIL_CHARS else text[-CONTEXT_TAIL_CHARS:].split(" ", 1)[-1]


def embed_turns(encoder: TextEncoder, conversations: Sequence[Conversation]) -> tuple[np.ndarray, np.ndarray]:
    """(user vectors, context vectors); a turn without context gets a zero context vector."""
    contexts = [context_tail(conversation.previous_assistant_text) for conversation in conversations]
    distinct = list(dict.fromkeys([c.latest_user_text for c in conversations] + [c for c in contexts if c]))
    vectors = dict(zip(distinct, encoder.encode(distinct), strict=True)) if distinct else {}
    user = np.vstack([vectors[c.latest_user_text] for c in conversations]) if conversations else _empty()
    zeros = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    context = np.vstack([vectors[c] if c else zeros for c in contexts]) if conversations else _empty()
    return user, context


def turn_features(user: np.ndarray, context: np.ndarray, scheme: FeatureScheme) -> np.ndarray:
    if scheme is FeatureScheme.USER:
        return user
    return np.hstack([user, context])


def with_keywords(
    features: np.ndarray, texts: Sequence[str], keywords: RiskLexicon | None, weight: float
) -> np.ndarray:
    """Turn features followed by the weighted keyword indicators, when the model uses them."""
    if keywords is None or weight <= 0:
        return features
    return np.hstack([features, keywords.transform(texts) * weight])


def _empty() -> np.ndarray:
    return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)


def lexical_vectorizer() -> TfidfVectorizer:
    """Character n-grams of the user turn: the English encoder reads other languages poorly, while words like
    "Karte", "tarjeta" or "Passwort" share n-grams with labelled turns."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=20000)


def with_lexical(dense: np.ndarray, lexical: sparse.csr_matrix | None, weight: float) -> np.ndarray | sparse.csr_matrix:
    """Embedding features, followed by the weighted n-gram features when there are any and ``weight`` > 0."""
    import scipy.sparse as sparse

    if lexical is None or weight <= 0:
        return dense
    return sparse.hstack([sparse.csr_matrix(dense), lexical * weight]).tocsr()


@dataclass(frozen=True)
class SplitFeatures:
    """``with_lexical``'s matrix without building it: products are taken block by block.

    Stacking a dense block onto a sparse one costs more per turn than the linear heads themselves.
    """

    dense: np.ndarray
    lexical: Any  # a scipy CSR matrix in training, ``ngrams.SparseRows`` when serving; both support ``@``
    weight: float

    @property
    def shape(self) -> tuple[int, int]:
        extra = self.lexical.shape[1] if self.lexical is not None and self.weight > 0 else 0
        return self.dense.shape[0], self.dense.shape[1] + extra

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        width = self.dense.shape[1]
        product = self.dense @ other[:width]
        if self.lexical is not None and self.weight > 0:
            product = product + self.weight * np.asarray(self.lexical @ other[width:])
        return product
