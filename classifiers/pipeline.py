"""The turn classifier: embeddings + deterministic detectors + learned intent and risk heads.

A trained ``TurnModel`` (heads, training metadata and the labelled examples quoted as reasons) is shipped
prebuilt in ``classifiers/models/default.npz`` rather than trained when the gateway starts: routing is then
deterministic across replicas and restarts, start-up costs no training time, and the model that was evaluated
is the model that runs. The file holds only arrays and one JSON header (``numpy.load(allow_pickle=False)``):
loading it executes no code and needs neither scikit-learn nor scipy, only numpy. The embedding runtime is
not in it; it is loaded separately and must report the encoder id the model was trained with.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, Field
from threadpoolctl import ThreadpoolController

from classifiers import regex
from classifiers.detectors import DetectorHit, detect
from classifiers.embeddings import CachingEncoder, EncoderRuntime, TextEncoder, load_encoder
from classifiers.features import (
    FeatureScheme,
    SplitFeatures,
    context_tail,
    embed_turns,
    turn_features,
)
from classifiers.folding import fold_disguises
from classifiers.language import guess_language
from classifiers.lexicon import RiskLexicon
from classifiers.linear import CalibratedLinear, Head, IntentHead, ScoreHead
from classifiers.neighbours import ExampleIndex, blend_stakes
from classifiers.ngrams import CharNgramTfidf
from classifiers.schemas import Classification, Conversation
from classifiers.stakes_cues import CUE_STAKES, answer_cue, stakes_cue

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.npz"
# The saved model's layout; ``TurnModel.load`` reads exactly this version.
MODEL_FORMAT = "switchboard-turn-model"
MODEL_FORMAT_VERSION = 1
DEFAULT_RISK_THRESHOLD = 0.5
DEFAULT_STAKES_THRESHOLD = 0.5
# Detectors whose hit is itself the contract's evidence: a number that moves money or proves identity, a code
# that unlocks an account, an emergency. Names, e-mails, dates and addresses are slot values and are not.
HARD_EVIDENCE_DETECTORS = frozenset(
    {"card_number", "card_security_code", "iban", "bank_account", "national_id", "one_time_code"}
)
# Remembered stakes of earlier turns and instructions, by text: a call resends its history every turn.
SEGMENT_CACHE_SIZE = 20_000
# Vectors remembered by text in the gateway (1.5 KB each).
EMBEDDING_CACHE_TEXTS = 8192
# Where a segment read for stakes came from, when a caller said it (the reason names it: "stakes:earlier_user_turn").
EARLIER_USER_TURN = "earlier_user_turn"
# At most this many sentences of each system/developer/tool message are judged.
MAX_INSTRUCTION_SENTENCES = 8
# How a sentence that instructs the agent starts ("You are…", "Never give medical advice: for symptoms…", "If the
# caller reports fraud, transfer…"). Such a sentence describes what may happen in any call of the agent, not what
# happened in this one, so it raises stakes only by a value it carries (a card number pasted into the prompt), never
# by the risks it names; otherwise every turn of an agent whose standing prompt mentions payments goes to frontier.
# Sentences that report ("The caller says…", "Account note: …") are judged like user turns.
DIRECTIVE_OPENERS = frozenset(
    {
        "you", "your", "you're", "youre", "always", "never", "do", "don't", "dont", "be", "keep", "help", "verify",
        "take", "escalate", "answer", "offer", "ask", "use", "tell", "if", "when", "whenever", "for", "only",
        "please", "make", "confirm", "avoid", "respond", "reply", "speak", "say", "greet", "collect", "check",
        "follow", "transfer", "handle", "remember", "treat", "refuse", "decline", "assist", "provide", "explain",
        "direct", "route", "stay", "act", "must", "should", "try", "let", "ensure", "note", "mention", "give",
        "hand", "pass", "send", "put", "inform", "introduce", "identify", "gather", "record", "read", "write",
    }
)  # fmt: skip
_SENTENCE = regex.compile(r"[^.!?\n;]+")


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


class ModelFormatError(ValueError):
    """The file is not a turn model this version of Switchboard reads."""


@dataclass
class TurnModel:
    """Everything learned from the labelled turns; what ``train`` writes and ``TurnClassifier.load`` reads.

    Fresh from training the heads are scikit-learn estimators and ``lexical`` a fitted ``TfidfVectorizer``;
    :meth:`serving` (applied by ``save`` and by ``TurnClassifier``) swaps them for their plain-array equivalents,
    so the model that is evaluated after training computes exactly what the saved one will.
    """

    metadata: ModelMetadata
    intent_head: Head
    risk_head: Head
    examples: ExampleIndex
    # Character n-grams of the user turn, appended to the embeddings with a per-head weight: they carry keywords
    # ("Karte", "factures", "Passwort") of languages the English encoder reads poorly.
    lexical: Any = None  # CharNgramTfidf, or a fitted TfidfVectorizer before ``serving``
    intent_lexical_weight: float = 1.0
    risk_lexical_weight: float = 0.5
    # Multilingual risk-keyword indicators appended to the embedding features of both heads.
    keywords: RiskLexicon | None = None
    keyword_weight: float = 0.0
    # One calibrated binary head: is this turn high-stakes under the routing contract (``classifiers.contract``).
    stakes_head: Head | None = None
    stakes_lexical_weight: float = 0.5
    # Stakes = (1 - w) * head + w * the vote of the k nearest labelled examples (``ExampleIndex.stakes_vote``).
    neighbour_stakes_weight: float = 0.0
    neighbour_stakes_k: int = 25

    def serving(self) -> TurnModel:
        """This model with plain-array heads and n-gram transform (itself when it already has them)."""
        lexical = self.lexical
        if lexical is not None and not isinstance(lexical, CharNgramTfidf):
            lexical = CharNgramTfidf.from_vectorizer(lexical)
        return replace(
            self,
            intent_head=_plain(self.intent_head),
            risk_head=_plain(self.risk_head),
            stakes_head=None if self.stakes_head is None else _plain(self.stakes_head),
            lexical=lexical,
        )

    def save(self, path: str | Path) -> None:
        model = self.serving()
        intent = model.intent_head
        if not isinstance(intent, IntentHead):
            raise TypeError("the intent head must be an IntentHead after serving()")
        arrays: dict[str, Any] = {
            **intent.linear_.arrays("intent"),
            "intent.fine_to_coarse": intent.fine_to_coarse_,
            **model.risk_head.linear_.arrays("risk"),
            "examples.vectors": model.examples.vectors,
        }
        if model.examples.stakes is not None:
            arrays["examples.stakes"] = model.examples.stakes
        header: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "metadata": model.metadata.model_dump(mode="json"),
            "intent_classes": [str(label) for label in intent.classes_],
            "risk_classes": [str(label) for label in model.risk_head.classes_],
            "stakes_classes": None,
            "weights": {
                "intent_lexical": model.intent_lexical_weight,
                "risk_lexical": model.risk_lexical_weight,
                "stakes_lexical": model.stakes_lexical_weight,
                "keyword": model.keyword_weight,
                "neighbour_stakes": model.neighbour_stakes_weight,
            },
            "neighbour_stakes_k": model.neighbour_stakes_k,
            # The keyword patterns the model was trained with, as pattern texts (``RiskLexicon``'s own state).
            "keywords": None if model.keywords is None else model.keywords.__getstate__(),
            "lexical": None,
            "examples": {"texts": model.examples.texts, "intents": model.examples.intents},
        }
        if model.stakes_head is not None:
            arrays.update(model.stakes_head.linear_.arrays("stakes"))
            header["stakes_classes"] = [str(label) for label in model.stakes_head.classes_]
        if model.lexical is not None:
            arrays["lexical.idf"] = model.lexical.idf
            header["lexical"] = {"ngram_range": list(model.lexical.ngram_range), "ngrams": model.lexical.ngrams}
        arrays["header"] = np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Through a file object: ``savez`` given a name would append ".npz" to it.
        with target.open("wb") as file:
            np.savez_compressed(file, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> TurnModel:
        try:
            with np.load(Path(path), allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (ValueError, OSError) as error:
            raise ModelFormatError(f"{path} is not a {MODEL_FORMAT} file (.npz): {error}") from error
        if "header" not in arrays:
            raise ModelFormatError(f"{path} has no {MODEL_FORMAT} header")
        header = json.loads(arrays["header"].tobytes().decode())
        if header.get("format") != MODEL_FORMAT or header.get("format_version") != MODEL_FORMAT_VERSION:
            raise ModelFormatError(
                f"{path} is {header.get('format')} v{header.get('format_version')}; this version reads "
                f"{MODEL_FORMAT} v{MODEL_FORMAT_VERSION} (re-export it with the version that wrote it)"
            )
        weights = header["weights"]
        keywords = None
        if header["keywords"] is not None:
            keywords = RiskLexicon.__new__(RiskLexicon)
            keywords.__setstate__(header["keywords"])
        lexical = None
        if header["lexical"] is not None:
            lexical = CharNgramTfidf(
                header["lexical"]["ngrams"], arrays["lexical.idf"], tuple(header["lexical"]["ngram_range"])
            )
        stakes_head = None
        if header["stakes_classes"] is not None:
            stakes_head = ScoreHead(_labels(header["stakes_classes"]), CalibratedLinear.from_arrays(arrays, "stakes"))
        return cls(
            metadata=ModelMetadata.model_validate(header["metadata"]),
            intent_head=IntentHead(
                _labels(header["intent_classes"]),
                CalibratedLinear.from_arrays(arrays, "intent"),
                np.asarray(arrays["intent.fine_to_coarse"], dtype=np.float64),
            ),
            risk_head=ScoreHead(_labels(header["risk_classes"]), CalibratedLinear.from_arrays(arrays, "risk")),
            examples=ExampleIndex(
                arrays["examples.vectors"],
                header["examples"]["texts"],
                header["examples"]["intents"],
                arrays.get("examples.stakes"),
            ),
            lexical=lexical,
            intent_lexical_weight=weights["intent_lexical"],
            risk_lexical_weight=weights["risk_lexical"],
            keywords=keywords,
            keyword_weight=weights["keyword"],
            stakes_head=stakes_head,
            stakes_lexical_weight=weights["stakes_lexical"],
            # Absent from models written before the vote: they keep the head's stakes.
            neighbour_stakes_weight=weights.get("neighbour_stakes", 0.0),
            neighbour_stakes_k=header.get("neighbour_stakes_k", 25),
        )


def _plain(head: Any) -> Head:
    """A training estimator's plain-array head (``head()``), or the head itself when it already is one."""
    return head.head() if hasattr(head, "head") else head


