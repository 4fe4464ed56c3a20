"""Encoder, heads, the shipped default model and the async front; the encoder is loaded once per session."""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifiers import BatchingClassifier, Classification, Conversation, EncoderMismatchError, TurnClassifier
from classifiers.cli import eval_command, train_command
from classifiers.dataset import conversations, load_turns
from classifiers.embeddings import (
    EMBEDDING_DIM,
    ENCODER_MANIFEST,
    MODELS_DIR,
    EncoderIntegrityError,
    EncoderRuntime,
    TextEncoder,
    encoder_id_for,
    file_sha256,
    load_encoder,
    model_dir,
    shipped_encoder,
)
from classifiers.evaluate import evaluate
from classifiers.features import SplitFeatures, embed_turns, turn_features, with_keywords, with_lexical
from classifiers.ngrams import CharNgramTfidf
from classifiers.pipeline import DEFAULT_MODEL_PATH, MODEL_FORMAT_VERSION, ModelFormatError, TurnModel
from classifiers.train import TrainingSettings, fit_model

# Trains heads, exports and loads the real encoder (ONNX and torch): the slow tier.
pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "classifiers" / "data" / "utterances.csv"
PARITY_TEXTS = [
    "ok",
    "yes",
    "what time do you open tomorrow",
    "I want to dispute a 300 dollar charge on my card",
    "my chest hurts and my left arm is numb",
    "um so like the the package never arrived and nobody called me back",
    "four one one one one one one one one one one one one one one one",
    "Could you explain how the annual plan is prorated if we add seats halfway through the billing year?",
    "¿Dónde está mi pedido?",
    "thanks, that's all",
]


@pytest.fixture(scope="session")
def onnx_encoder() -> TextEncoder:
    return load_encoder(EncoderRuntime.ONNX)


@pytest.fixture(scope="session")
def torch_encoder() -> TextEncoder:
    return load_encoder(EncoderRuntime.TORCH)


@pytest.fixture(scope="session")
def default_classifier(onnx_encoder: TextEncoder) -> TurnClassifier:
    return TurnClassifier(TurnModel.load(DEFAULT_MODEL_PATH), onnx_encoder)


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return load_turns(DATA)


@pytest.fixture(scope="session")
def small_model(onnx_encoder: TextEncoder, frame: pd.DataFrame) -> TurnModel:
    # A small slice per intent keeps the fit fast while every intent and risk still has examples.
    small = frame.groupby("intent").sample(30, random_state=7)
    return fit_model(small, onnx_encoder, TrainingSettings(seed=7))


def dense_features(
    model: TurnModel, encoder: TextEncoder, texts: list[str]
) -> tuple[list[Conversation], np.ndarray, np.ndarray]:
    """The normalised turns of ``texts``, their user embeddings, and the dense features ``model``'s heads read
    (user and context embeddings, then the weighted risk keywords)."""
    turns = [Conversation(latest_user_text=text).normalised() for text in texts]
    user, context = embed_turns(encoder, turns)
    dense = with_keywords(
        turn_features(user, context, model.metadata.feature_scheme),
        [turn.latest_user_text for turn in turns],
        model.keywords,
        model.keyword_weight,
    )
    return turns, user, dense


def test_fit_and_predict_on_a_small_slice(
    small_model: TurnModel, onnx_encoder: TextEncoder, frame: pd.DataFrame
) -> None:
    classifier = TurnClassifier(small_model, onnx_encoder)
    assert set(classifier.intents) == set(frame["intent"])
    assert {"payment", "medical", "emergency", "pii", "legal", "account_security"} == set(classifier.risks)
    unseen = frame.drop(frame.index[frame["text"].isin(small_model.examples.texts)])
    report = evaluate(classifier, unseen.groupby("intent").sample(15, random_state=8))
    # 240 training turns reach about 0.65 macro-F1 (chance is 0.125); the full model about 0.78.
    assert report.intent_macro_f1 >= 0.5, report.headline()
    result = classifier.classify(Conversation(latest_user_text="what are your opening hours on saturday"))
    assert 0.0 <= result.intent_confidence <= 1.0
    assert set(result.risks) >= set(classifier.risks)
    assert any(reason.startswith("nearest:") for reason in result.reasons)


