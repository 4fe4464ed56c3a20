"""Drive a target with wrk (keep-alive POSTs from bench/chat_post.lua) and read back its exact percentiles."""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from bench.caller_turns import TextMode, lua_prelude

SUMMARY_MARKER = "WRK_SUMMARY "
LUA_LOGIC = Path(__file__).with_name("chat_post.lua")
# A request slower than this counts as a wrk timeout error rather than a latency sample.
REQUEST_TIMEOUT_SECONDS = 10
# How long past its --duration a wrk run may take before it is killed.
OVERRUN_SECONDS = REQUEST_TIMEOUT_SECONDS + 10


class WrkErrors(BaseModel):
    connect: int
    read: int
    write: int
    status: int
    timeout: int

    @property
    def total(self) -> int:
        return self.connect + self.read + self.write + self.status + self.timeout


class WrkLatency(BaseModel):
    p50: int
    p90: int
    p99: int
    mean: float
    max: int


class WrkSummary(BaseModel):
    """What chat_post.lua's ``done()`` prints; durations and latencies in microseconds."""

    requests: int
    duration_us: int
    bytes: int
    errors: WrkErrors
    latency_us: WrkLatency

    @property
    def successful_per_second(self) -> float:
        return (self.requests - self.errors.status) / (self.duration_us / 1e6)


@dataclass(frozen=True)
class LoadSpec:
    """One wrk instance's load: where, how many connections, what it sends."""

    url: str
    connections: int
    model: str
    text_mode: TextMode
    token: str
    first_reference: int


def wrk_executable() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise FileNotFoundError("wrk is not installed: apt-get install -y wrk")
    return path


def write_lua_script(folder: Path) -> Path:
    """bench/chat_post.lua with the caller turns of bench/caller_turns.py prepended."""
    script = folder / "chat_post.lua"
    script.write_text(lua_prelude() + LUA_LOGIC.read_text())
    return script


def _parse_summary(spec: LoadSpec, output: str) -> WrkSummary:
    for line in output.splitlines():
        if line.startswith(SUMMARY_MARKER):
            return WrkSummary.model_validate_json(line.removeprefix(SUMMARY_MARKER))
    raise RuntimeError(f"wrk printed no summary for {spec.url}:\n{output}")


@contextlib.contextmanager
def _running(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def children_cpu_seconds() -> float:
    """CPU used by this process's reaped children: wrk's own, once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(script: Path, specs: Sequence[LoadSpec], duration_seconds: int, threads: int = 1) -> list[WrkSummary]:
    """Run one wrk per spec at the same time for ``duration_seconds``; their summaries in the same order."""
    argv_of = [
        [
            wrk_executable(),
            f"--threads={min(threads, spec.connections)}",
            f"--connections={spec.connections}",
            f"--duration={duration_seconds}s",
            f"--timeout={REQUEST_TIMEOUT_SECONDS}s",
            "--latency",
            f"--script={script}",
            spec.url,
            "--",
            spec.model,
            spec.text_mode.value,
            spec.token,
            str(spec.first_reference),
        ]
        for spec in specs
    ]
    deadline = time.monotonic() + duration_seconds + OVERRUN_SECONDS
    with contextlib.ExitStack() as stack:
        processes = [stack.enter_context(_running(argv)) for argv in argv_of]
        outputs = [process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for process in processes]
        for spec, process, output in zip(specs, processes, outputs, strict=True):
            if process.returncode != 0:
                raise RuntimeError(f"wrk failed ({process.returncode}) against {spec.url}:\n{output}")
    return [_parse_summary(spec, output) for spec, output in zip(specs, outputs, strict=True)]
