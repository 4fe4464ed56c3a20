"""``switchboard serve`` says what happens: a port clash before any loading, one "ready" line with a true time."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from router.cli import LAZY_COMMANDS, main
from router.logs import BackgroundServerChatter, QuantiserNotices
from router.startup import PortUnavailable, Readiness, check_port_free, process_age_seconds
from tests.processes import free_port, wait_or_kill


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_port_is_refused_with_what_to_do(taken_port: int) -> None:
    with pytest.raises(PortUnavailable, match=rf"127\.0\.0\.1:{taken_port}: Address already in use; choose another"):
        check_port_free("127.0.0.1", taken_port)
    check_port_free("127.0.0.1", free_port())


def test_process_age_counts_from_the_process_start() -> None:
    age = process_age_seconds()
    assert 0 < age < time.monotonic()  # this process started after the machine
    assert process_age_seconds() >= age


def test_the_ready_line_says_simulator_mode_and_degradation() -> None:
    body = {"policy_version": "default@abc", "degraded": ["state: redis unavailable"], "simulator": "http://x"}
    line = Readiness("http://127.0.0.1:4000/v1", 6.04, body).line
    assert line.startswith("Switchboard ready on http://127.0.0.1:4000/v1 in 6.0 s (policy default@abc)")
    assert "degraded: state: redis unavailable" in line and "SIMULATOR MODE" in line
    real = Readiness("http://127.0.0.1:4000/v1", 2.0, {"policy_version": "p@1", "degraded": [], "simulator": None})
    assert "SIMULATOR" not in real.line and "degraded" not in real.line


def test_background_servers_keep_their_warnings_but_not_their_chatter() -> None:
    def record(name: str, level: int, thread: str) -> logging.LogRecord:
        made = logging.makeLogRecord({"name": name, "levelno": level, "msg": "x"})
        made.threadName = thread
        return made

    chatter = BackgroundServerChatter()
    assert not chatter.filter(record("uvicorn.error", logging.INFO, "switchboard-simulator"))
    assert chatter.filter(record("uvicorn.error", logging.WARNING, "switchboard-simulator"))
    assert chatter.filter(record("uvicorn.error", logging.INFO, "MainThread"))  # the gateway's own
    assert chatter.filter(record("switchboard", logging.INFO, "switchboard-simulator"))


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_PORT=str(port), SWITCHBOARD_DATA_DIR=str(tmp_path / "data"), SWITCHBOARD_CLASSIFIER="off")
    return subprocess.Popen(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.e2e
def test_a_port_clash_fails_before_anything_loads(tmp_path: Path, taken_port: int) -> None:
    process = _serve(tmp_path, taken_port)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stdout == ""
    lines = [json.loads(line) for line in stderr.splitlines()]  # JSON, every line
    assert lines[-1]["level"] == "error" and lines[-1]["event"] == "port_unavailable"
    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in lines[-1]["message"]
    assert not any(line["logger"].startswith("uvicorn") for line in lines)  # nothing was started


@pytest.mark.e2e
def test_one_ready_line_with_a_true_start_time(tmp_path: Path) -> None:
    port = free_port()
    spawned = time.monotonic()
    process = _serve(tmp_path, port)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()  # blocks until the gateway says it is ready
        waited = time.monotonic() - spawned
    finally:
        process.terminate()
        wait_or_kill(process, timeout_s=30)
    stderr = process.stderr.read() if process.stderr else ""
    assert ready.startswith(f"Switchboard ready on http://127.0.0.1:{port}/v1 in "), (ready, stderr[-3000:])
    assert "SIMULATOR MODE" in ready
    lines = [json.loads(line) for line in stderr.splitlines()]  # JSON, every line
    events = [line for line in lines if line.get("event") == "ready"]
    assert len(events) == 1 and events[0]["message"] == ready.strip()
    assert 0 < events[0]["startup_seconds"] <= waited + 0.5  # measured from the process start, not after loading
    messages = [line["message"] for line in lines]
    assert "Application startup complete." in messages  # uvicorn's own line survives the embedded simulator
    assert any(m.startswith("SIMULATOR MODE") for m in messages)
    assert all(line["logger"] != "root" or line["level"] != "info" for line in lines)  # third parties quiet
    assert not any("Uvicorn running" in m and str(port) not in m for m in messages)  # not the simulator's


def test_every_lazy_command_is_the_command_of_its_name() -> None:
    context = click.Context(main)
    for name in LAZY_COMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.name == name
    assert {"serve", "policy", *LAZY_COMMANDS} == set(main.list_commands(context))


def test_the_quantisers_advice_is_dropped_but_not_its_errors() -> None:
    def record(level: int, path: str) -> logging.LogRecord:
        return logging.makeLogRecord({"name": "root", "levelno": level, "pathname": path, "msg": "x"})

    quantiser = "/venv/lib/python3.11/site-packages/onnxruntime/quantization/onnx_quantizer.py"
    notices = QuantiserNotices()
    assert not notices.filter(record(logging.INFO, quantiser))
    assert not notices.filter(record(logging.WARNING, quantiser))
    assert notices.filter(record(logging.ERROR, quantiser))
    assert notices.filter(record(logging.WARNING, "/work/router/services.py"))
