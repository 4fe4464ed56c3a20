"""What ``switchboard serve`` says while it starts: a port clash at once, then one line when the gateway is ready.

uvicorn binds its port only after the app's start-up (config, classifier, ledger, policy) has finished, so a
port already taken would surface only after all that loading. :func:`check_port_free` binds and releases the
address first, with the options uvicorn uses, so a clash is reported before anything loads. :class:`ReadyAnnouncer`
polls ``/readyz`` from a thread and logs one line, with the time since the process started, when it answers.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger("switchboard")

POLL_SECONDS = 0.1
_FIRST_INSTANT = time.monotonic()  # fallback origin where /proc is unavailable


class PortUnavailable(Exception):
    """The gateway's address cannot be listened on; the message says why and what to do."""


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortUnavailable` when ``host:port`` cannot be bound (taken, or not an address of this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no clash
        try:
            probe.bind(address)
        except OSError as exc:
            hint = "; choose another with --port or SWITCHBOARD_PORT" if port else ""
            raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from exc


def process_age_seconds() -> float:
    """Seconds since this process started (imports included), from /proc; else since this module was imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _FIRST_INSTANT


@dataclass(frozen=True, slots=True)
class Readiness:
    url: str
    seconds: float
    body: dict[str, Any]

    @property
    def line(self) -> str:
        text = f"Switchboard ready on {self.url} in {self.seconds:.1f} s (policy {self.body.get('policy_version')})"
        if self.body.get("degraded"):
            text += f"; degraded: {'; '.join(self.body['degraded'])}"
        if self.body.get("simulator"):
            text += (
                " — SIMULATOR MODE: answers come from the built-in provider simulator, not a real model provider;"
                " set SWITCHBOARD_CONFIG for real providers"
            )
        return text


class ReadyAnnouncer:
    """Polls ``GET /readyz`` on the gateway's own address until it answers 200, then logs one "ready" line and
    echoes it to stdout. A daemon thread: it dies with the process if the gateway never gets ready."""

    def __init__(self, host: str, port: int) -> None:
        # A wildcard bind is reached on loopback; the URL shown is the one the operator asked for.
        self._probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        self._port = port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/v1"
        self.ready = threading.Event()
        self.readiness: Readiness | None = None

    def start(self) -> ReadyAnnouncer:
        threading.Thread(target=self._watch, name="ready-announcer", daemon=True).start()
        return self

    def _watch(self) -> None:
        while True:
            body = self._poll()
            if body is not None:
                self.readiness = Readiness(self.url, process_age_seconds(), body)
                logger.info(
                    self.readiness.line,
                    extra={"event": "ready", "startup_seconds": round(self.readiness.seconds, 2), "url": self.url},
                )
                click.echo(self.readiness.line)
                self.ready.set()
                return
            time.sleep(POLL_SECONDS)

    def _poll(self) -> dict[str, Any] | None:
        connection = http.client.HTTPConnection(self._probe_host, self._port, timeout=5)
        try:
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            if response.status != 200:
                return None
            body = json.loads(response.read())
            return body if isinstance(body, dict) else None
        except (OSError, http.client.HTTPException, ValueError):
            return None  # not listening yet (refused), or still starting
        finally:
            connection.close()