def test_numpy_heads_match_scikit_learn(small_model: TurnModel, onnx_encoder: TextEncoder) -> None:
    turns, _, features = dense_features(small_model, onnx_encoder, PARITY_TEXTS)
    texts = [turn.latest_user_text for turn in turns]
    lexical = small_model.lexical.transform(texts)
    intent_features = with_lexical(features, lexical, small_model.intent_lexical_weight)
    risk_features = with_lexical(features, lexical, small_model.risk_lexical_weight)
    intent = small_model.intent_head
    lexical_blocks = SplitFeatures(features, lexical, small_model.intent_lexical_weight)
    np.testing.assert_allclose(intent.predict_proba(lexical_blocks), intent.predict_proba(intent_features), rtol=1e-9)
    np.testing.assert_allclose(
        intent.predict_proba(intent_features),
        intent.model_.predict_proba(intent_features) @ intent.fine_to_coarse_,
        rtol=1e-9,
        atol=1e-12,
    )
    expected_risks = np.column_stack([head.predict_proba(risk_features)[:, 1] for head in small_model.risk_head.heads_])
    np.testing.assert_allclose(
        small_model.risk_head.predict_proba(risk_features), expected_risks, rtol=1e-9, atol=1e-12
    )


def test_saved_model_round_trip(small_model: TurnModel, onnx_encoder: TextEncoder, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    small_model.save(path)
    loaded = TurnClassifier.load(path, encoder=onnx_encoder)
    original = TurnClassifier(small_model, onnx_encoder)
    turns = [Conversation(latest_user_text=text) for text in PARITY_TEXTS]
    assert loaded.classify_batch(turns) == original.classify_batch(turns)
    assert loaded.model.metadata == small_model.metadata


def test_stakes_blend_the_head_with_the_nearest_examples_vote(
    small_model: TurnModel, onnx_encoder: TextEncoder, tmp_path: Path
) -> None:
    """Stakes = (1 - w) * head + w * vote, the vote kept through save and load; a model file written before the
    vote existed (no labels, no weight) loads with the head's stakes alone."""
    assert small_model.neighbour_stakes_weight == TrainingSettings().neighbour_stakes_weight > 0
    assert small_model.examples.stakes is not None and set(small_model.examples.stakes) == {-1, 0, 1}
    texts = ["someone took money out of my account", "what time do you open on saturday", "my chest hurts"]
    turns, user, dense = dense_features(small_model, onnx_encoder, texts)
    served = small_model.serving()
    head = served.stakes_head.predict_proba(  # type: ignore[union-attr]
        SplitFeatures(dense, served.lexical.transform(texts), served.stakes_lexical_weight)
    )[:, 0]
    vote = served.examples.stakes_vote(served.examples.similarities(user), served.neighbour_stakes_k)
    assert vote is not None
    weight = served.neighbour_stakes_weight
    classifier = TurnClassifier(small_model, onnx_encoder)
    np.testing.assert_allclose(
        classifier._head_stakes(classifier._features(turns)), (1 - weight) * head + weight * vote, rtol=1e-9
    )

    path = tmp_path / "model.npz"
    small_model.save(path)
    loaded = TurnModel.load(path)
    assert loaded.neighbour_stakes_weight == weight and loaded.neighbour_stakes_k == small_model.neighbour_stakes_k
    np.testing.assert_array_equal(loaded.examples.stakes, small_model.examples.stakes)  # type: ignore[arg-type]
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files if name != "examples.stakes"}
    header = json.loads(arrays["header"].tobytes())
    del header["weights"]["neighbour_stakes"], header["neighbour_stakes_k"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    older = tmp_path / "older.npz"
    with older.open("wb") as file:
        np.savez(file, **arrays)
    head_only = TurnClassifier(TurnModel.load(older), onnx_encoder)
    np.testing.assert_allclose(head_only._head_stakes(head_only._features(turns)), head, rtol=1e-9)


def test_saved_arrays_compute_what_scikit_learn_computes(
    small_model: TurnModel, onnx_encoder: TextEncoder, frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The saved model (arrays, no scikit-learn) against the fitted estimators, on 300 turns of the written set."""
    path = tmp_path / "model.npz"
    small_model.save(path)
    loaded = TurnModel.load(path)
    assert isinstance(loaded.lexical, CharNgramTfidf)
    texts = [turn.latest_user_text for turn in conversations(frame.sample(300, random_state=5))]
    _, _, dense = dense_features(small_model, onnx_encoder, texts)
    np.testing.assert_allclose(
        loaded.lexical.transform(texts).toarray(), small_model.lexical.transform(texts).toarray(), atol=1e-12
    )
    served = loaded.lexical.transform(texts)
    fitted = small_model.lexical.transform(texts)
    intent_weight = small_model.intent_lexical_weight
    np.testing.assert_allclose(
        loaded.intent_head.predict_proba(SplitFeatures(dense, served, intent_weight)),
        small_model.intent_head.model_.predict_proba(with_lexical(dense, fitted, intent_weight))
        @ small_model.intent_head.fine_to_coarse_,
        rtol=1e-9,
        atol=1e-12,
    )
    for name in ("risk", "stakes"):
        weight = getattr(small_model, f"{name}_lexical_weight")
        fitted_heads = getattr(small_model, f"{name}_head").heads_
        expected = np.column_stack(
            [head.predict_proba(with_lexical(dense, fitted, weight))[:, 1] for head in fitted_heads]
        )
        np.testing.assert_allclose(
            getattr(loaded, f"{name}_head").predict_proba(SplitFeatures(dense, served, weight)),
            expected,
            rtol=1e-9,
            atol=1e-12,
        )


def test_load_refuses_pickles_and_other_format_versions(small_model: TurnModel, tmp_path: Path) -> None:
    pickled = tmp_path / "model.joblib"
    pickled.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelFormatError):
        TurnModel.load(pickled)
    newer = tmp_path / "newer.npz"
    small_model.save(newer)
    with np.load(newer) as stored:
        arrays = {name: stored[name] for name in stored.files}
    header = json.loads(arrays["header"].tobytes())
    header["format_version"] = MODEL_FORMAT_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with newer.open("wb") as file:
        np.savez(file, **arrays)
    with pytest.raises(ModelFormatError, match="v2"):
        TurnModel.load(newer)


def test_shipped_encoder_is_checked_against_its_manifest(tmp_path: Path) -> None:
    manifest, onnx_path, tokenizer_path = shipped_encoder()
    # The manifest names the weights it was built from (the torch runtime's id, without loading torch).
    assert manifest.encoder_id == encoder_id_for(file_sha256(model_dir() / "model.safetensors"))
    copy = tmp_path / "models"
    copy.mkdir()
    for path in (onnx_path, tokenizer_path, MODELS_DIR / ENCODER_MANIFEST):
        shutil.copyfile(path, copy / path.name)
    assert shipped_encoder(copy)[0] == manifest
    with (copy / onnx_path.name).open("r+b") as tampered:
        tampered.seek(-1, 2)
        last = tampered.read(1)
        tampered.seek(-1, 2)
        tampered.write(bytes([last[0] ^ 1]))
    with pytest.raises(EncoderIntegrityError, match="sha256"):
        shipped_encoder(copy)


def test_load_refuses_a_model_of_another_encoder(small_model: TurnModel, onnx_encoder: TextEncoder) -> None:
    foreign = TurnModel(
        metadata=small_model.metadata.model_copy(update={"encoder_id": "some/other-encoder@sha256:0"}),
        intent_head=small_model.intent_head,
        risk_head=small_model.risk_head,
        examples=small_model.examples,
    )
    with pytest.raises(EncoderMismatchError):
        TurnClassifier(foreign, onnx_encoder)


def test_default_model_faq_is_low_stakes(default_classifier: TurnClassifier) -> None:
    result = default_classifier.classify(Conversation(latest_user_text="what time do you open tomorrow"))
    assert result.intent == "faq" and not result.high_stakes


def test_default_model_dispute_is_payment_transaction(default_classifier: TurnClassifier) -> None:
    result = default_classifier.classify(
        Conversation(latest_user_text="I want to dispute a 300 dollar charge on my card")
    )
    assert result.intent == "transaction"
    assert result.risks["payment"] >= 0.5 and result.high_stakes


def test_default_model_chest_pain_is_an_emergency(default_classifier: TurnClassifier) -> None:
    result = default_classifier.classify(Conversation(latest_user_text="my chest hurts and my left arm is numb"))
    assert result.risks["emergency"] == 1.0 and result.high_stakes
    assert "chest_pain" in result.detectors and "detector:chest_pain(en)" in result.reasons


def test_default_model_reads_card_number_in_context(default_classifier: TurnClassifier) -> None:
    result = default_classifier.classify(
        Conversation(latest_user_text="4111 1111 1111 1111", previous_assistant_text="can I have your card number")
    )
    assert result.risks["payment"] == 1.0 and result.high_stakes
    assert "detector:card_number(luhn)" in result.reasons


def test_a_callers_stated_act_raises_stakes_where_they_said_it_not_in_a_system_prompt(
    default_classifier: TurnClassifier,
) -> None:
    # The head alone puts this report under the threshold (0.21 when it is read as an instruction sentence).
    said = "My top-up was declined"
    latest = default_classifier.classify(Conversation(latest_user_text=said))
    assert latest.high_stakes and "stakes:cue:money_problem" in latest.reasons
    earlier = default_classifier.classify(
        Conversation.from_messages(
            [
                {"role": "user", "content": said},
                {"role": "assistant", "content": "Let me check."},
                {"role": "user", "content": "ok thanks"},
            ]
        )
    )
    assert earlier.high_stakes and "stakes:cue:money_problem" in earlier.reasons
    assert "stakes:earlier_user_turn(0.90)" in earlier.reasons
    described = default_classifier.classify(
        Conversation.from_messages(
            [{"role": "system", "content": f"Callers often say: {said}"}, {"role": "user", "content": "ok thanks"}]
        )
    )
    assert not described.high_stakes and not any(reason.startswith("stakes:cue") for reason in described.reasons)


def test_per_risk_thresholds_and_the_stakes_threshold(default_classifier: TurnClassifier) -> None:
    strict = TurnClassifier(
        default_classifier.model, default_classifier.encoder, thresholds={"payment": 1.01}, stakes_threshold=1.01
    )
    turn = Conversation(latest_user_text="I want to dispute a 300 dollar charge on my card")
    assert strict.threshold("payment") == 1.01 and strict.threshold("medical") == 0.5
    assert default_classifier.classify(turn).high_stakes
    result = strict.classify(turn)
    # High stakes follow the stakes judgement under the classifier's stakes threshold, not the risk topics.
    assert result.stakes == default_classifier.classify(turn).stakes and not result.high_stakes


async def test_batching_matches_classify_and_keeps_the_loop_free(default_classifier: TurnClassifier) -> None:
    turns = [Conversation(latest_user_text=f"question number {i}: when is my order {i} arriving") for i in range(40)]
    turns += [Conversation(latest_user_text=text) for text in PARITY_TEXTS]
    expected = default_classifier.classify_batch(turns)
    batching = BatchingClassifier(default_classifier, max_batch=8, max_wait_ms=2.0)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    results = await asyncio.gather(*(batching.classify(turn) for turn in turns))
    elapsed = time.perf_counter() - started
    stop.set()
    await ticking
    assert results == expected
    # Inference ran on the worker thread: the loop kept ticking through it (about one tick per ms of work).
    # A blocked loop would tick about once per batch; a free one every few ms even on a busy machine.
    assert ticks >= max(10, int(elapsed * 1000 * 0.1)), (ticks, elapsed)
    cached = await batching.classify(Conversation(latest_user_text="  WHAT time do you OPEN tomorrow "))
    assert isinstance(cached, Classification)
    assert await batching.classify(Conversation(latest_user_text="what time do you open tomorrow")) == cached
    await batching.aclose()
    with pytest.raises(RuntimeError):
        await batching.classify(turns[0])


async def test_batching_reports_failures_to_every_caller(default_classifier: TurnClassifier) -> None:
    class Failing(TurnClassifier):
        def classify_batch(self, conversations: list[Conversation]) -> list[Classification]:
            raise ValueError("boom")

    failing = Failing(default_classifier.model, default_classifier.encoder)
    batching = BatchingClassifier(failing, max_batch=4)
    outcomes = await asyncio.gather(
        *(batching.classify(Conversation(latest_user_text=str(i))) for i in range(6)), return_exceptions=True
    )
    assert all(isinstance(outcome, ValueError) for outcome in outcomes)
    await batching.aclose()


def test_train_and_eval_commands(tmp_path: Path) -> None:
    frame = load_turns(DATA)
    tiny = frame.groupby("intent").sample(14, random_state=3)
    data = tmp_path / "tiny.csv"
    tiny.to_csv(data, index=False)
    model = tmp_path / "tiny.npz"
    runner = CliRunner()
    trained = runner.invoke(train_command, ["--data", str(data), "--out", str(model), "--seed", "5"])
    assert trained.exit_code == 0, trained.output
    assert "macro-F1" in trained.stdout and "high-risk recall" in trained.stdout and model.exists()
    evaluated = runner.invoke(eval_command, ["--model", str(model), "--data", str(data), "--split", "test"])
    assert evaluated.exit_code == 0, evaluated.output
    # The eval command rebuilds the model's own held-out split, so it reports the same numbers as training.
    assert trained.stdout.split("held-out", 1)[1].split("\n", 1)[1] == evaluated.stdout


def test_int8_onnx_matches_fp32_sentence_transformers(onnx_encoder: TextEncoder, torch_encoder: TextEncoder) -> None:
    quantised = onnx_encoder.encode(PARITY_TEXTS)
    reference = torch_encoder.encode(PARITY_TEXTS)
    assert quantised.shape == reference.shape == (len(PARITY_TEXTS), EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    cosines = (quantised * reference).sum(axis=1)
    assert cosines.min() >= 0.99, dict(zip(PARITY_TEXTS, cosines.round(4), strict=True))


def test_onnx_vectors_do_not_depend_on_batch_neighbours(onnx_encoder: TextEncoder) -> None:
    together = onnx_encoder.encode(PARITY_TEXTS)
    alone = np.vstack([onnx_encoder.encode([text]) for text in PARITY_TEXTS])
    np.testing.assert_array_equal(together, alone)
