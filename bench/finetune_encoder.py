"""SetFit-style contrastive fine-tune of the MiniLM encoder on contract labels (the third learner of issue 12).

Pairs of training turns are sampled (seeded): two turns with the same contract label (high-stakes vs small-safe)
and the same intent are pulled together (target 1), turns of different contracts pushed apart (target 0), with
sentence-transformers' CosineSimilarityLoss, on CPU, for one pass over ``--pairs`` pairs. The sources named with
``--hold-out`` are left out, so the learner comparison can test the result on them.

    python -m bench.finetune_encoder --hold-out banking77 --hold-out mts_dialog --out /tmp/finetuned
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import click

from classifiers.contract import HIGH_STAKES, SMALL_SAFE, written_contract
from classifiers.corpus import SOURCES, load_corpus
from classifiers.dataset import load_turns, risk_sets
from classifiers.embeddings import model_dir
from classifiers.folding import fold_disguises

WRITTEN = Path(__file__).resolve().parent.parent / "classifiers" / "data" / "utterances.csv"


def labelled_texts(hold_out: Sequence[str], corpus_dir: Path | None) -> list[tuple[str, str, str]]:
    """(folded text, contract, intent) of every written and public turn outside the held-out sources."""
    rows = load_corpus(directory=corpus_dir) if corpus_dir else load_corpus()
    found = [(row.text, row.contract, row.intent) for row in rows if row.source not in hold_out]
    written = load_turns(WRITTEN)
    found += [
        (text, written_contract(intent, risks), intent)
        for text, intent, risks in zip(written["text"], written["intent"], risk_sets(written), strict=True)
    ]
    return [(fold_disguises(text), contract, intent) for text, contract, intent in found if contract != "standard"]


def sample_pairs(texts: list[tuple[str, str, str]], count: int, seed: int) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    by_label: dict[tuple[str, str], list[str]] = defaultdict(list)
    for text, contract, intent in texts:
        by_label[(contract, intent)].append(text)
    labels = [label for label, members in by_label.items() if len(members) >= 2]
    by_contract = {c: [label for label in labels if label[0] == c] for c in (HIGH_STAKES, SMALL_SAFE)}
    pairs = []
    for index in range(count):
        if index % 2 == 0:  # same contract and intent: similar
            label = rng.choice(labels)
            first, second = rng.sample(by_label[label], 2)
            pairs.append((first, second, 1.0))
        else:  # one high-stakes, one small-safe turn: dissimilar
            high = by_label[rng.choice(by_contract[HIGH_STAKES])]
            safe = by_label[rng.choice(by_contract[SMALL_SAFE])]
            pairs.append((rng.choice(high), rng.choice(safe), 0.0))
    return pairs


@click.command()
@click.option("--hold-out", "hold_out", multiple=True, type=click.Choice(SOURCES))
@click.option("--pairs", default=6000, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seed", default=13, show_default=True)
@click.option("--corpus-dir", type=click.Path(path_type=Path), default=None)
@click.option("--out", required=True, type=click.Path(path_type=Path))
def main(hold_out: Sequence[str], pairs: int, batch_size: int, seed: int, corpus_dir: Path | None, out: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    pairs_found = sample_pairs(labelled_texts(hold_out, corpus_dir), pairs, seed)
    model = SentenceTransformer(str(model_dir()), device="cpu")
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5)
    order = random.Random(seed).sample(range(len(pairs_found)), len(pairs_found))
    started = time.perf_counter()
    # CosineSimilarityLoss by hand (sentence-transformers' fit() needs the datasets package).
    for start in range(0, len(order), batch_size):
        batch = [pairs_found[i] for i in order[start : start + batch_size]]
        left = model(model.tokenize([a for a, _, _ in batch]))["sentence_embedding"]
        right = model(model.tokenize([b for _, b, _ in batch]))["sentence_embedding"]
        target = torch.tensor([label for _, _, label in batch])
        loss = torch.nn.functional.mse_loss(torch.cosine_similarity(left, right), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.save(str(out))
    click.echo(f"fine-tuned on {len(pairs_found)} pairs in {time.perf_counter() - started:.0f} s, saved to {out}")


if __name__ == "__main__":
    main()
