"""Tenant intent catalogs: each business names its own intents by example, mapped to our coarse intents and risks.

A catalog (``policies/catalogs/*.yaml``, format in ``policies/README.md``) lists intents such as ``bring_pet`` or
``test_results_positive`` with 5–50 example utterances, optional negatives (turns that look alike but are not
the intent), the coarse intent and risks they stand for, an optional tier and a similarity threshold.

Matching reuses the user-turn embedding the generic classifier has already computed, so a catalog costs one
matrix product per batch and no encoder run. The rule, for a turn ``q`` and each catalog intent ``i``:

* ``s_i`` = the highest cosine between ``q`` and ``i``'s examples (nearest example, not the centroid: a tenant's
  intent is often several phrasings far apart — "can my dog come" and "are animals allowed in the waiting room" —
  whose mean sits close to neither, and the nearest example is also the human-readable reason);
* ``i`` is vetoed when some negative of ``i`` is at least as close as its nearest example;
* the best non-vetoed intent is the candidate, and it matches when ``s_i`` reaches ``i``'s threshold. A candidate
  below its threshold is no match: a turn closest to A but not close enough is no evidence for B, and the
  generic classifier then decides alone. This also makes thresholds independent of one another, so ``fit``
  tunes each on its own.

Example vectors are computed once per catalog content and encoder, and cached on disk (``CatalogEmbeddingCache``).
A batch and a single turn give the same match up to float32 rounding of the product (~1e-7 in similarity).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from classifiers.embeddings import EMBEDDING_DIM, EXPORT_RECIPE_VERSION, TextEncoder, default_cache_dir
from classifiers.pipeline import DEFAULT_RISK_THRESHOLD
from classifiers.schemas import Classification, normalise_text
from router.yamlsource import ConfigFileError, YamlDocument

# The shipped generic classifier's labels and the default gateway config's tiers; a gateway with other
# labels or tiers passes its own ``CatalogVocabulary``.
COARSE_INTENTS = (
    "faq",
    "smalltalk",
    "data_collection",
    "scheduling",
    "transaction",
    "complaint",
    "complex_reasoning",
    "other",
)
RISKS = ("payment", "medical", "legal", "pii", "account_security", "emergency")
DEFAULT_TIERS = ("small", "standard", "frontier")

DEFAULT_CATALOG_THRESHOLD = 0.7
MIN_EXAMPLES = 5
MAX_EXAMPLES = 50
# A matched catalog risk counts as present under any threshold, as a detector hit does.
CATALOG_RISK_PROBABILITY = 1.0
# A match exactly at its threshold gets this intent confidence; an exact repeat of an example gets 1.0.
CONFIDENCE_AT_THRESHOLD = 0.5
# Bump when the cached vectors' layout or the text preparation changes.
CACHE_FORMAT_VERSION = 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NO_MATCH = "none"


@dataclass(frozen=True)
class CatalogVocabulary:
    """What a catalog may name: coarse intents and risks of the generic classifier, tiers of the gateway."""

    intents: Collection[str] = COARSE_INTENTS
    risks: Collection[str] = RISKS
    tiers: Collection[str] = DEFAULT_TIERS


def _vocabulary(info: ValidationInfo) -> CatalogVocabulary:
    context = info.context or {}
    return context.get("vocabulary") or CatalogVocabulary()


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogIntent(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    examples: list[str] = Field(min_length=MIN_EXAMPLES, max_length=MAX_EXAMPLES)
    negatives: list[str] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    intent: str
    risks: list[str] = Field(default_factory=list)
    tier: str | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("intent")
    @classmethod
    def _known_intent(cls, value: str, info: ValidationInfo) -> str:
        known = _vocabulary(info).intents
        if value not in known:
            raise ValueError(f"unknown coarse intent '{value}' (known: {', '.join(known)})")
        return value

    @field_validator("risks")
    @classmethod
    def _known_risks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        known = _vocabulary(info).risks
        for risk in value:
            if risk not in known:
                raise ValueError(f"unknown risk '{risk}' (known: {', '.join(known)})")
        if len(set(value)) != len(value):
            raise ValueError("a risk is listed twice")
        return value

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = _vocabulary(info).tiers
        if value is not None and value not in known:
            raise ValueError(f"unknown tier '{value}' (tiers: {', '.join(known)})")
        return value

    @field_validator("examples", "negatives")
    @classmethod
    def _not_blank(cls, value: list[str]) -> list[str]:
        if any(not normalise_text(text) for text in value):
            raise ValueError("an utterance is empty")
        return value


class Catalog(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    threshold: float = Field(default=DEFAULT_CATALOG_THRESHOLD, ge=0.0, le=1.0)
    intents: list[CatalogIntent] = Field(min_length=1)

    def threshold_of(self, intent: CatalogIntent) -> float:
        return intent.threshold if intent.threshold is not None else self.threshold

    def intent_named(self, name: str) -> CatalogIntent:
        for intent in self.intents:
            if intent.name == name:
                return intent
        raise KeyError(name)

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Checks across intents, as (location, reason): duplicate names and utterances, contradicting negatives."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        names: dict[str, int] = {}
        owners: dict[str, str] = {}
        for index, intent in enumerate(self.intents):
            if intent.name in names:
                found.append((("intents", index, "name"), f"intent '{intent.name}' is defined twice"))
            names.setdefault(intent.name, index)
            own: set[str] = set()
            for position, example in enumerate(intent.examples):
                text = normalise_text(example)
                loc: tuple[str | int, ...] = ("intents", index, "examples", position)
                if text in own:
                    found.append((loc, f"example {example!r} is listed twice"))
                elif text in owners:
                    found.append((loc, f"example {example!r} is also an example of intent '{owners[text]}'"))
                own.add(text)
                owners.setdefault(text, intent.name)
            for position, negative in enumerate(intent.negatives):
                if normalise_text(negative) in own:
                    loc = ("intents", index, "negatives", position)
                    found.append((loc, f"negative {negative!r} is also an example of this intent"))
        return found

    def utterances(self) -> list[str]:
        """The normalised texts to encode: every intent's examples, then every intent's negatives."""
        examples = [normalise_text(text) for intent in self.intents for text in intent.examples]
        return examples + [normalise_text(text) for intent in self.intents for text in intent.negatives]


@dataclass(frozen=True)
class LoadedCatalog:
    catalog: Catalog
    path: Path
    sha256: str

    @property
    def version(self) -> str:
        return f"{self.catalog.name}@{self.sha256[:12]}"


def load_catalog(path: str | Path, vocabulary: CatalogVocabulary = CatalogVocabulary()) -> LoadedCatalog:
    """Parse and validate a catalog file; :class:`ConfigFileError` names the line and the reason."""
    document = YamlDocument.from_path(path)
    catalog = document.validate(Catalog, context={"vocabulary": vocabulary})
    for loc, reason in catalog.problems():
        raise document.error(loc, reason)
    return LoadedCatalog(catalog, Path(path), document.sha256)


class CatalogEmbeddingCache:
    """Vectors of a catalog's utterances in ``<cache dir>/catalogs``, keyed by the texts and the encoder.

    The key hashes only what the vectors depend on (the normalised texts in order, the encoder's weights and
    runtime), so refitting thresholds or editing descriptions reuses the cached vectors.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.directory = (cache_dir or default_cache_dir()) / "catalogs"

    @staticmethod
    def key(texts: Sequence[str], encoder: TextEncoder) -> str:
        digest = hashlib.sha256()
        identity = (CACHE_FORMAT_VERSION, encoder.encoder_id, encoder.runtime.value, EXPORT_RECIPE_VERSION)
        digest.update(repr(identity).encode())
        for text in texts:
            digest.update(b"\0" + text.encode())
        return digest.hexdigest()

    def path_for(self, name: str, texts: Sequence[str], encoder: TextEncoder) -> Path:
        return self.directory / f"{name}-{self.key(texts, encoder)[:32]}.npy"

    def vectors(self, name: str, texts: Sequence[str], encoder: TextEncoder) -> np.ndarray:
        path = self.path_for(name, texts, encoder)
        cached = self._read(path, len(texts))
        if cached is not None:
            return cached
        vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Written privately then renamed: a concurrent reader sees the old state or the whole file.
        with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".write-", suffix=".npy", delete=False) as handle:
            np.save(handle, vectors)
        os.replace(handle.name, path)
        return vectors

    @staticmethod
    def _read(path: Path, count: int) -> np.ndarray | None:
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if vectors.shape != (count, EMBEDDING_DIM) or vectors.dtype != np.float32:
            return None
        return vectors


