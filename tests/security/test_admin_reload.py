"""Issue 11, item 12: ``POST /admin/policy/reload`` loads only files inside the policy folder (symlinks resolved),
reads at most 1 MiB of them, and does its work off the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.policy.store import MAX_POLICY_BYTES
from router.simulator import SimulatorServer
from tests.conftest import GatewayServer, gateway_config, make_gateway, write_yaml

pytestmark = pytest.mark.e2e

ADMIN = {"authorization": "Bearer admin-5e0c"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    policies = tmp_path / "policies"
    policies.mkdir()
    write_yaml(policies / "live.yaml", {"name": "live", "default": "small"})
    write_yaml(policies / "other.yaml", {"name": "other", "default": "standard"})
    # A perfectly valid policy, but outside the folder: where a file lies decides, not what it holds.
    write_yaml(tmp_path / "outside.yaml", {"name": "outside", "default": "frontier"})
    (policies / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    return policies


@pytest.fixture
def server(tmp_path: Path, simulator: SimulatorServer, folder: Path) -> Iterator[GatewayServer]:
    config = gateway_config(simulator.base_url, policy=str(folder / "live.yaml"))
    with make_gateway(tmp_path, config, admin_key="admin-5e0c", watch_policy=False) as gateway:
        yield gateway


def reload(gateway: GatewayServer, path: str) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/admin/policy/reload", json={"path": path}, headers=ADMIN, timeout=30)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/etc/shadow", "../outside.yaml", "link.yaml", "{folder}/../outside.yaml", "/"]
)
def test_paths_outside_the_policy_folder_are_refused(server: GatewayServer, folder: Path, path: str) -> None:
    response = reload(server, path.format(folder=folder))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "policy_path_not_allowed"
    assert str(folder.parent / "outside.yaml") not in response.text  # nothing of the target is read back
    status = httpx.get(f"{server.base_url}/admin/policy", headers=ADMIN).json()
    assert status["version"].startswith("live@")


def test_files_in_the_folder_load_by_relative_or_absolute_path(server: GatewayServer, folder: Path) -> None:
    assert reload(server, "other.yaml").json()["version"].startswith("other@")
    assert reload(server, str(folder / "live.yaml")).json()["version"].startswith("live@")
    assert reload(server, "missing.yaml").status_code == 400
    assert reload(server, "bad\x00name.yaml").status_code == 400


def test_an_oversized_policy_file_is_refused_unread(server: GatewayServer, folder: Path) -> None:
    huge = folder / "huge.yaml"
    huge.write_text("name: huge\ndefault: small\n" + "#" * MAX_POLICY_BYTES + "\n")
    response = reload(server, str(huge))
    assert response.status_code == 400
    assert f"larger than {MAX_POLICY_BYTES} bytes" in response.json()["error"]["message"]


def test_a_slow_reload_does_not_hold_the_event_loop(server: GatewayServer, folder: Path) -> None:
    # Just under the cap, and slow to parse: a comment line per rule keeps pyyaml's scanner busy.
    rules = "".join(f"  - name: r{i}\n    when: {{intent: [billing]}}\n    route: small\n" for i in range(300))
    padding = "# " + "x" * 200 + "\n"
    text = "name: slow\ndefault: small\nrules:\n" + rules
    text += padding * ((MAX_POLICY_BYTES - len(text)) // len(padding) - 1)
    (folder / "slow.yaml").write_text(text)
    answered: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answered.append(reload(server, str(folder / "slow.yaml"))))
    started = time.monotonic()
    worker.start()
    latencies = []
    while worker.is_alive():
        t0 = time.monotonic()
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
        latencies.append(time.monotonic() - t0)
        time.sleep(0.02)
    worker.join()
    reload_seconds = time.monotonic() - started
    assert answered and answered[0].status_code == 200, answered[0].text if answered else None
    # Held on the loop, /healthz would wait for the whole reload; off it, only for its share of the GIL (the gateway,
    # this test and the reload share one process here).
    assert max(latencies) < reload_seconds / 3, (max(latencies), reload_seconds)
    assert len(latencies) >= 3, f"the reload took only {reload_seconds:.2f} s: too fast to tell"
