"""Command-line options of the routing-quality run, shared by ``switchboard eval --routing`` and
``python bench/routing_quality.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from classifiers.corpus import SOURCES

DEFAULT_OUT_DIR = Path("bench/results")


def routing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=DEFAULT_OUT_DIR,
            show_default=True,
            help="Where routing.json and routing.md go.",
        ),
        click.option("--eval-turns", type=click.IntRange(1), default=None, help="Turns per single-turn source."),
        click.option("--eval-calls", type=click.IntRange(1), default=None, help="Calls per multi-turn source."),
        click.option("--train-turns", type=click.IntRange(1), default=None, help="Training turns per source."),
        click.option("--seed", type=int, default=None, help="Sampling seed."),
        click.option(
            "--source",
            "sources",
            multiple=True,
            type=click.Choice(SOURCES),
            help="Measure only these sources (repeatable; default all).",
        ),
        click.option(
            "--held-out",
            "held_out",
            multiple=True,
            type=click.Choice(SOURCES),
            help="Measure only these folds, each still trained on every other source (repeatable; default all).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(1),
            default=1,
            show_default=True,
            help="Folds trained at once, each in its own process (same figures, more memory).",
        ),
        click.option("--before-only", is_flag=True, help="Only the shipped model; no leave-one-source-out folds."),
        click.option(
            "--policy",
            "policy_path",
            type=click.Path(path_type=Path),
            default=None,
            help="Policy file or shipped policy name (default: the config's).",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path),
            default=None,
            help="Gateway YAML (default: the embedded default gateway).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_from_options(
    out_dir: Path,
    eval_turns: int | None,
    eval_calls: int | None,
    train_turns: int | None,
    seed: int | None,
    sources: tuple[str, ...],
    held_out: tuple[str, ...],
    workers: int,
    before_only: bool,
    policy_path: Path | None,
    config_path: Path | None,
) -> None:
    from classifiers.routing_quality import RoutingSettings, render_markdown, run_routing_quality, write_results

    given = {"eval_turns": eval_turns, "eval_calls": eval_calls, "train_turns": train_turns, "seed": seed}
    settings = RoutingSettings(
        **{name: value for name, value in given.items() if value is not None},
        sources=sources or SOURCES,
        held_out=held_out,
        workers=workers,
        loso=not before_only,
    )
    run = run_routing_quality(
        settings,
        config_path=config_path,
        policy_path=policy_path,
        progress=lambda message: click.echo(message, err=True),
    )
    json_path, markdown_path = write_results(run, out_dir)
    click.echo(render_markdown(run))
    click.echo(f"wrote {json_path} and {markdown_path}")
