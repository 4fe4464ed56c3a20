"""Click commands ``train`` and ``eval``; registered in the ``switchboard`` group by the router's CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from classifiers.dataset import load_turns, split_turns
from classifiers.embeddings import EncoderRuntime, load_encoder
from classifiers.evaluate import evaluate, format_report
from classifiers.pipeline import TurnClassifier, TurnModel
from classifiers.routing_cli import routing_options, run_from_options
from classifiers.train import TrainingSettings, corpus_sample, train

_RUNTIME = click.Choice([runtime.value for runtime in EncoderRuntime])


@click.command("train")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", default=13, show_default=True, help="Seed of the split and of the augmentation.")
@click.option(
    "--test-size", default=0.2, show_default=True, type=click.FloatRange(0.0, 0.9), help="0 trains on every row."
)
@click.option("--runtime", type=_RUNTIME, default=None, help="Embedding runtime (default: $SWITCHBOARD_EMBEDDINGS).")
@click.option(
    "--corpus-per-source",
    default=0,
    show_default=True,
    help="Also train on the public corpus (classifiers/data/public), at most this many rows per source.",
)
def train_command(
    data_path: Path, out_path: Path, seed: int, test_size: float, runtime: str | None, corpus_per_source: int
) -> None:
    """Train the turn classifier on a labelled CSV (and the public corpus) and print held-out metrics."""
    rows = []
    if corpus_per_source > 0:
        from classifiers.corpus import load_corpus

        rows = corpus_sample(load_corpus(), corpus_per_source, seed)
    settings = TrainingSettings(seed=seed, test_size=test_size)
    result = train(data_path, out_path, load_encoder(runtime), settings, corpus_rows=rows)
    click.echo(f"trained on {result.training_rows} rows ({len(rows)} public), wrote {result.model_path}")
    if result.held_out is not None:
        click.echo(f"held-out ({result.held_out_rows} rows, seed {seed}):")
        click.echo(format_report(result.held_out))


@click.command("eval")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--split",
    type=click.Choice(["test", "all"]),
    default="test",
    show_default=True,
    help="test: the held-out rows of the model's own seeded split.",
)
@click.option("--runtime", type=_RUNTIME, default=None, help="Embedding runtime (default: $SWITCHBOARD_EMBEDDINGS).")
@click.option(
    "--routing",
    is_flag=True,
    help="Instead: route the public corpus leave-one-source-out through the gateway's decision (options below).",
)
@routing_options
def eval_command(
    model_path: Path | None,
    data_path: Path | None,
    split: str,
    runtime: str | None,
    routing: bool,
    **routing_settings: Any,
) -> None:
    """Print per-label scores, the intent confusion matrix, high-risk recall and small-safe precision.

    With --routing: small_leak, small_capture, frontier share and savings per public source and per call,
    leave-one-source-out, written to routing.json/routing.md (see bench/routing_quality.py).
    """
    if routing:
        run_from_options(**routing_settings)
        return
    if model_path is None or data_path is None:
        raise click.UsageError("--model and --data are required (or use --routing)")
    model = TurnModel.load(model_path)
    frame = load_turns(data_path)
    if split == "test":
        if model.metadata.test_size <= 0:
            raise click.UsageError("this model was trained on every row; it has no held-out split (use --split all)")
        _, frame = split_turns(frame, model.metadata.test_size, model.metadata.seed)
    click.echo(format_report(evaluate(TurnClassifier(model, load_encoder(runtime)), frame)))