class CatalogMatch(BaseModel):
    """The catalog intent a turn was matched to; the gateway carries ``intent_name`` and ``tier`` as facts."""

    model_config = ConfigDict(frozen=True)

    catalog: str
    intent_name: str
    coarse_intent: str
    risks: tuple[str, ...]
    tier: str | None
    similarity: float
    threshold: float
    nearest_example: str

    @property
    def confidence(self) -> float:
        """``CONFIDENCE_AT_THRESHOLD`` at the threshold, rising linearly to 1.0 at similarity 1.0."""
        if self.threshold >= 1.0:
            return 1.0
        above = (self.similarity - self.threshold) / (1.0 - self.threshold)
        return float(np.clip(CONFIDENCE_AT_THRESHOLD + (1.0 - CONFIDENCE_AT_THRESHOLD) * above, 0.0, 1.0))

    @property
    def reason(self) -> str:
        quoted = self.nearest_example if len(self.nearest_example) <= 80 else self.nearest_example[:77] + "..."
        return f"catalog:{self.catalog}/{self.intent_name} nearest:{quoted!r} ({self.similarity:.2f})"


@dataclass(frozen=True)
class CatalogScores:
    """Per turn: the candidate intent's index (-1 when every intent is vetoed), its similarity, its nearest example."""

    candidate: np.ndarray
    similarity: np.ndarray
    nearest_example: np.ndarray


