"""A wheel built from this checkout, installed (not editable) into a fresh venv, serves on its embedded default.

This is what an operator's ``pip install switchboard`` gets: no checkout beside it, so every file the gateway reads
at start (the default config, the shipped policies, the migrations, the classifier model) must be package data.
The venv has no system site-packages and takes the wheel's dependencies from this machine's package indexes (pip's
configuration: local mirrors first), so it runs offline where those hold everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from router import headers as H
from tests.processes import free_port, wait_or_kill

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
# What the build reads; the rest of the checkout (tests, benchmarks, the public corpus) stays behind.
SOURCES = ("pyproject.toml", "README.md", "router", "classifiers", "policies")
INSTALL_TIMEOUT_S = 1800  # ~2 GB of dependencies on a busy 2-core machine
START_TIMEOUT_S = 600  # a first start: bytecode, the classifier, its ONNX encoder export (~4 min on a busy 2-core box)


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would point Python or the gateway at the checkout."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
    kept = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("SWITCHBOARD_")}
    return {**kept, **extra}


def run(command: list[str], cwd: Path, timeout_s: float) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            # Symlinks stay links (router/policies -> ../policies), as in a git checkout.
            shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source)], work, 600)
    (wheel,) = (work / "dist").glob("switchboard-*.whl")
    run([sys.executable, "-m", "venv", str(work / "venv")], work, 120)
    pip = [str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-compile", "--quiet"]
    # [litellm]: the embedded default includes a simulated Anthropic deployment.
    run([*pip, f"{wheel}[litellm]"], work, INSTALL_TIMEOUT_S)
    return work / "venv"


def site_packages(venv: Path) -> Path:
    (path,) = (venv / "lib").glob("python3.*/site-packages")
    return path


def test_the_wheel_installs_as_files_with_the_shipped_policies(venv: Path) -> None:
    packages = site_packages(venv)
    where = run([str(venv / "bin" / "python"), "-c", "import router; print(router.__file__)"], venv.parent, 60)
    assert Path(where.strip()) == packages / "router" / "__init__.py"
    assert not list(packages.glob("__editable__*")) and not list(packages.glob("*.egg-link"))
    shipped = packages / "router" / "policies"
    assert shipped.is_dir() and not shipped.is_symlink()
    source = REPO / "policies"
    wanted = sorted(p.relative_to(source) for p in [*source.glob("*.yaml"), *source.glob("catalogs/*.yaml")])
    assert sorted(p.relative_to(shipped) for p in shipped.rglob("*.yaml")) == wanted
    for relative in wanted:
        assert (shipped / relative).read_bytes() == (source / relative).read_bytes(), relative
    assert (packages / "router" / "defaults" / "gateway.yaml").is_file()
    assert list((packages / "router" / "db" / "migrations" / "versions").glob("*.py"))


def test_the_installed_wheel_serves_a_chat_completion_on_its_embedded_default(venv: Path) -> None:
    work = venv.parent
    port = free_port()
    log = work / "serve.log"
    home = work / "home"
    home.mkdir(exist_ok=True)
    environment = clean_environment(
        HOME=str(home),  # a first start: nothing cached by an earlier gateway
        SWITCHBOARD_DATA_DIR=str(work / "data"),
        HF_HUB_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY_DISABLED="true",
    )
    command = [str(venv / "bin" / "switchboard"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=work, env=environment, stdout=output, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"switchboard serve exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"not ready in {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}"
            try:
                ready = httpx.get(f"{base_url}/readyz", timeout=5)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        # The embedded default, read from the installed package, with its simulator.
        assert f"config: {site_packages(venv) / 'router' / 'defaults' / 'gateway.yaml'}" in log.read_text()
        assert ready.json()["simulator"] and ready.json()["policy_version"]
        response = httpx.post(
            f"{base_url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "What time do you open on Saturday?"}]},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"]
        assert response.headers[H.TIER] in {"small", "standard", "frontier"}
        assert response.headers[H.POLICY_VERSION] == ready.json()["policy_version"]
    finally:
        process.terminate()
        wait_or_kill(process, timeout_s=30)
