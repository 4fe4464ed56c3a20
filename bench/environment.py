"""The machine and the software a run measured, recorded beside its figures."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from bench.load import wrk_executable
from bench.results import MachineInfo

REPO = Path(__file__).resolve().parent.parent
_PACKAGES = ("switchboard", "litellm", "fastapi", "uvicorn", "httpx", "orjson", "pydantic")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def machine_info() -> MachineInfo:
    return MachineInfo(
        cpu_model=_cpu_model(),
        logical_cpus=os.cpu_count() or 0,
        memory_gib=_memory_gib(),
        kernel=platform.release(),
        python=platform.python_version(),
        load_average_before=load_average(),
    )


def _output(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    # wrk prints its version and usage, then exits 1: the first line is the answer whatever the exit code.
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def versions(litellm_python: Path | None) -> dict[str, str]:
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["wrk"] = _output([wrk_executable(), "-v"]).split(" [")[0]
    if litellm_python is not None:
        found["litellm_proxy"] = _output(
            [str(litellm_python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
        )
    found["git_commit"] = _output(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    return found