def _labels(names: list[str]) -> np.ndarray:
    return np.asarray(names, dtype=object)


def is_hard_evidence(hit: DetectorHit) -> bool:
    return hit.name in HARD_EVIDENCE_DETECTORS or "emergency" in hit.risks


@dataclass(frozen=True)
class _Stakes:
    """The stakes of one piece of text and why, when a rule (not the head) set them."""

    probability: float
    reason: str | None = None


@dataclass(frozen=True)
class _Features:
    user: np.ndarray
    similarities: np.ndarray  # of each user vector to every example (``ExampleIndex.similarities``)
    intent: SplitFeatures
    risk: SplitFeatures
    stakes: SplitFeatures
    keywords: np.ndarray


class TurnClassifier:
    """Classifies conversations; thread-compatible but not thread-safe (use one worker, see ``batching``)."""

    def __init__(
        self,
        model: TurnModel,
        encoder: TextEncoder,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = DEFAULT_RISK_THRESHOLD,
        neighbours: int = 2,
        stakes_threshold: float = DEFAULT_STAKES_THRESHOLD,
    ) -> None:
        if encoder.encoder_id != model.metadata.encoder_id:
            raise EncoderMismatchError(
                f"model was trained with {model.metadata.encoder_id}, the encoder is {encoder.encoder_id}"
            )
        self.model = model.serving()
        self.encoder = encoder
        self.thresholds = dict(thresholds or {})
        self.default_threshold = default_threshold
        self.neighbours = neighbours
        self.stakes_threshold = stakes_threshold
        self._thread_pools = ThreadpoolController()
        self._segment_stakes: OrderedDict[str, _Stakes] = OrderedDict()
        # Every risk keyword indicator, whatever risks the heads use: the non-English safety rule reads them.
        self._all_keywords = model.keywords or RiskLexicon(model.metadata.risks)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        runtime: EncoderRuntime | str | None = None,
        encoder: TextEncoder | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> TurnClassifier:
        """Load a trained model (``None``: the shipped default) and build its encoder.

        The ONNX encoder is wrapped in a cache of vectors by text (exact: a text's ONNX vector does not depend on
        what else is encoded): the assistant's questions that form a turn's context, and short answers, repeat.
        """
        model = TurnModel.load(path or DEFAULT_MODEL_PATH)
        if encoder is None:
            loaded = load_encoder(runtime)
            encoder = CachingEncoder(loaded, EMBEDDING_CACHE_TEXTS) if loaded.runtime is EncoderRuntime.ONNX else loaded
        return cls(model, encoder, thresholds=thresholds)

    @property
    def intents(self) -> list[str]:
        return list(self.model.metadata.intents)

    @property
    def risks(self) -> list[str]:
        return list(self.model.metadata.risks)

    def threshold(self, risk: str) -> float:
        return self.thresholds.get(risk, self.default_threshold)

    @staticmethod
    def cache_key(conversation: Conversation) -> tuple[str, ...]:
        """Everything the classification depends on; equal keys give equal classifications."""
        normalised = conversation.normalised()
        return (
            normalised.latest_user_text,
            context_tail(normalised.previous_assistant_text),
            "\x1e".join(normalised.earlier_user_texts),
            "\x1e".join(context_tail(context) for context in normalised.earlier_user_contexts),
            "\x1e".join(normalised.instruction_texts),
            "\x1e".join(normalised.tool_texts),
        )

    def classify(self, conversation: Conversation) -> Classification:
        return self.classify_batch([conversation])[0]

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]:
        if not conversations:
            return []
        # One BLAS thread: the heads' matrices are small, and on a busy 2-core box OpenBLAS worker threads
        # spinning for a core cost far more than they save (and would take the event loop's core).
        with single_blas_thread(self._thread_pools):
            return self._classify_batch(conversations)

    def _features(self, turns: Sequence[Conversation]) -> _Features:
        """Features of turns whose texts are already folded (``fold_disguises``)."""
        user, context = embed_turns(self.encoder, turns)
        texts = [turn.latest_user_text for turn in turns]
        keywords = self._all_keywords.transform(texts)
        dense = turn_features(user, context, self.model.metadata.feature_scheme)
        if self.model.keywords is not None and self.model.keyword_weight > 0:
            dense = np.hstack([dense, keywords * self.model.keyword_weight])
        lexical = self.model.lexical.transform(texts) if self.model.lexical is not None else None
        return _Features(
            user=user,
            similarities=self.model.examples.similarities(user),
            intent=SplitFeatures(dense, lexical, self.model.intent_lexical_weight),
            risk=SplitFeatures(dense, lexical, self.model.risk_lexical_weight),
            stakes=SplitFeatures(dense, lexical, self.model.stakes_lexical_weight),
            keywords=keywords,
        )

    def _head_stakes(self, features: _Features) -> np.ndarray:
        """The learned stakes: the head's probability, blended with the nearest examples' vote when the model
        has one (measured on held-out sources: fewer leaks at the same capture than the head alone)."""
        if self.model.stakes_head is None:
            return np.zeros(features.user.shape[0])
        head = self.model.stakes_head.predict_proba(features.stakes)[:, 0]
        weight = self.model.neighbour_stakes_weight
        if weight <= 0:  # no vote to compute
            return head
        vote = self.model.examples.stakes_vote(features.similarities, self.model.neighbour_stakes_k)
        return blend_stakes(head, vote, weight)

    def _judge(
        self,
        probability: float,
        text: str,
        keywords: np.ndarray,
        hits: list[DetectorHit],
        language: str,
        cue: str | None = None,
    ) -> _Stakes:
        """The head's stakes, raised by hard evidence, by a caller's own statement of a high-stakes act or an answer
        that discloses one (``cue``, see ``turn_cue``) and, where the model is weak, by the language rule."""
        hard = [hit for hit in hits if is_hard_evidence(hit)]
        if hard:
            return _Stakes(1.0, f"stakes:detector:{hard[0].name}")
        if cue is not None and probability < CUE_STAKES:
            return _Stakes(CUE_STAKES, f"stakes:cue:{cue}")
        if language != "en" and keywords.any() and probability < self.stakes_threshold:
            # The heads learned stakes mostly from English; a risk word in another language is not left to them.
            return _Stakes(max(probability, self.stakes_threshold), f"stakes:non_english_risk_keyword({language})")
        return _Stakes(float(probability))

    def _classify_batch(self, conversations: Sequence[Conversation]) -> list[Classification]:
        normalised = [conversation.normalised() for conversation in conversations]
        folded = [
            turn.model_copy(
                update={
                    "latest_user_text": fold_disguises(turn.latest_user_text),
                    "previous_assistant_text": fold_disguises(turn.previous_assistant_text or "") or None,
                }
            )
            for turn in normalised
        ]
        features = self._features(folded)
        intent_probabilities = self.model.intent_head.predict_proba(features.intent)
        risk_probabilities = self.model.risk_head.predict_proba(features.risk)
        stakes = self._head_stakes(features)
        nearest = self.model.examples.nearest(features.similarities, self.neighbours)
        history = self._history_stakes(normalised)
        similarity = self._earlier_user_similarity(normalised, features.user)
        intents = self.model.intent_head.classes_
        return [
            self._assemble(
                turn,
                plain,
                intents,
                intent_row,
                risk_row,
                turn_stakes,
                keywords,
                neighbours,
                past,
                earlier,
            ).with_embedding(vector)
            for turn, plain, intent_row, risk_row, turn_stakes, keywords, neighbours, past, earlier, vector in zip(
                normalised,
                folded,
                intent_probabilities,
                risk_probabilities,
                stakes,
                features.keywords,
                nearest,
                history,
                similarity,
                features.user,
                strict=True,
            )
        ]

    def _earlier_user_similarity(self, turns: Sequence[Conversation], latest: np.ndarray) -> list[list[float]]:
        """Cosine similarity of each turn's latest user text to each of its earlier user texts, in the folded form
        both were encoded in when they were judged (as the latest turn, or as an earlier one for stakes): one encode
        call of cache hits, as a rule."""
        earlier = [[fold_disguises(text) for text in turn.earlier_user_texts] for turn in turns]
        distinct = list(dict.fromkeys(text for texts in earlier for text in texts))
        vectors = dict(zip(distinct, self.encoder.encode(distinct), strict=True)) if distinct else {}
        return [[float(vectors[text] @ user) for text in texts] for texts, user in zip(earlier, latest, strict=True)]

    def _assemble(
        self,
        turn: Conversation,
        folded: Conversation,
        intents: np.ndarray,
        intent_row: np.ndarray,
        risk_row: np.ndarray,
        head_stakes: float,
        keywords: np.ndarray,
        neighbours: list,
        past: tuple[_Stakes, str] | None,
        earlier_similarity: list[float],
    ) -> Classification:
        folded_text = folded.latest_user_text
        hits = detect_both(turn.latest_user_text, folded_text, context_tail(turn.previous_assistant_text))
        risks = {str(name): float(probability) for name, probability in zip(self.risks, risk_row, strict=True)}
        for hit in hits:
            for risk in hit.risks:
                risks[risk] = 1.0
        language = guess_language(turn.latest_user_text)
        stakes = self._judge(head_stakes, turn.latest_user_text, keywords, hits, language, turn_cue(folded))
        reasons = [hit.reason for hit in hits]
        if stakes.reason:
            reasons.append(stakes.reason)
        if past is not None and past[0].probability > stakes.probability:
            earlier, origin = past
            stakes = earlier
            if earlier.probability >= self.stakes_threshold:
                reasons.append(f"stakes:{origin}({earlier.probability:.2f})")
                if earlier.reason:
                    reasons.append(earlier.reason)
        best = int(np.argmax(intent_row))
        return Classification(
            intent=str(intents[best]),
            intent_confidence=float(np.clip(intent_row[best], 0.0, 1.0)),
            risks=risks,
            reasons=reasons + [neighbour.reason for neighbour in neighbours],
            detectors=list(dict.fromkeys(hit.name for hit in hits)),
            stakes=float(np.clip(stakes.probability, 0.0, 1.0)),
            high_stakes=stakes.probability >= self.stakes_threshold,
            language=language,
            earlier_user_similarity=earlier_similarity,
        )

    # -- the rest of the chat ---------------------------------------------------------------------------------

    def _history_stakes(self, turns: Sequence[Conversation]) -> list[tuple[_Stakes, str] | None]:
        """For each conversation, the highest stakes among its earlier user turns and instruction sentences,
        with where they were found; judged once per distinct text and remembered."""
        segments = [_segments(turn) for turn in turns]
        unseen = list(
            dict.fromkeys(
                segment.text
                for found in segments
                for segment in found
                if segment.origin != "directive" and segment.text not in self._segment_stakes
            )
        )
        if unseen:
            self._judge_segments(unseen)
        result: list[tuple[_Stakes, str] | None] = []
        for found in segments:
            judged = [(self._earlier_stakes(segment), segment.origin) for segment in found]
            for segment in found:
                if segment.origin != "directive":
                    self._segment_stakes.move_to_end(segment.text)
            result.append(max(judged, key=lambda item: item[0].probability) if judged else None)
        return result

    def _earlier_stakes(self, segment: _Segment) -> _Stakes:
        """A judged segment's stakes; a caller's earlier statement of a high-stakes act, or answer that discloses
        one, counts as it would have in the latest turn. Cues read only what callers said: a system prompt
        describing the agent's job ("we handle lost cards") is not a caller's report."""
        if segment.origin == "directive":
            return _directive_stakes(segment.text)
        judged = self._segment_stakes[segment.text]
        if segment.origin == EARLIER_USER_TURN and judged.probability < CUE_STAKES:
            cue = _caller_cue(segment.text, segment.answers)
            if cue is not None:
                return _Stakes(CUE_STAKES, f"stakes:cue:{cue}")
        return judged

    def _judge_segments(self, texts: list[str]) -> None:
        folded = [Conversation(latest_user_text=fold_disguises(text)) for text in texts]
        features = self._features(folded)
        for text, plain, probability, keywords in zip(
            texts, folded, self._head_stakes(features), features.keywords, strict=True
        ):
            hits = detect_both(text, plain.latest_user_text)
            self._segment_stakes[text] = self._judge(float(probability), text, keywords, hits, guess_language(text))
        while len(self._segment_stakes) > SEGMENT_CACHE_SIZE:
            self._segment_stakes.popitem(last=False)


