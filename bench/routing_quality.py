"""Routing quality on public service data never trained on (leave-one-source-out), through the gateway's own
decision; writes ``bench/results/routing.{json,md}``. Same as ``switchboard eval --routing``.

    python bench/routing_quality.py                 # ~15 min on a quiet 2-core machine
    python bench/routing_quality.py --before-only   # the shipped model only, ~2 min
    python bench/routing_quality.py --source sgd --source star --eval-calls 20

What is measured and how: ``classifiers/routing_quality.py``.
"""

from __future__ import annotations

import click

from classifiers.routing_cli import routing_options, run_from_options


@click.command()
@routing_options
def main(**options: object) -> None:
    """Measure routing (small_leak, small_capture, frontier share, savings; call level) per public source."""
    run_from_options(**options)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
