"""Learner C of issue 12 measured by the routing-quality harness: the encoder fine-tuned contrastively
(``classifiers.encoder_finetune``), then today's heads fitted on it exactly as ``train_for_fold`` fits them on the
frozen encoder.

``finetuned_learner`` plugs into the harness, so a fold fine-tunes only on that fold's training rows (the
written set plus the other sources' sampled turns) and is measured on the held-out source by the gateway's own
decision:

    python -m bench.finetune_encoder --held-out banking77 --held-out hint3 --pairs 6000 --out /tmp/ft-run
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import click

from classifiers.corpus import SOURCES, CorpusRow
from classifiers.embeddings import CachingEncoder, TextEncoder, TorchEncoder, weights_encoder_id
from classifiers.encoder_finetune import DEFAULT_PAIRS, DEFAULT_SEED, finetune, labelled_texts, sample_pairs
from classifiers.pipeline import TurnClassifier
from classifiers.routing_quality import (
    BatchClassifier,
    RoutingSettings,
    fold_frame,
    run_routing_quality,
    write_results,
)
from classifiers.train import TrainingSettings, fit_model


def finetuned_learner(
    rows: Sequence[CorpusRow], _frozen: TextEncoder, *, pairs: int, seed: int, work_dir: Path
) -> BatchClassifier:
    """A harness learner: fine-tune on this fold's rows, then fit today's heads on the fine-tuned encoder."""
    frame = fold_frame(rows)
    held_out = sorted(set(SOURCES) - {row.source for row in rows}) or ["none"]
    out = work_dir / f"without-{'-'.join(held_out)}-{pairs}-{seed}"
    if not (out / "config.json").exists():
        about = {"held_out": held_out, "rows": len(frame)}
        seconds = finetune(sample_pairs(labelled_texts(frame), pairs, seed), out, seed=seed, about=about)
        click.echo(f"fine-tuned without {held_out} on {pairs} pairs in {seconds:.0f} s", err=True)
    encoder = CachingEncoder(TorchEncoder(out, encoder_id=weights_encoder_id(out), threads=2))
    model = fit_model(frame, encoder, TrainingSettings(test_size=0.0))
    return TurnClassifier(model, encoder)


@click.command()
@click.option("--held-out", "held_out", multiple=True, type=click.Choice(SOURCES), required=True)
@click.option("--pairs", default=DEFAULT_PAIRS, show_default=True)
@click.option("--seed", default=DEFAULT_SEED, show_default=True)
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("/tmp/finetuned-encoders"))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def main(held_out: Sequence[str], pairs: int, seed: int, work_dir: Path, out: Path) -> None:
    """Measure learner C on the named folds with the routing-quality harness (same samples as the full run)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    learner = partial(finetuned_learner, pairs=pairs, seed=seed, work_dir=work_dir)
    run = run_routing_quality(
        RoutingSettings(held_out=tuple(held_out)), learner=learner, progress=lambda m: click.echo(m, err=True)
    )
    for path in write_results(run, out):
        click.echo(path)


if __name__ == "__main__":
    main()