class CatalogIndex:
    """Immutable matcher for one catalog; build a new one to reload (``reloaded``) and swap it in."""

    def __init__(
        self,
        catalog: Catalog,
        utterance_vectors: np.ndarray,
        *,
        source: LoadedCatalog | None = None,
        encoder: TextEncoder | None = None,
        cache: CatalogEmbeddingCache | None = None,
    ) -> None:
        problems = catalog.problems()
        if problems:
            loc, reason = problems[0]
            raise ValueError(f"catalog {catalog.name}: {'.'.join(map(str, loc))}: {reason}")
        example_counts = np.array([len(intent.examples) for intent in catalog.intents])
        negative_counts = np.array([len(intent.negatives) for intent in catalog.intents])
        vectors = np.ascontiguousarray(utterance_vectors, dtype=np.float32)
        if vectors.shape != (example_counts.sum() + negative_counts.sum(), EMBEDDING_DIM):
            raise ValueError(f"expected one {EMBEDDING_DIM}-d vector per utterance, got shape {vectors.shape}")
        self.catalog = catalog
        self.source = source
        self._encoder = encoder
        self._cache = cache
        self._example_count = int(example_counts.sum())
        # Column-major search matrix: one (batch x utterances) product scores every example and negative at once.
        self._search_matrix = np.ascontiguousarray(vectors.T)
        self._example_starts = np.concatenate([[0], np.cumsum(example_counts)[:-1]]).astype(np.intp)
        self._example_ends = np.cumsum(example_counts).astype(np.intp)
        self._negative_owners = np.flatnonzero(negative_counts)
        negative_starts = np.concatenate([[0], np.cumsum(negative_counts[self._negative_owners])[:-1]])
        self._negative_starts = negative_starts.astype(np.intp)
        self._thresholds = np.array([catalog.threshold_of(intent) for intent in catalog.intents])
        self._example_texts = [text for intent in catalog.intents for text in intent.examples]

    @classmethod
    def build(
        cls,
        catalog: Catalog,
        encoder: TextEncoder,
        *,
        cache: CatalogEmbeddingCache | None = None,
        source: LoadedCatalog | None = None,
    ) -> CatalogIndex:
        """Encode the catalog's utterances (or read them from the disk cache) and index them."""
        cache = cache or CatalogEmbeddingCache()
        vectors = cache.vectors(catalog.name, catalog.utterances(), encoder)
        return cls(catalog, vectors, source=source, encoder=encoder, cache=cache)

    @classmethod
    def load(
        cls,
        path: str | Path,
        encoder: TextEncoder,
        *,
        vocabulary: CatalogVocabulary = CatalogVocabulary(),
        cache: CatalogEmbeddingCache | None = None,
    ) -> CatalogIndex:
        loaded = load_catalog(path, vocabulary)
        return cls.build(loaded.catalog, encoder, cache=cache, source=loaded)

    @property
    def version(self) -> str:
        return self.source.version if self.source is not None else self.catalog.name

    def reloaded(self, vocabulary: CatalogVocabulary = CatalogVocabulary()) -> CatalogIndex:
        """This index if its file is unchanged, else a new index of the file; raises ``ConfigFileError`` if invalid."""
        if self.source is None or self._encoder is None:
            raise ValueError("only an index loaded from a file can be reloaded")
        text = _read_text(self.source.path)
        if hashlib.sha256(text.encode()).hexdigest() == self.source.sha256:
            return self
        return type(self).load(self.source.path, self._encoder, vocabulary=vocabulary, cache=self._cache)

    def scores(self, embeddings: np.ndarray) -> CatalogScores:
        """Candidate intent per turn of a (turns x 384) array of L2-normalised user-turn embeddings."""
        queries = np.asarray(embeddings, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"expected a (turns, {EMBEDDING_DIM}) array, got shape {queries.shape}")
        similarities = queries @ self._search_matrix
        examples = similarities[:, : self._example_count]
        best_example = np.maximum.reduceat(examples, self._example_starts, axis=1)
        if len(self._negative_owners):
            best_negative = np.maximum.reduceat(similarities[:, self._example_count :], self._negative_starts, axis=1)
            vetoed = best_negative >= best_example[:, self._negative_owners]
            best_example[:, self._negative_owners] = np.where(vetoed, -np.inf, best_example[:, self._negative_owners])
        candidate = np.argmax(best_example, axis=1)
        rows = np.arange(len(queries))
        similarity = best_example[rows, candidate]
        candidate = np.where(np.isfinite(similarity), candidate, -1)
        nearest = np.array(
            [
                self._example_starts[c] + int(np.argmax(examples[row, self._example_starts[c] : self._example_ends[c]]))
                if c >= 0
                else -1
                for row, c in enumerate(candidate)
            ],
            dtype=np.intp,
        )
        return CatalogScores(candidate, similarity, nearest)

    def match(self, embeddings: np.ndarray) -> list[CatalogMatch | None]:
        """One ``CatalogMatch`` or ``None`` (left to the generic classifier) per row of ``embeddings``."""
        found = self.scores(embeddings)
        return [
            self._match(int(c), float(s), int(n)) if c >= 0 and s >= self._thresholds[c] else None
            for c, s, n in zip(found.candidate, found.similarity, found.nearest_example, strict=True)
        ]

    def match_one(self, embedding: np.ndarray) -> CatalogMatch | None:
        return self.match(np.asarray(embedding).reshape(1, -1))[0]

    def match_texts(self, texts: Sequence[str], encoder: TextEncoder) -> list[CatalogMatch | None]:
        """Encode raw turns the way the generic classifier does (normalised), then match them."""
        return self.match(encoder.encode([normalise_text(text) for text in texts]))

    def _match(self, candidate: int, similarity: float, nearest: int) -> CatalogMatch:
        intent = self.catalog.intents[candidate]
        return CatalogMatch(
            catalog=self.catalog.name,
            intent_name=intent.name,
            coarse_intent=intent.intent,
            risks=tuple(intent.risks),
            tier=intent.tier,
            similarity=min(similarity, 1.0),
            threshold=self.catalog.threshold_of(intent),
            nearest_example=self._example_texts[nearest],
        )


