"""Convert a turn model pickled by an earlier Switchboard (``.joblib``) into the array format the gateway loads.

Unpickling runs code from the file, so only convert files you trust (ones you trained yourself). Needs the
``train`` extra (scikit-learn, joblib), unlike loading the result:

    python -m classifiers.convert old-model.joblib classifiers/models/default.npz
"""

from __future__ import annotations

from pathlib import Path

import click


def convert(source: Path, target: Path) -> None:
    import joblib

    from classifiers.pipeline import TurnModel

    model = joblib.load(source)
    if not isinstance(model, TurnModel):
        raise click.ClickException(f"{source} holds a {type(model).__name__}, not a TurnModel")
    model.save(target)


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
def main(source: Path, target: Path) -> None:
    """Read the pickled model SOURCE and write it to TARGET as arrays (.npz)."""
    convert(source, target)
    click.echo(f"wrote {target}")


if __name__ == "__main__":
    main()
