"""``switchboard simulate``: serve the provider simulator in the foreground."""

from __future__ import annotations

import os
from pathlib import Path

import click
import uvicorn

from router.simulator.app import SimulatorApp, create_simulator_app
from router.simulator.settings import WILDCARD_MODEL, ModelBehaviour, SimulatorSettings

# Worker processes build their own app, so the settings path reaches them through the environment.
CONFIG_ENVIRONMENT_VARIABLE = "SWITCHBOARD_SIMULATOR_CONFIG"


def load_settings(config_path: str | Path | None) -> SimulatorSettings:
    """Settings from a YAML file, or the realistic defaults without one."""
    return SimulatorSettings.from_yaml(config_path) if config_path else SimulatorSettings.default()


def app_from_environment() -> SimulatorApp:
    """uvicorn factory: the app for the settings file named by ``SWITCHBOARD_SIMULATOR_CONFIG``."""
    return create_simulator_app(load_settings(os.environ.get(CONFIG_ENVIRONMENT_VARIABLE)))


def describe_behaviour(behaviour: ModelBehaviour) -> str:
    pace = f"{behaviour.tokens_per_second:g} tok/s" if behaviour.tokens_per_second else "instant"
    faults = (
        f"429 {behaviour.rate_429:.0%}, 500 {behaviour.rate_500:.0%}, "
        f"timeout {behaviour.rate_timeout:.0%}, drop {behaviour.rate_drop:.0%}, 401 {behaviour.rate_401:.0%}"
    )
    return (
        f"ttft {behaviour.ttft_ms:g} ms, {pace}, {behaviour.output_tokens} tokens, "
        f"cached {behaviour.cached_prompt_ratio:.0%}; faults: {faults}"
    )


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8100, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file of SimulatorSettings; without it, models mimic the gateway's tiers with real latencies.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes; each keeps its own /_sim/stats and fault sequence.",
)
def simulate(host: str, port: int, config_path: Path | None, workers: int) -> None:
    """Serve simulated OpenAI and Anthropic upstreams, so the gateway runs with no API keys."""
    settings = load_settings(config_path)
    base_url = f"http://{host}:{port}"
    click.echo(f"Provider simulator on {base_url}", err=True)
    click.echo(f"  OpenAI base URL:    {base_url}/v1  (POST /v1/chat/completions, GET /v1/models)", err=True)
    click.echo(f"  Anthropic base URL: {base_url}  (POST /v1/messages)", err=True)
    click.echo(f"  Control API:        {base_url}/_sim/stats, /_sim/reset, /_sim/models/{{name}}", err=True)
    for name, behaviour in settings.models.items():
        label = "any other model" if name == WILDCARD_MODEL else name
        click.echo(f"  {label}: {describe_behaviour(behaviour)}", err=True)
    if settings.seed is not None:
        click.echo(f"  fault sequence seeded with {settings.seed}", err=True)
    os.environ[CONFIG_ENVIRONMENT_VARIABLE] = str(config_path.resolve()) if config_path else ""
    uvicorn.run(
        f"{__name__}:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
    )
