"""The README's walkthrough runs as written: its blocks marked ``<!-- readme-test -->`` run in order in one shell.

The blocks run in a scratch folder holding what a fresh clone gives them (``policies/``, and ``.venv/bin/switchboard``
running this checkout), with ``.venv/bin`` on ``PATH``. A block marked ``<!-- readme-test: background -->`` starts a
server: the test stops the previous one, starts it in the background and waits for its ``/readyz``. The only
change to the text is the port: ``127.0.0.1:4000`` becomes a free one (given to the gateways as
``SWITCHBOARD_PORT``), so the test runs next to other gateways. Installing the package (the first command of the
quick start) is what the CI runner does before the tests; it is not repeated here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.processes import free_port

README = REPO / "README.md"
MARKER = re.compile(
    r"^<!-- readme-test(?::\s*(?P<mode>[a-z]+))? -->\n```(?P<language>\w+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
README_ADDRESS = "127.0.0.1:4000"
WALKTHROUGH_TIMEOUT_S = 1800  # a loaded 2-core machine: two replays of 200 calls and two gateway starts


@dataclass(frozen=True)
class Block:
    mode: str  # "run" or "background"
    language: str
    body: str


def readme_blocks(text: str) -> list[Block]:
    return [Block(m["mode"] or "run", m["language"], m["body"]) for m in MARKER.finditer(text)]


def walkthrough_script(blocks: list[Block], port: int) -> str:
    """One bash script running ``blocks`` in order; fails at the first failing command."""
    lines = [
        "set -euo pipefail",
        'stop_gateway() { if [ -n "${GATEWAY_PID:-}" ]; then kill "$GATEWAY_PID"; wait "$GATEWAY_PID" || true; fi; }',
        "trap stop_gateway EXIT",
        "wait_ready() {",
        "  for _ in $(seq 1 1200); do",
        f"    curl -fs http://127.0.0.1:{port}/readyz >/dev/null && return 0",
        '    kill -0 "$GATEWAY_PID" || return 1',
        "    sleep 0.5",
        "  done",
        "  return 1",
        "}",
    ]
    for number, block in enumerate(blocks, start=1):
        body = block.body.replace(README_ADDRESS, f"127.0.0.1:{port}").rstrip("\n")
        lines.append(f"echo {shlex.quote(f'### README block {number}')}")
        if block.mode == "background":
            assert block.language == "bash" and "\n" not in body.strip(), "a background block is one command"
            # exec env: the server itself is the background job (and takes a leading VAR=value as written).
            lines += [
                "stop_gateway",
                f"( exec env {body.strip()} ) >>gateway.log 2>&1 &",
                "GATEWAY_PID=$!",
                "wait_ready",
            ]
        elif block.language == "python":
            lines += [f"{shlex.quote(sys.executable)} - <<'README_PYTHON'", body, "README_PYTHON"]
        else:
            assert block.language == "bash", block.language
            lines.append(body)
    return "\n".join(lines) + "\n"


def test_readme_marks_the_walkthrough() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert [b.mode for b in blocks].count("background") == 2
    assert blocks[0].mode == "background" and blocks[0].body.strip() == ".venv/bin/switchboard serve"
    assert any("replay" in b.body and "--gate" in b.body for b in blocks)


@pytest.mark.e2e
def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    launcher = tmp_path / ".venv" / "bin" / "switchboard"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m router "$@"\n')
    launcher.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k != "REDIS_URL"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PATH=f"{launcher.parent}:{env['PATH']}",
        PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH")))),
        SWITCHBOARD_PORT=str(port),
    )
    script = walkthrough_script(readme_blocks(README.read_text(encoding="utf-8")), port)
    (tmp_path / "walkthrough.sh").write_text(script)
    run = subprocess.run(
        ["bash", "walkthrough.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WALKTHROUGH_TIMEOUT_S,
    )
    (tmp_path / "walkthrough.out").write_text(run.stdout)  # kept for a failure's post-mortem
    gateway_log = (tmp_path / "gateway.log").read_text() if (tmp_path / "gateway.log").exists() else ""
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-6000:]}\n--- gateway\n{gateway_log[-4000:]}"
    out = run.stdout
    assert "HTTP/1.1 200 OK" in out and "x-switchboard-tier:" in out  # the first curl
    assert "Simulated reply" in out and "savings_usd" in out  # the Python SDK, plain and streamed
    assert '"call_id":"call-1"' in out  # the call, read with its X-Tenant
    assert "Floor violations under P: 0" in out and "gate passed" in out
    assert "valid: my-candidate@" in out
    assert re.search(r"x-switchboard-policy-version: my-candidate@\w+", out), "the reloaded candidate answers"
    assert '"key":"sb-' in out  # the admin API issued one
    with sqlite3.connect(tmp_path / ".switchboard" / "ledger.sqlite3") as ledger:
        keyed_turn = ledger.execute("SELECT tenant, agent, key_id FROM ledger ORDER BY ts DESC LIMIT 1").fetchone()
    assert keyed_turn[:2] == ("clinic-north", "reception") and keyed_turn[2]  # the turn sent with the CLI's key
    assert "clinic-north" in out.split("### README block")[-1]  # the report covers the ledger's own range
    ready_lines = [line for line in gateway_log.splitlines() if line.startswith("Switchboard ready on")]
    assert len(ready_lines) == 2 and all("SIMULATOR MODE" in line for line in ready_lines)  # one per start