def detect_both(text: str, folded_text: str, context: str = "") -> list[DetectorHit]:
    """Detector hits on the text as written (digits intact, for the number detectors) and on its folded form
    (disguised words undone, for the phrase detectors), each detector reported once."""
    hits = detect(text, context)
    if folded_text != text:
        seen = {hit.name for hit in hits}
        hits += [hit for hit in detect(folded_text, context) if hit.name not in seen]
    return hits


class _Segment(NamedTuple):
    """A text read for stakes besides the latest turn: where it came from, and for an earlier user turn the
    assistant text it answers."""

    text: str
    origin: str
    answers: str = ""


def _segments(turn: Conversation) -> list[_Segment]:
    """Everything besides the latest turn that is read for stakes: earlier user turns (with what they answer), and
    the sentences of system/developer messages (a report, ``instruction``, or a ``directive``) and of tool results
    (data about this call: always judged, as ``instruction``)."""
    found = [_Segment(text, EARLIER_USER_TURN, answers) for text, answers in turn.earlier_turns]
    for message in turn.instruction_texts:
        found += [
            _Segment(sentence, "directive" if is_directive(sentence) else "instruction")
            for sentence in _sentences(message)
        ]
    for message in turn.tool_texts:
        found += [_Segment(sentence, "instruction") for sentence in _sentences(message)]
    return found


