"""Issue 11, items 1 and 8 end to end: hostile turns and huge bodies do not freeze a running gateway.

``switchboard serve`` runs in its own process with the shipped classifier and the traffic log on (the redactor
reads every message); while hostile requests are in flight, ``/healthz`` is probed from this process and each
answer is timed. Before the fix one ~100-byte turn stopped the event loop for over a minute, and token counting
of a 4 MB body stalled it for seconds.

A probe's wall-clock time also counts every millisecond the machine gave to other processes (on a shared 2-core
box, a few hundred of them even for benign requests), so the bound is checked on the gateway's own figure: the
CPU time the gateway process spent while the probe waited, which a stall (a regex or tokenizer holding the loop
or the GIL) consumes in full. A probe answered faster than that counts at its wall-clock time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import gateway_config, write_yaml
from tests.processes import free_port, wait_or_kill

HEALTHZ_BOUND_S = 0.100
HUGE_BODY_HEALTHZ_BOUND_S = 0.200
PROBE_INTERVAL_S = 0.02


@dataclass(frozen=True)
class RunningGateway:
    base_url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time of the gateway process so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Probe:
    wall_s: float
    gateway_cpu_s: float

    @property
    def gateway_delay_s(self) -> float:
        """How long the gateway itself can have held this probe up."""
        return min(self.wall_s, self.gateway_cpu_s)


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    # The upstream answers after 300 ms, so every hostile request stays in flight while /healthz is probed.
    with SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour(ttft_ms=300, output_tokens=4)})) as simulator:
        port = free_port()
        env = {
            **os.environ,
            "SWITCHBOARD_CONFIG": str(write_yaml(tmp_path / "gateway.yaml", gateway_config(simulator.base_url))),
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_CLASSIFIER": "on",
            "SWITCHBOARD_TRAFFIC_LOG": str(tmp_path / "traffic.jsonl"),
            "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
            "SWITCHBOARD_LOG_LEVEL": "warning",
        }
        server = subprocess.Popen([sys.executable, "-m", "router", "serve"], env=env, stdout=subprocess.DEVNULL)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base_url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, "the gateway did not start"
                time.sleep(0.2)
            # First requests import and load what the gateway loads lazily (tiktoken's tables, HTTP clients):
            # a one-off cost of start-up, not of hostile input, so it is paid before anything is measured.
            for model in ("auto", "small"):
                chat(base_url, model, [{"role": "user", "content": "hello, are you open today?"}])()
            yield RunningGateway(base_url, server.pid)
        finally:
            server.terminate()
            wait_or_kill(server, 20)


def probes_while(
    gateway: RunningGateway, requests: list[Callable[[], httpx.Response]]
) -> tuple[list[Probe], list[httpx.Response]]:
    """Send ``requests`` concurrently and probe /healthz every 20 ms until all are answered."""
    probes: list[Probe] = []
    with httpx.Client(base_url=gateway.base_url, timeout=120) as client, ThreadPoolExecutor(len(requests)) as pool:
        client.get("/healthz")  # open the probe's connection before the attack
        futures: list[Future[httpx.Response]] = [pool.submit(request) for request in requests]
        while not all(future.done() for future in futures):
            cpu, started = gateway.cpu_seconds(), time.perf_counter()
            assert client.get("/healthz").status_code == 200
            probes.append(Probe(time.perf_counter() - started, gateway.cpu_seconds() - cpu))
            time.sleep(PROBE_INTERVAL_S)
        return probes, [future.result() for future in futures]


def slowest(probes: list[Probe]) -> str:
    worst = max(probes, key=lambda probe: probe.gateway_delay_s)
    wall = max(probe.wall_s for probe in probes)
    return f"gateway delay {worst.gateway_delay_s * 1000:.0f} ms (slowest wall-clock answer {wall * 1000:.0f} ms)"


def chat(base_url: str, model: str, messages: list[dict[str, str]]) -> Callable[[], httpx.Response]:
    body = orjson.dumps({"model": model, "messages": messages})  # encoded up front, not while probing

    def send() -> httpx.Response:
        headers = {"content-type": "application/json"}
        return httpx.post(f"{base_url}/v1/chat/completions", content=body, headers=headers, timeout=120)

    return send


# The turns that froze the gateway (nested quantifiers backtracking on digit runs), and their cousins. Each costs
# milliseconds of CPU now; tests/security/test_linear_matching.py runs every detector on far larger ones.
HOSTILE_TURNS = [
    "my order is " + "1" * 40 + " x",
    "my reference number is " + "1" * 26 + " can you check it",
    "the reference is " + "9" * 24 + " from the letter you sent",
    "my order is " + "1" * 5000 + " x",
    "my order is " + "1 " * 1000 + "x",
    "help " * 400,
    "1-2 3.4/5 (6) +7, " * 100,
    "four one one one " * 100 + "x",
]


@pytest.mark.e2e
def test_healthz_answers_within_100_ms_while_hostile_turns_are_classified(gateway_process: RunningGateway) -> None:
    base_url = gateway_process.base_url
    requests = [
        chat(base_url, "auto", [{"role": "user", "content": f"{turn} {index}"}])
        for index, turn in enumerate(HOSTILE_TURNS * 2)
    ]
    # Pinned-model turns skip the classifier, but the traffic log's redactor reads them.
    requests += [chat(base_url, "small", [{"role": "user", "content": f"{turn} pinned"}]) for turn in HOSTILE_TURNS]

    probes, responses = probes_while(gateway_process, requests)

    assert [response.status_code for response in responses] == [200] * len(requests)
    assert len(probes) >= 5, "the hostile requests were not in flight long enough to probe"
    assert max(probe.gateway_delay_s for probe in probes) < HEALTHZ_BOUND_S, slowest(probes)


@pytest.mark.e2e
def test_healthz_stays_responsive_while_4_mb_bodies_are_admitted(gateway_process: RunningGateway) -> None:
    base_url = gateway_process.base_url
    # Ten messages of 399,000 characters (the per-message limit is 400,000): about 4 MB, under the body limit.
    filler = "please read my order 123456 and call me back at five five five one two three "
    content = (filler * (399_000 // len(filler) + 1))[:399_000]
    messages = [{"role": ("user", "assistant")[index % 2], "content": content} for index in range(9)]
    messages.append({"role": "user", "content": content})
    requests = [chat(base_url, model, messages) for model in ("auto", "small")]

    probes, responses = probes_while(gateway_process, requests)

    assert [response.status_code for response in responses] == [200, 200]
    assert len(probes) >= 5
    assert max(probe.gateway_delay_s for probe in probes) < HUGE_BODY_HEALTHZ_BOUND_S, slowest(probes)