def merge(
    classification: Classification,
    match: CatalogMatch | None,
    threshold: Callable[[str], float] | None = None,
) -> Classification:
    """The generic classification, overridden by a catalog match where the catalog knows better.

    * intent: the catalog's coarse intent; confidence ``match.confidence``, or the generic confidence when that is
      higher and both agree on the intent;
    * risks: each of the catalog intent's risks is raised to ``CATALOG_RISK_PROBABILITY``; no risk is lowered, so
      what the generic heads and the detectors found still reaches the policy's floors;
    * reasons: the catalog reason first, then the generic ones;
    * high_stakes: any risk at or above ``threshold(risk)`` (pass ``TurnClassifier.threshold``), as the classifier
      computes it, and never cleared.
    """
    if match is None:
        return classification
    risk_threshold = threshold or (lambda _risk: DEFAULT_RISK_THRESHOLD)
    risks = dict(classification.risks)
    for risk in match.risks:
        risks[risk] = max(risks.get(risk, 0.0), CATALOG_RISK_PROBABILITY)
    confidence = match.confidence
    if classification.intent == match.coarse_intent:
        confidence = max(confidence, classification.intent_confidence)
    return classification.model_copy(
        update={
            "intent": match.coarse_intent,
            "intent_confidence": confidence,
            "risks": risks,
            "reasons": [match.reason, *classification.reasons],
            "high_stakes": classification.high_stakes
            or any(probability >= risk_threshold(risk) for risk, probability in risks.items()),
        }
    )


