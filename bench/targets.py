"""The servers a run starts (simulator, Switchboard, LiteLLM proxy) and the targets wrk and the TTFT client hit."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from string import Template

import yaml

from bench.caller_turns import ReferenceBlocks, TextMode
from bench.load import LoadSpec
from bench.processes import ServerProcess, free_port

BENCH = Path(__file__).resolve().parent
GATEWAY_TEMPLATE = BENCH / "gateway.template.yaml"
LITELLM_FOLDER = BENCH / "litellm_proxy"
LITELLM_TEMPLATE = LITELLM_FOLDER / "config.template.yaml"
LITELLM_LOG_CONFIG = LITELLM_FOLDER / "log_config.json"
DEFAULT_LITELLM_VENV = LITELLM_FOLDER / ".venv"
CHAT_PATH = "/v1/chat/completions"
# The model wrk asks the simulator and LiteLLM for: what Switchboard's default policy picks for an unclassified turn.
UPSTREAM_MODEL = "gpt-4o"
ROUTED_MODEL = "auto"
# Zero latency, instant tokens: the simulator stands for an infinitely fast provider, so all latency is overhead.
ZERO_LATENCY_SIMULATOR = {"models": {"*": {"ttft_ms": 0, "tokens_per_second": None, "output_tokens": 24}}}
# Variables of the caller's shell that would change what the servers do (a Redis, a policy, a master key).
_INHERITED_PREFIXES_DROPPED = ("SWITCHBOARD_", "LITELLM_", "REDIS_URL", "DATABASE_URL")


class TargetName(StrEnum):
    DIRECT = "direct"
    SWITCHBOARD = "switchboard"
    SWITCHBOARD_CACHED = "switchboard_cached"
    SWITCHBOARD_NO_CLASSIFIER = "switchboard_no_classifier"
    LITELLM = "litellm_proxy"
    REPLICAS = "switchboard_replicas"


DESCRIPTIONS = {
    TargetName.DIRECT: "wrk straight to the zero-latency simulator (the baseline)",
    TargetName.SWITCHBOARD: "Switchboard, model auto, classification on, a distinct text every request (uncached)",
    TargetName.SWITCHBOARD_CACHED: "Switchboard, model auto, classification on, the same text every request",
    TargetName.SWITCHBOARD_NO_CLASSIFIER: "Switchboard, model auto, SWITCHBOARD_CLASSIFIER=off, distinct texts",
    TargetName.LITELLM: "LiteLLM proxy 1.108.7 on the same simulator deployment, distinct texts",
    TargetName.REPLICAS: "several Switchboard processes (classification on), one wrk each, no balancer",
}


@dataclass(frozen=True)
class Target:
    name: TargetName
    servers: tuple[ServerProcess, ...]
    model: str
    text_mode: TextMode
    token: str
    upstream: ServerProcess | None

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.name]

    def chat_url(self, server: ServerProcess) -> str:
        return server.base_url + CHAT_PATH

    def load_specs(self, concurrency: int, references: ReferenceBlocks) -> list[LoadSpec] | None:
        """One wrk per server, the connections split evenly; None when there are fewer connections than servers."""
        if concurrency < len(self.servers):
            return None
        share, extra = divmod(concurrency, len(self.servers))
        return [
            LoadSpec(
                url=self.chat_url(server),
                connections=share + (1 if index < extra else 0),
                model=self.model,
                text_mode=self.text_mode,
                token=self.token,
                first_reference=references.next_base(),
            )
            for index, server in enumerate(self.servers)
        ]

    def server_cpu_seconds(self) -> float:
        return sum(server.cpu_seconds() for server in self.servers)


def _switchboard_executable() -> str:
    beside_python = Path(sys.executable).with_name("switchboard")
    found = str(beside_python) if beside_python.exists() else shutil.which("switchboard")
    if found is None:
        raise FileNotFoundError("the switchboard command is not installed: pip install -e .")
    return found


def _clean_environment(**variables: str) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES_DROPPED)}
    # Offline: no model hub, no cost-map download, no telemetry.
    offline = {"HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY_DISABLED": "true"}
    return {**inherited, **offline, **variables}


def render_template(template: Path, destination: Path, sim_api_base: str) -> Path:
    destination.write_text(Template(template.read_text()).substitute(sim_api_base=sim_api_base))
    return destination


def simulator_server(workdir: Path, workers: int) -> ServerProcess:
    settings = workdir / "simulator.yaml"
    settings.write_text(yaml.safe_dump(ZERO_LATENCY_SIMULATOR))
    port = free_port()
    return ServerProcess(
        "simulator",
        [
            _switchboard_executable(),
            "simulate",
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--config", str(settings), "--workers", str(workers)),
        ],
        port=port,
        ready_path="/v1/models",
        env=_clean_environment(),
        log_path=workdir / "simulator.log",
    )


def gateway_server(name: str, workdir: Path, config: Path, workers: int, *, classifier: bool) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        name,
        [_switchboard_executable(), "serve"],
        port=port,
        ready_path="/readyz",
        env=_clean_environment(
            SWITCHBOARD_CONFIG=str(config),
            SWITCHBOARD_HOST="127.0.0.1",
            SWITCHBOARD_PORT=str(port),
            SWITCHBOARD_WORKERS=str(workers),
            SWITCHBOARD_CLASSIFIER="on" if classifier else "off",
            SWITCHBOARD_DATA_DIR=str(workdir / f"{name}-data"),
            SWITCHBOARD_LOG_LEVEL="warning",
        ),
        log_path=workdir / f"{name}.log",
    )


def litellm_executable(venv: Path) -> Path:
    executable = venv / "bin" / "litellm"
    if not executable.exists():
        raise FileNotFoundError(
            f"the LiteLLM proxy is not installed in {venv}: run bench/litellm_proxy/setup.sh "
            "(or leave litellm_proxy out of --targets)"
        )
    return executable


def litellm_server(workdir: Path, config: Path, workers: int, *, venv: Path, master_key: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        "litellm-proxy",
        [
            str(litellm_executable(venv)),
            *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
            *("--num_workers", str(workers), "--log_config", str(LITELLM_LOG_CONFIG)),
        ],
        port=port,
        ready_path="/health/liveliness",
        # LiteLLM's production advice: log errors only. Its proxy refuses to start without a master key.
        env=_clean_environment(LITELLM_MASTER_KEY=master_key, LITELLM_LOG="ERROR"),
        log_path=workdir / "litellm-proxy.log",
        cwd=workdir,
    )
