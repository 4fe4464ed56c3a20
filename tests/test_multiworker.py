"""`switchboard serve` with several uvicorn workers: /metrics sums every worker's counters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from router.simulator import SimulatorServer
from tests.conftest import gateway_config, write_yaml
from tests.processes import free_port


@pytest.mark.e2e
def test_two_workers_share_one_metrics_exposition(tmp_path: Path, simulator: SimulatorServer) -> None:
    port = free_port()
    config = write_yaml(tmp_path / "gateway.yaml", gateway_config(simulator.base_url))
    env = {
        **os.environ,
        "SWITCHBOARD_CONFIG": str(config),
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_WORKERS": "2",
        "SWITCHBOARD_CLASSIFIER": "off",
        "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "router", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the gateway did not start"
            time.sleep(0.2)
        body = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(40):
            # A new connection per request spreads requests over both workers.
            assert httpx.post(f"{base}/v1/chat/completions", json=body).status_code == 200
        exposition = httpx.get(f"{base}/metrics").text
    finally:
        server.terminate()
        server.wait(timeout=20)
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("switchboard_requests_total{")
    )
    assert served == 40
    assert len(list((tmp_path / "data" / "prometheus-multiproc").glob("counter_*.db"))) == 2