class IntentThresholdFit(BaseModel):
    """The tuned threshold of one catalog intent and its in-sample scores at that threshold."""

    intent: str
    previous: float
    threshold: float
    fitted: bool
    precision: float
    recall: float
    f1: float
    support: int
    claimed: int


# Without a lower-scoring labelled turn to stop at, the threshold sits this far under the lowest accepted one.
THRESHOLD_SLACK = 0.05


def claims(catalog: Catalog, scores: CatalogScores, thresholds: Mapping[str, float]) -> list[str]:
    """The catalog intent each scored turn is claimed for under ``thresholds``, or ``NO_MATCH``."""
    names = [intent.name for intent in catalog.intents]
    return [
        names[c] if c >= 0 and s >= thresholds[names[c]] else NO_MATCH
        for c, s in zip(scores.candidate, scores.similarity, strict=True)
    ]


def fit_thresholds(
    catalog: Catalog,
    scores: CatalogScores,
    truth: Sequence[str],
    *,
    min_precision: float = 0.9,
    min_threshold: float = 0.4,
) -> list[IntentThresholdFit]:
    """Per intent, the threshold maximising F1 on the labelled turns among those with precision >= ``min_precision``.

    ``truth`` holds a catalog intent name or ``NO_MATCH`` per scored turn. Because a turn can only be claimed by
    its candidate intent, each threshold only decides among the turns whose candidate is that intent, and is set
    midway between the lowest accepted turn and the next one down. An intent that cannot reach the precision
    floor is raised above its best-scoring wrong turn; one without labelled turns keeps its threshold.
    """
    labels = np.asarray(truth, dtype=object)
    thresholds: dict[str, float] = {}
    fitted: dict[str, bool] = {}
    for index, intent in enumerate(catalog.intents):
        previous = catalog.threshold_of(intent)
        rows = np.flatnonzero(scores.candidate == index)
        support = int(np.sum(labels == intent.name))
        chosen = _best_threshold(scores.similarity[rows], labels[rows] == intent.name, support, min_precision)
        fitted[intent.name] = chosen is not None
        if chosen is None:
            thresholds[intent.name] = previous
        else:
            thresholds[intent.name] = round(float(np.clip(chosen, min_threshold, 1.0)), 3)
    claimed = np.asarray(claims(catalog, scores, thresholds), dtype=object)
    results = []
    for intent in catalog.intents:
        true_positive = int(np.sum((claimed == intent.name) & (labels == intent.name)))
        claimed_count = int(np.sum(claimed == intent.name))
        support = int(np.sum(labels == intent.name))
        precision = true_positive / claimed_count if claimed_count else 0.0
        recall = true_positive / support if support else 0.0
        results.append(
            IntentThresholdFit(
                intent=intent.name,
                previous=catalog.threshold_of(intent),
                threshold=thresholds[intent.name],
                fitted=fitted[intent.name],
                precision=precision,
                recall=recall,
                f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                support=support,
                claimed=claimed_count,
            )
        )
    return results


