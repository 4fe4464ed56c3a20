"""A real, throwaway Prometheus (Debian's ``prometheus``) for tests, scraping targets on 127.0.0.1.

    with PrometheusServer([ScrapeTarget(job="switchboard", address="127.0.0.1:8080")]) as prometheus:
        prometheus.wait_for_scrape("switchboard")          # the first scrape takes ~6 s even at 1 s intervals
        prometheus.query("sum(switchboard_cost_usd_total)")

Each server gets a fresh ``--storage.tsdb.path`` and a generated config (global scrape and rule evaluation interval
``scrape_interval_s``). ``backfill(openmetrics)`` writes exact series into the TSDB with ``promtool tsdb
create-blocks-from openmetrics``; call it before ``start()``, because a running Prometheus only loads new blocks on
its next compaction cycle (a minute later).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml
from pydantic import BaseModel, ConfigDict

from tests.processes import free_port, wait_or_kill

POLL_SECONDS = 0.1


class ScrapeTarget(BaseModel):
    model_config = ConfigDict(frozen=True)

    job: str
    address: str  # host:port
    metrics_path: str = "/metrics"


class PrometheusError(RuntimeError):
    pass


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian package prometheus)")
    return path


def has_finite_value(series: Sequence[dict[str, Any]]) -> bool:
    """Whether any series of an instant or range query result holds a finite number."""
    return any(
        math.isfinite(float(value))
        for item in series
        for _, value in (item["values"] if "values" in item else [item["value"]])
    )


class PrometheusServer:
    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        scrape_interval_s: float = 1.0,
        rule_files: Sequence[Path] = (),
        startup_timeout_s: float = 20.0,
    ) -> None:
        self.binary = _binary("prometheus")
        self.targets = list(targets)
        self.scrape_interval_s = scrape_interval_s
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="switchboard-prometheus-"))
        self.storage_path = self._dir / "tsdb"
        self.storage_path.mkdir()
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _config(self) -> dict[str, Any]:
        interval = f"{self.scrape_interval_s:g}s"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": target.job,
                    "metrics_path": target.metrics_path,
                    "static_configs": [{"targets": [target.address]}],
                }
                for target in self.targets
            ],
        }

    def backfill(self, openmetrics: str) -> None:
        """Write the series of an OpenMetrics text (ending in ``# EOF``) into the TSDB; only before ``start()``."""
        if self.running:
            raise RuntimeError("backfill before start(): a running Prometheus would not load the blocks in time")
        source = self._dir / "backfill.om"
        source.write_text(openmetrics)
        result = subprocess.run(
            [_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.storage_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise PrometheusError(f"promtool could not backfill: {result.stderr or result.stdout}")

    def start(self) -> None:
        if self.running:
            return
        config_path = self._dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        log = (self._dir / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.storage_path}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            self._poll(self._ready, self.startup_timeout_s, "did not become ready")
        except Exception:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise PrometheusError(f"prometheus exited with {self._process.returncode}:\n{self.log()}")
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        path = self._dir / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _poll(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus on port {self.port} {what} within {timeout_s:g} s\n{self.log()}")
            time.sleep(POLL_SECONDS)

    def api(self, path: str, **params: Any) -> Any:
        """The ``data`` of a ``/api/v1/{path}`` answer; raises ``PrometheusError`` with Prometheus' error."""
        response = self._http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=step_s)["result"])

    def format_query(self, expr: str) -> str:
        """Prometheus' own pretty-printing of ``expr``: raises ``PrometheusError`` when it does not parse."""
        return str(self.api("format_query", query=expr))

    def last_scrape(self, job: str) -> datetime | None:
        """When the last successful scrape of ``job`` started (None before the first one)."""
        for target in self.api("targets", state="active")["activeTargets"]:
            if target["labels"].get("job") == job and target["health"] == "up":
                return datetime.fromisoformat(target["lastScrape"])
        return None

    def wait_for_scrape(self, job: str, after: datetime | None = None, timeout_s: float = 20.0) -> datetime:
        """Poll until a successful scrape of ``job`` started after ``after`` (any scrape when None) is stored."""

        def scraped() -> bool:
            last = self.last_scrape(job)
            return last is not None and (after is None or last > after)

        self._poll(scraped, timeout_s, f"did not scrape {job}")
        scraped_at = self.last_scrape(job)
        assert scraped_at is not None
        # The targets API reports a scrape when it starts; its samples are queryable once appended (ms timestamps).
        stored = f'max(timestamp(up{{job="{job}"}})) >= {scraped_at.timestamp() - 0.001:.3f}'
        self._poll(lambda: bool(self.query(stored)), 5, f"did not store the scrape of {job}")
        return scraped_at

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            wait_or_kill(process)

    def close(self) -> None:
        self.stop()
        self._http.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
