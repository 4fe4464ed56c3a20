"""The ``switchboard`` command."""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from router.config import load_config
from router.logs import configure_logging
from router.policy.store import load_policy
from router.yamlsource import ConfigFileError

# Subcommands imported only when run: training, reports and replays need the ``train``/``reports`` extras, and
# ``serve`` must start (fast) in a base install without importing them.
LAZY_COMMANDS = {
    "simulate": "router.simulator.cli:simulate",
    "ledger": "router.accounting.cli:ledger",
    "report": "router.accounting.cli:report",
    "train": "classifiers.cli:train_command",
    "eval": "classifiers.cli:eval_command",
    "keys": "router.keys_cli:keys",
    "catalog": "classifiers.catalog_cli:catalog",
    "traffic": "router.traffic.cli:traffic",
    "replay": "router.traffic.cli:replay_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
        try:
            command: click.Command = getattr(importlib.import_module(module), attribute)
        except ModuleNotFoundError as missing:
            return _needs_extra(cmd_name, str(missing.name))
        return command


def _needs_extra(name: str, module: str) -> click.Command:
    message = f"`switchboard {name}` needs {module}: pip install 'switchboard[train,reports]'"

    def refuse(**_: Any) -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=refuse,
        help=message,
        short_help="(needs the train/reports extras)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Switchboard: an OpenAI-compatible gateway that routes each turn to the cheapest safe model."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Gateway YAML (SWITCHBOARD_CONFIG).")
@click.option("--policy", type=click.Path(path_type=Path), help="Policy YAML overriding the config's.")
@click.option("--host", help="Bind address (SWITCHBOARD_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (SWITCHBOARD_PORT, default 4000).")
@click.option("--workers", type=int, help="uvicorn worker processes (SWITCHBOARD_WORKERS, default 1).")
def serve(
    config_path: Path | None, policy: Path | None, host: str | None, port: int | None, workers: int | None
) -> None:
    """Run the gateway. Without a config it serves the embedded default on the built-in provider simulator.

    A port already in use is reported before anything loads; one "Switchboard ready on ..." line (stdout and the
    JSON log) says when /readyz answers, and how long the start took.
    """
    import uvicorn

    from router.server import server_options
    from router.settings import Settings
    from router.startup import PortUnavailable, ReadyAnnouncer, check_port_free

    for name, value in (
        ("CONFIG", config_path),
        ("POLICY", policy),
        ("HOST", host),
        ("PORT", port),
        ("WORKERS", workers),
    ):
        if value is not None:
            os.environ[f"SWITCHBOARD_{name}"] = str(value)
    settings = Settings()
    log_config = configure_logging(settings.log_level)
    try:
        check_port_free(settings.host, settings.port)
    except PortUnavailable as exc:
        logging.getLogger("switchboard").error(str(exc), extra={"event": "port_unavailable"})
        sys.exit(1)
    try:
        loaded = load_config(settings.config)
        load_policy(loaded.policy_path(settings.policy), loaded.config)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker writes its metrics to files here and /metrics sums them; stale files would count twice.
        metrics_dir = settings.data_dir / "prometheus-multiproc"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    logging.getLogger("switchboard").info(
        "starting on %s:%d (config: %s)", settings.host, settings.port, loaded.source, extra={"event": "starting"}
    )
    ReadyAnnouncer(settings.host, settings.port).start()
    uvicorn.run(
        "router.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config,
        access_log=False,
        loop="auto",
        **server_options(settings),
    )


@main.group()
def policy() -> None:
    """Work with routing policies."""


@policy.command("validate")
@click.argument("policy_file", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Gateway YAML it must fit.")
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="Classifier whose labels it may name.")
def validate_policy(policy_file: Path, config_path: Path | None, model_path: Path | None) -> None:
    """Check a policy: schema, unknown tiers/deployments/intents/risks, unreachable rules, floors."""
    from classifiers import TurnClassifier
    from router.classification import catalog_loader, vocabulary_of

    classifier = TurnClassifier.load(model_path)
    try:
        config = load_config(config_path).config
        loaded = load_policy(policy_file, config, vocabulary_of(classifier), catalog_loader(classifier, config.tiers))
    except ConfigFileError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    click.echo(f"valid: {loaded.version} ({len(loaded.policy.rules)} rules)")