def _best_threshold(similarity: np.ndarray, positive: np.ndarray, support: int, min_precision: float) -> float | None:
    if support == 0 or len(similarity) == 0:
        return None
    order = np.argsort(-similarity, kind="stable")
    ranked, hits = similarity[order], positive[order]
    accepted = np.arange(1, len(ranked) + 1)
    true_positives = np.cumsum(hits)
    precision = true_positives / accepted
    recall = true_positives / support
    f1 = np.where(true_positives > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    # Only cuts ending on a true turn are worth considering: one more wrong turn never helps.
    usable = hits & (precision >= min_precision)
    if not usable.any():
        return float(ranked[0]) + THRESHOLD_SLACK / 5
    cut = int(np.argmax(np.where(usable, f1, -1.0)))
    below = ranked[cut + 1] if cut + 1 < len(ranked) else ranked[cut] - 2 * THRESHOLD_SLACK
    return float((ranked[cut] + below) / 2)


def cross_validated_claims(
    catalog: Catalog,
    scores: CatalogScores,
    truth: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 13,
    min_precision: float = 0.9,
    min_threshold: float = 0.4,
) -> list[str]:
    """Claims for every turn by thresholds fitted without it (``folds``-fold): what ``fit`` promises on new turns."""
    order = np.random.default_rng(seed).permutation(len(truth))
    predicted = [NO_MATCH] * len(truth)
    labels = list(truth)
    for fold in range(folds):
        held_out = order[fold::folds]
        training = np.setdiff1d(order, held_out)
        fitted = fit_thresholds(
            catalog,
            _subset(scores, training),
            [labels[row] for row in training],
            min_precision=min_precision,
            min_threshold=min_threshold,
        )
        thresholds = {result.intent: result.threshold for result in fitted}
        for row, claim in zip(held_out, claims(catalog, _subset(scores, held_out), thresholds), strict=True):
            predicted[row] = claim
    return predicted


def _subset(scores: CatalogScores, rows: np.ndarray) -> CatalogScores:
    return CatalogScores(scores.candidate[rows], scores.similarity[rows], scores.nearest_example[rows])


def with_thresholds(catalog: Catalog, thresholds: Mapping[str, float]) -> Catalog:
    intents = [
        intent.model_copy(update={"threshold": thresholds[intent.name]}) if intent.name in thresholds else intent
        for intent in catalog.intents
    ]
    return catalog.model_copy(update={"intents": intents})


def write_thresholds(
    path: str | Path, thresholds: Mapping[str, float], vocabulary: CatalogVocabulary = CatalogVocabulary()
) -> bool:
    """Write per-intent thresholds into a catalog file; True when its comments and layout were kept.

    Block-style intents are edited in place (an existing ``threshold:`` value replaced, or a line added under
    ``name:``). A file the edit cannot be proven right for (flow-style intents, say) is rewritten with
    ``yaml.safe_dump``, which loses comments.
    """
    target = Path(path)
    original = load_catalog(target, vocabulary).catalog
    expected = with_thresholds(original, thresholds)
    text = _read_text(target)
    edited = _edit_thresholds(text, thresholds)
    if edited is not None and _parses_to(edited, expected, vocabulary, str(target)):
        _write_text(target, edited)
        return True
    data = expected.model_dump(exclude_defaults=True)
    _write_text(target, yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
    return False


def _edit_thresholds(text: str, thresholds: Mapping[str, float]) -> str | None:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    intents = _mapping_value(root, "intents") if isinstance(root, yaml.MappingNode) else None
    if not isinstance(intents, yaml.SequenceNode) or intents.flow_style:
        return None
    edits: list[tuple[int, int, str]] = []
    for item in intents.value:
        if not isinstance(item, yaml.MappingNode) or item.flow_style:
            return None
        name_key, name_value = _mapping_entry(item, "name")
        if name_key is None or name_value is None or name_value.value not in thresholds:
            continue
        value = f"{thresholds[name_value.value]:g}"
        _, existing = _mapping_entry(item, "threshold")
        if existing is not None:
            edits.append((existing.start_mark.index, existing.end_mark.index, value))
        else:
            line_end = text.find("\n", name_value.end_mark.index)
            line_end = len(text) if line_end < 0 else line_end
            edits.append((line_end, line_end, "\n" + " " * name_key.start_mark.column + f"threshold: {value}"))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _mapping_entry(node: yaml.MappingNode, key: str) -> tuple[yaml.Node | None, Any]:
    for key_node, value_node in node.value:
        if key_node.value == key:
            return key_node, value_node
    return None, None


def _mapping_value(node: yaml.MappingNode, key: str) -> Any:
    return _mapping_entry(node, key)[1]


def _parses_to(text: str, expected: Catalog, vocabulary: CatalogVocabulary, source: str) -> bool:
    try:
        parsed = YamlDocument(text, source).validate(Catalog, context={"vocabulary": vocabulary})
    except ConfigFileError:
        return False
    return parsed == expected


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(str(path), None, f"cannot read: {exc.strerror}") from exc


def _write_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".write-", encoding="utf-8", delete=False) as out:
        out.write(text)
    os.replace(out.name, path)
