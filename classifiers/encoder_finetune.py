"""SetFit-style contrastive fine-tune of the MiniLM encoder on the routing contract (issue 12, learner C).

Frozen MiniLM puts "why is my transfer not arriving?" near "how long do transfers take?": the same topic, opposite
stakes. Fine-tuning pulls turns with the same contract label and intent together and pushes high-stakes turns away
from small-safe ones, so the heads fitted on top (``classifiers.train``) separate stakes on sources they never saw
(the comparison and its figures: ``docs/learner-comparison.md``).

Recipe (``FINETUNE_RECIPE``): seeded pairs of training turns, half similar (same contract and intent, target 1)
and half dissimilar (one high-stakes and one small-safe turn, target 0); cosine-similarity loss (MSE between the
pair's cosine and its target), AdamW at 2e-5, batches of 32, one pass, on CPU with two threads. Standard turns,
which the contract leaves to the policy, are not paired. The result is exported to the shipped int8 ONNX file by
``classifiers.encoder_build --weights``. Training-time only (``train`` extra): the gateway never imports this.

    python -m classifiers.encoder_finetune --out /tmp/minilm-stakes      # ~5-10 min on 2 cores
    python -m classifiers.encoder_build --weights /tmp/minilm-stakes
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pandas as pd

from classifiers.contract import HIGH_STAKES, SMALL_SAFE
from classifiers.dataset import load_turns
from classifiers.embeddings import FINETUNE_RECORD, model_dir, offline, weights_encoder_id
from classifiers.folding import fold_disguises
from classifiers.train import SHIPPED_CORPUS_PER_SOURCE, corpus_sample, file_sha256, stakes_targets

DEFAULT_PAIRS = 6000
DEFAULT_SEED = 13
LEARNING_RATE = 2e-5
BATCH_SIZE = 32
THREADS = 2
FINETUNE_RECIPE = 1

Pair = tuple[str, str, float]


def labelled_texts(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(folded text, contract, intent) of the frame's high-stakes and small-safe turns."""
    contracts = {1: HIGH_STAKES, 0: SMALL_SAFE}
    return [
        (fold_disguises(text), contracts[int(target)], intent)
        for text, intent, target in zip(frame["text"], frame["intent"], stakes_targets(frame), strict=True)
        if int(target) in contracts
    ]


def sample_pairs(texts: Sequence[tuple[str, str, str]], count: int, seed: int) -> list[Pair]:
    """``count`` seeded pairs, alternately similar and dissimilar."""
    rng = random.Random(seed)
    by_label: dict[tuple[str, str], list[str]] = defaultdict(list)
    for text, contract, intent in texts:
        by_label[(contract, intent)].append(text)
    labels = sorted(label for label, members in by_label.items() if len(members) >= 2)
    by_contract = {c: [label for label in labels if label[0] == c] for c in (HIGH_STAKES, SMALL_SAFE)}
    if not labels or not all(by_contract.values()):
        raise ValueError("pairs need at least two turns of one label and turns of both contracts")
    pairs = []
    for index in range(count):
        if index % 2 == 0:
            first, second = rng.sample(by_label[rng.choice(labels)], 2)
            pairs.append((first, second, 1.0))
        else:
            high = by_label[rng.choice(by_contract[HIGH_STAKES])]
            safe = by_label[rng.choice(by_contract[SMALL_SAFE])]
            pairs.append((rng.choice(high), rng.choice(safe), 0.0))
    return pairs


def finetune(
    pairs: Sequence[Pair], out: Path, *, seed: int, base: Path | None = None, about: dict[str, Any] | None = None
) -> float:
    """Fine-tune ``base`` (the shipped MiniLM weights) on ``pairs`` and save them to ``out`` with their record
    (``FINETUNE_RECORD``: base, recipe, ``about`` the data); returns the seconds the training took."""
    offline()
    base = base or model_dir()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)
    model = SentenceTransformer(str(base), device="cpu")
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    order = random.Random(seed).sample(range(len(pairs)), len(pairs))
    started = time.perf_counter()
    # The loss by hand: sentence-transformers' fit() needs the datasets package, for a ten-line loop.
    for start in range(0, len(order), BATCH_SIZE):
        batch = [pairs[i] for i in order[start : start + BATCH_SIZE]]
        left = model(model.preprocess([a for a, _, _ in batch]))["sentence_embedding"]
        right = model(model.preprocess([b for _, b, _ in batch]))["sentence_embedding"]
        target = torch.tensor([label for _, _, label in batch])
        loss = torch.nn.functional.mse_loss(torch.cosine_similarity(left, right), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - started
    model.eval()
    model.save(str(out))
    record = {
        "base_encoder_id": weights_encoder_id(base),
        "recipe": FINETUNE_RECIPE,
        "pairs": len(pairs),
        "seed": seed,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "torch": torch.__version__,
        **(about or {}),
    }
    (out / FINETUNE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return seconds


def shipped_frame(data_path: Path, corpus_per_source: int, seed: int) -> pd.DataFrame:
    """The rows the shipped heads are trained on (``switchboard train --test-size 0 --corpus-per-source N``)."""
    from classifiers.corpus import load_corpus
    from classifiers.routing_quality import training_frame

    frame = load_turns(data_path)
    if corpus_per_source <= 0:
        return frame
    rows = corpus_sample(load_corpus(), corpus_per_source, seed)
    return pd.concat([frame, training_frame(rows)], ignore_index=True)


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path(__file__).resolve().parent / "data" / "utterances.csv",
    show_default=True,
)
@click.option("--corpus-per-source", default=SHIPPED_CORPUS_PER_SOURCE, show_default=True)
@click.option("--pairs", default=DEFAULT_PAIRS, show_default=True)
@click.option("--seed", default=DEFAULT_SEED, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def main(data_path: Path, corpus_per_source: int, pairs: int, seed: int, out: Path) -> None:
    """Fine-tune the encoder on the shipped training rows; export it with ``classifiers.encoder_build``."""
    frame = shipped_frame(data_path, corpus_per_source, seed)
    about = {"data_sha256": file_sha256(data_path), "corpus_per_source": corpus_per_source, "rows": len(frame)}
    seconds = finetune(sample_pairs(labelled_texts(frame), pairs, seed), out, seed=seed, about=about)
    click.echo(f"fine-tuned on {pairs} pairs of {len(frame)} rows in {seconds:.0f} s, saved to {out}")


if __name__ == "__main__":
    main()
