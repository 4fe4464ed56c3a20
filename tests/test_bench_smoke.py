"""Smoke tests of the benchmark harness (bench/run.py): its plumbing, against the simulator only, in seconds."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.caller_turns import REPEATED_TEXT, SYSTEM_PROMPT, TextMode, distinct_text
from bench.load import LoadSpec, run_wrk, write_lua_script
from bench.processes import process_exists, process_tree
from bench.results import BenchResults
from bench.targets import TargetName

# The harness runs as a subprocess with the simulator and wrk.
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "bench" / "run.py"
SERVER_READY = re.compile(r"^(\S+) ready on \S+ \(pid (\d+)\)$", re.MULTILINE)
BOOKING = re.compile(r"booking (\d+)\.")


@pytest.fixture(autouse=True)
def _wrk_installed() -> None:
    assert shutil.which("wrk"), "the benchmark drives load with wrk: apt-get install wrk (.ci/run installs it)"


def run_harness(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HARNESS), *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_quick_run_measures_the_simulator_and_leaves_no_server_behind(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    completed = run_harness("--quick", "--targets", "direct", "--output", str(output))

    assert completed.returncode == 0, completed.stderr
    results = BenchResults.model_validate_json(output.read_text())
    assert [(cell.target, cell.concurrency) for cell in results.load] == [("direct", 1), ("direct", 10)]
    for cell in results.load:
        (run,) = cell.runs
        assert run.requests > 100 and run.errors == 0
        assert 0 < cell.p50_ms <= cell.p99_ms
        assert cell.throughput_rps == pytest.approx(run.requests / run.seconds, rel=0.01)
        assert cell.server_cpu_ms_per_request > 0 and run.upstream_cpu_ms_per_request is None
    (ttft,) = results.ttft
    assert ttft.runs[0].requests == 50 and 0 < ttft.p50_ms <= ttft.p99_ms
    assert results.versions["wrk"].startswith("wrk")
    assert "| direct | 10 |" in completed.stdout
    assert output.with_suffix(".md").read_text().strip() == completed.stdout.strip()
    servers = {name: int(pid) for name, pid in SERVER_READY.findall(completed.stderr)}
    assert list(servers) == ["simulator"]
    assert not process_exists(servers["simulator"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_every_child_process(tmp_path: Path, signum: signal.Signals) -> None:
    output = tmp_path / "interrupted.json"
    harness = subprocess.Popen(
        [sys.executable, str(HARNESS), "--quick", "--targets", "direct", "--duration", "30", "--output", str(output)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert harness.stderr is not None
        ready = SERVER_READY.match(harness.stderr.readline().strip())
        assert ready is not None and ready.group(1) == "simulator"
        time.sleep(2)  # past the warm-up: wrk is measuring now
        children = process_tree(harness.pid)[1:] + process_tree(int(ready.group(2)))
        assert len(children) >= 2, "the simulator and wrk should both be running"
        harness.send_signal(signum)
        harness.wait(timeout=20)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
    assert harness.returncode != 0
    assert not output.exists()
    assert [pid for pid in children if process_exists(pid)] == []


class _CapturingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        answer = b'{"choices": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def capturing_server() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Handler", (_CapturingHandler,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions", bodies
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", list(TextMode))
def test_the_wrk_script_sends_the_python_clients_turns(
    tmp_path: Path, capturing_server: tuple[str, list[bytes]], mode: TextMode
) -> None:
    url, bodies = capturing_server
    spec = LoadSpec(url=url, connections=2, model="auto", text_mode=mode, token="t", first_reference=3 * 10**9)

    (summary,) = run_wrk(write_lua_script(tmp_path), [spec], duration_seconds=1)

    assert summary.requests >= len(bodies) - 2 and len(bodies) > 10 and summary.errors.status == 0
    texts = []
    for raw in bodies:
        body = json.loads(raw)  # the Lua script builds its JSON by hand: every body must still parse
        assert body["model"] == "auto" and body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        texts.append(body["messages"][1]["content"])
    if mode is TextMode.REPEATED:
        assert set(texts) == {REPEATED_TEXT}
    else:
        assert len(set(texts)) == len(texts)
        for text in texts:
            match = BOOKING.search(text)
            assert match is not None and text == distinct_text(int(match.group(1)))
            assert int(match.group(1)) > 3 * 10**9


def test_targets_are_named_as_the_results_and_readme_name_them() -> None:
    readme = (REPO / "bench" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in TargetName)
