"""Cached environments for the real-client tests: one venv per Python client family, one npm folder for Node.

The clients (Pipecat, LiveKit Agents, LangChain, LiteLLM, the OpenAI Node SDK) pull in hundreds of megabytes the
gateway never needs, and their pins conflict with each other (protobuf 6 for Pipecat, 7 for LiveKit), so each
family gets its own environment outside the project's venv, under ``$SWITCHBOARD_CLIENTS_CACHE`` (default
``~/.cache/switchboard-clients``), named by a hash of its pinned lock file and the interpreter. A changed lock
builds a new environment; an unchanged one is reused as is. A file lock per environment lets concurrent test
sessions share the cache without building twice.

    python3.11 tests/clients/envs.py            # build (or reuse) every client environment, print timings
    python3.11 tests/clients/envs.py pipecat    # just one

Standard library only: it runs before any project venv exists.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements"
PYTHON_CLIENTS = ("pipecat", "livekit", "langchain", "litellm")
NODE_CLIENT = "openai-node"
CLIENTS = (*PYTHON_CLIENTS, NODE_CLIENT)
# Bump to rebuild every environment after a change to how they are built.
LAYOUT = "1"
COMPLETE = ".complete"


def cache_root() -> Path:
    configured = os.environ.get("SWITCHBOARD_CLIENTS_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "switchboard-clients"


@dataclass(frozen=True)
class ClientEnv:
    name: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def node_modules(self) -> Path:
        return self.path / "node_modules"


def _pin_files(name: str) -> list[Path]:
    if name == NODE_CLIENT:
        return [REQUIREMENTS / NODE_CLIENT / "package.json", REQUIREMENTS / NODE_CLIENT / "package-lock.json"]
    return [REQUIREMENTS / f"{name}.txt"]


def _key(name: str, interpreter: str) -> str:
    digest = hashlib.sha256(f"{LAYOUT}\n{interpreter}\n".encode())
    for pin_file in _pin_files(name):
        digest.update(pin_file.read_bytes())
    return digest.hexdigest()[:16]


def _interpreter_id(python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.implementation.cache_tag, sys.version.split()[0])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return version.stdout.strip()


def _node_id() -> str:
    return subprocess.run(["node", "--version"], check=True, capture_output=True, text=True).stdout.strip()


def _run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        finished = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if finished.returncode:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command)} failed ({finished.returncode}); log {log}:\n" + "\n".join(tail))


def _build_python(name: str, path: Path, python: str, log: Path) -> None:
    _run([python, "-m", "venv", str(path)], log)
    _run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(REQUIREMENTS / f"{name}.txt"),
        ],
        log,
    )


def _build_node(path: Path, log: Path) -> None:
    path.mkdir(parents=True)
    for pin_file in _pin_files(NODE_CLIENT):
        shutil.copy(pin_file, path / pin_file.name)
    # ``npm ci`` installs exactly the lock file (versions and integrity hashes) or fails.
    _run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], log, cwd=path)


def ensure(name: str, python: str = sys.executable) -> ClientEnv:
    """The environment of client family ``name``, built on first use and reused while its pins are unchanged."""
    if name not in CLIENTS:
        raise ValueError(f"unknown client {name!r}; one of {', '.join(CLIENTS)}")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    runtime = _node_id() if name == NODE_CLIENT else _interpreter_id(python)
    env = ClientEnv(name, root / f"{name}-{_key(name, runtime)}")
    with (root / f"{env.path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same environment: wait for it
        if (env.path / COMPLETE).exists():
            return env
        shutil.rmtree(env.path, ignore_errors=True)  # an interrupted build
        log = root / f"{env.path.name}.log"
        log.unlink(missing_ok=True)
        if name == NODE_CLIENT:
            _build_node(env.path, log)
        else:
            _build_python(name, env.path, python, log)
        (env.path / COMPLETE).write_text(runtime + "\n")
        _prune_older(root, env)
    return env


def _prune_older(root: Path, current: ClientEnv) -> None:
    """Environments of the same family built from older pins are dead weight (hundreds of MB each)."""
    for stale in root.glob(f"{current.name}-*"):
        if stale.is_dir() and stale != current.path and stale.name.removeprefix(f"{current.name}-").isalnum():
            shutil.rmtree(stale, ignore_errors=True)
            for leftover in (root / f"{stale.name}.lock", root / f"{stale.name}.log"):
                leftover.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clients", nargs="*", metavar="CLIENT", help=f"any of {', '.join(CLIENTS)} (default: all)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the Python client venvs")
    args = parser.parse_args()
    unknown = sorted(set(args.clients) - set(CLIENTS))
    if unknown:
        parser.error(f"unknown client(s): {', '.join(unknown)}")
    failed = 0
    for name in args.clients or CLIENTS:
        started = time.monotonic()
        try:
            env = ensure(name, args.python)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            failed += 1
            print(f"{name}: FAILED after {time.monotonic() - started:.0f}s: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {env.path} ({time.monotonic() - started:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