def _sentences(message: str) -> list[str]:
    sentences = [sentence.strip() for sentence in _SENTENCE.findall(message) if sentence.strip()]
    return sentences[:MAX_INSTRUCTION_SENTENCES]


def is_directive(sentence: str) -> bool:
    """Whether a sentence of a system/developer message instructs the agent (see ``DIRECTIVE_OPENERS``)."""
    words = sentence.split(maxsplit=1)
    return bool(words) and words[0].lower().strip(",:;-") in DIRECTIVE_OPENERS


def turn_cue(folded: Conversation) -> str | None:
    """The contract item a caller's latest turn (``folded``: in ``fold_disguises``'s form) states, or discloses by
    answering the agent's question about it (``classifiers.stakes_cues``)."""
    return stakes_cue(folded.latest_user_text) or answer_cue(context_tail(folded.previous_assistant_text))


@functools.lru_cache(maxsize=4096)
def _caller_cue(text: str, answers: str) -> str | None:
    folded = Conversation(latest_user_text=fold_disguises(text), previous_assistant_text=fold_disguises(answers))
    return turn_cue(folded)


@functools.lru_cache(maxsize=4096)
def _directive_stakes(sentence: str) -> _Stakes:
    """A directive's stakes: certain when it carries a value that moves money or proves identity, else none."""
    values = [hit.name for hit in detect(sentence) if hit.name in HARD_EVIDENCE_DETECTORS]
    return _Stakes(1.0, f"stakes:detector:{values[0]}") if values else _Stakes(0.0)
