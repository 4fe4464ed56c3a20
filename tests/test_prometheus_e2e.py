"""Gateway + provider simulator + a real Prometheus scraping /metrics every second, driven by generated traffic.

Checks that the exposition lints, that Prometheus' spend equals the ledger's to the nano-dollar, that the recording
rules evaluate on the real series, and that every panel query of both dashboards parses and returns finite data for
"All" tenants and for each tenant alone.

Two series the dashboards read are not produced by the gateway yet. Unless the gateway's /metrics has them, they are
backfilled into the TSDB before Prometheus starts (``promtool tsdb create-blocks-from openmetrics``, labelled as if
scraped from the gateway):
- ``switchboard_budget_limit_usd``: not defined in router/metrics.py (budget remaining % and SwitchboardBudgetLow);
- ``switchboard_classification_seconds``: defined, but never observed while build_services wires no classifier
  into the Gateway.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from router.metrics import LATENCY_BUCKETS
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import GatewayServer, gateway_config, make_gateway, write_yaml
from tests.prometheus_server import PrometheusServer, ScrapeTarget, has_finite_value
from tests.test_dashboards import (
    DASHBOARD_PATHS,
    METRIC_NAME,
    RULES,
    VARIABLE_REFERENCE,
    load,
    prometheus_targets,
)
from tests.test_gateway_e2e import MESSAGES, set_behaviour

pytestmark = pytest.mark.e2e

JOB = "switchboard"
SCRAPE_INTERVAL_S = 1.0
BACKFILL_SECONDS = 60
ROUNDS = 5
TENANTS = {"clinic": ("reception", "triage"), "billing": ("collections", "support"), "logistics": ("dispatch",)}
TIERS = ("small", "standard", "frontier")
CALL_SECONDS = 95
BUDGETS: dict[str, Any] = {
    "tenants": {
        tenant: {
            "daily": {"hard_usd": 40},
            "monthly": {"hard_usd": 900},
            "agents": {agents[0]: {"daily": {"hard_usd": 10}}},
        }
        for tenant, agents in TENANTS.items()
    }
}
# Upstream failures in even rounds: fallbacks to small-b, and small-a's circuit breaker opens (then closes).
FAILING_MODEL = "gpt-4o-mini"
# Barge-ins go to the frontier tier, slowed down so the caller can hang up mid-answer.
SLOW_MODEL = "gpt-4.1"
BREAKER = {"consecutive_failures": 2, "open_seconds": 0.5}
# Speech besides the LLM: every turn reports STT and TTS, every call its telephony minutes at its end.
SPEECH_PRICES = {
    "stt_per_minute": {"deepgram": 0.0058},
    "tts_per_million_characters": {"elevenlabs": 180.0},
    "telephony_per_minute": {"twilio": 0.0085},
}
# In even rounds the standard tier sits silent before answering: a hedge on the frontier tier answers instead.
HEDGED_MODEL = "gpt-4o"
LATENCY = {"deployments": {"standard-a": {"hedge_after_ms": 50, "first_token_deadline_ms": 50}}}


def budget_limit_series(target: str, at: str, second: int) -> list[str]:
    """The configured hard limits, labelled like switchboard_budget_remaining_usd."""
    lines = []
    for tenant, budget in BUDGETS["tenants"].items():
        for window in ("daily", "monthly"):
            scope = f'scope="tenant",tenant="{tenant}",window="{window}"'
            lines.append(f"switchboard_budget_limit_usd{{{target},{scope}}} {budget[window]['hard_usd']} {at}")
        for agent, limits in budget["agents"].items():
            scope = f'scope="agent",tenant="{tenant}",agent="{agent}",window="daily"'
            lines.append(f"switchboard_budget_limit_usd{{{target},{scope}}} {limits['daily']['hard_usd']} {at}")
    return lines


def classification_series(target: str, at: str, second: int) -> list[str]:
    """Ten classifications a second taking 1-5 ms (cumulative counts per second by bucket bound)."""
    cumulative = ((0.001, 2), (0.002, 6), (0.003, 9), (0.005, 10))
    name = "switchboard_classification_seconds"
    lines = []
    for bound in LATENCY_BUCKETS:
        count = max((n for upper, n in cumulative if upper <= bound), default=0) * second
        lines.append(f'{name}_bucket{{{target},le="{float(bound)}"}} {count} {at}')
    lines.append(f'{name}_bucket{{{target},le="+Inf"}} {10 * second} {at}')
    lines.append(f"{name}_sum{{{target}}} {0.025 * second:.4f} {at}")
    lines.append(f"{name}_count{{{target}}} {10 * second} {at}")
    return lines


# Metric family → its OpenMetrics type and one second's samples.
BACKFILLS: dict[str, tuple[str, Callable[[str, str, int], list[str]]]] = {
    "switchboard_budget_limit_usd": ("gauge", budget_limit_series),
    "switchboard_classification_seconds": ("histogram", classification_series),
}


def not_emitted(exposition: str) -> list[str]:
    """The backfillable families the gateway does not expose, or exposes without a single observation."""
    samples = {s.name: s.value for f in text_string_to_metric_families(exposition) for s in f.samples}
    return [
        name
        for name, (kind, _) in BACKFILLS.items()
        if (samples.get(f"{name}_count", 0) == 0 if kind == "histogram" else name not in samples)
    ]


def backfill_openmetrics(families: list[str], instance: str, start: float, end: float) -> str:
    """One sample a second over [start, end] of each family, as if scraped from ``instance``."""
    target = f'job="{JOB}",instance="{instance}"'
    lines = []
    for name in families:
        kind, series = BACKFILLS[name]
        lines.append(f"# TYPE {name} {kind}")
        for second in range(int(end - start) + 1):
            lines += series(target, f"{start + second:.3f}", second)
    return "\n".join([*lines, "# EOF", ""])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


@dataclass
class Traffic:
    """Voice-agent turns through the gateway, counted so the ledger can be checked for every one of them."""

    gateway: GatewayServer
    client: httpx.Client
    sent: int = 0  # ledger records: requests, hedge losers and call usage reports

    def turn(
        self, tenant: str, agent: str, call_id: str, model: str, stream: bool, call_seconds: int, ended: bool
    ) -> None:
        voice = {
            "call_seconds": call_seconds,
            "call_ended": ended,
            "stt_seconds": 4.5,
            "stt_vendor": "deepgram",
            "tts_characters": 180,
            "tts_vendor": "elevenlabs",
        }
        body: dict[str, Any] = {"model": model, "messages": MESSAGES, "metadata": {"voice": voice}}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        headers = {"X-Tenant": tenant, "X-Agent": agent, "X-Call-Id": call_id}
        with self.client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            assert response.status_code == 200, response.read()
            for _ in response.iter_bytes():
                pass
        cancelled = response.headers.get("x-switchboard-hedge-cancelled")
        self.sent += 1 + (len(cancelled.split(",")) if cancelled else 0)

    def call(self, tenant: str, agent: str, call_id: str, models: tuple[str, ...], stream_first: bool) -> None:
        """One voice call: a turn per model, alternately streamed, the last one ending the call, then its
        telephony minutes and outcome (resolved, or transferred to a human every other call)."""
        for index, model in enumerate(models):
            elapsed = CALL_SECONDS * (index + 1) // len(models)
            last = index == len(models) - 1
            self.turn(tenant, agent, call_id, model, (index % 2 == 0) == stream_first, elapsed, ended=last)
        report = {
            "telephony_seconds": CALL_SECONDS,
            "telephony_vendor": "twilio",
            "outcome": "resolved" if stream_first else "transferred",
        }
        headers = {"X-Tenant": tenant, "X-Agent": agent}
        self.client.post(f"/v1/calls/{call_id}/usage", json=report, headers=headers).raise_for_status()
        self.sent += 1

    def hang_up_mid_stream(self, tenant: str, agent: str) -> None:
        """A caller barging in: read a few chunks of a streamed answer, then drop the connection."""
        body = orjson.dumps({"model": "frontier", "messages": MESSAGES, "stream": True})
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
            f"x-tenant: {tenant}\r\nx-agent: {agent}\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        assert self.gateway.port is not None
        with socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10) as sock:
            sock.sendall(head.encode() + body)
            received = b""
            while received.count(b"data: ") < 5:
                chunk = sock.recv(65536)
                assert chunk, f"the gateway ended the stream before the caller hung up: {received!r}"
                received += chunk
        self.sent += 1


@dataclass
class Scenario:
    gateway: GatewayServer
    prometheus: PrometheusServer
    start: float
    end: float
    requests: int
    backfilled: list[str]


def drive_traffic(simulator: SimulatorServer, traffic: Traffic, prometheus: PrometheusServer) -> None:
    """Rounds of calls for every tenant and agent, each round in its own scrape.

    In even rounds the small tier's first upstream fails (fallbacks, an open breaker) and a caller of each tenant
    hangs up on a frontier answer. Round 0 runs before the first scrape, so every series exists from that scrape
    on and later rounds show as increases (Prometheus cannot see the first increment of a series born between
    two scrapes).
    """
    scraped = None
    for round_index in range(ROUNDS):
        faulty = round_index % 2 == 0
        set_behaviour(simulator, FAILING_MODEL, rate_500=1.0 if faulty else 0.0)
        set_behaviour(simulator, HEDGED_MODEL, ttft_ms=300 if faulty else 0)
        for tenant, agents in TENANTS.items():
            for agent in agents:
                models = ("auto", "small", TIERS[round_index % len(TIERS)])
                traffic.call(tenant, agent, f"{tenant}-{agent}-{round_index}", models, stream_first=faulty)
        if faulty:
            set_behaviour(simulator, SLOW_MODEL, tokens_per_second=40, output_tokens=400)
            for tenant, agents in TENANTS.items():
                traffic.hang_up_mid_stream(tenant, agents[-1])
            set_behaviour(simulator, SLOW_MODEL)
        scraped = prometheus.wait_for_scrape(JOB, after=scraped)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp_path = tmp_path_factory.mktemp("prometheus-e2e")
    shadow = write_yaml(tmp_path / "candidate.yaml", {"name": "candidate", "default": "small"})
    with SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour()}, seed=7)) as simulator:
        config = gateway_config(
            simulator.base_url,
            shadow_policy=str(shadow),
            budgets=BUDGETS,
            breaker=BREAKER,
            speech_prices=SPEECH_PRICES,
            latency=LATENCY,
        )
        with make_gateway(tmp_path, config) as gateway:
            instance = f"127.0.0.1:{gateway.port}"
            prometheus = PrometheusServer([ScrapeTarget(job=JOB, address=instance)], rule_files=[RULES])
            with contextlib.closing(prometheus), httpx.Client(base_url=gateway.base_url, timeout=10) as client:
                start = time.time() - BACKFILL_SECONDS
                traffic = Traffic(gateway, client)
                traffic.turn("clinic", "reception", "warm-up", "auto", stream=False, call_seconds=5, ended=True)
                backfilled = not_emitted(client.get("/metrics").text)
                if backfilled:
                    prometheus.backfill(backfill_openmetrics(backfilled, instance, start, time.time()))
                prometheus.start()
                drive_traffic(simulator, traffic, prometheus)
                ledger = gateway.services.recorder.ledger
                wait_for(
                    lambda: ledger.pending == 0 and gateway.call(ledger.sink.count()) == traffic.sent,
                    10,
                    "the ledger did not record every request",
                )
                # The metrics moved with the ledger records: a scrape started from now on holds them all.
                final = prometheus.wait_for_scrape(JOB, after=datetime.now(UTC))
                yield Scenario(gateway, prometheus, start, final.timestamp(), traffic.sent, backfilled)


def test_gateway_exposition_passes_promtool_check_metrics(scenario: Scenario) -> None:
    exposition = httpx.get(f"{scenario.gateway.base_url}/metrics").text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_spend_equals_the_ledger(scenario: Scenario) -> None:
    ledger = scenario.gateway.services.recorder.ledger
    records = [r for tenant in TENANTS for r in scenario.gateway.call(ledger.sink.query(tenant))]
    assert len(records) == scenario.requests
    ledger_total = sum(r.cost_usd for r in records)
    (result,) = scenario.prometheus.query("sum(switchboard_cost_usd_total)", at=scenario.end)
    assert ledger_total > 0
    assert abs(float(result["value"][1]) - ledger_total) <= 1e-9


def test_recording_rules_evaluate_on_the_gateway_series(scenario: Scenario) -> None:
    rules = yaml.safe_load(RULES.read_text())
    recorded = [rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule]
    empty = [name for name in recorded if not has_finite_value(scenario.prometheus.query(name, at=scenario.end))]
    assert not empty


def test_each_configured_budget_is_one_series(scenario: Scenario) -> None:
    expected = set()
    for tenant, budget in BUDGETS["tenants"].items():
        expected |= {("tenant", tenant, "", window) for window in ("daily", "monthly")}
        expected |= {("agent", tenant, agent, "daily") for agent in budget["agents"]}
    ratios = scenario.prometheus.query("scope:switchboard_budget_remaining:ratio", at=scenario.end)
    found = [
        (r["metric"]["scope"], r["metric"]["tenant"], r["metric"].get("agent", ""), r["metric"]["window"])
        for r in ratios
    ]
    assert sorted(found) == sorted(expected)
    assert all(0 < float(r["value"][1]) < 1 for r in ratios)


def test_every_metric_the_dashboards_read_is_in_prometheus(scenario: Scenario) -> None:
    used = {
        name
        for path in DASHBOARD_PATHS
        for _, t in prometheus_targets(load(path))
        for name in METRIC_NAME.findall(t["expr"])
    }
    window = f"{round(scenario.end - scenario.start)}s"
    missing = [
        name
        for name in sorted(used)
        if not scenario.prometheus.query(f"count(last_over_time({name}[{window}]))", at=scenario.end)
    ]
    assert not missing


def tenant_values(prometheus: PrometheusServer) -> list[str]:
    """What Grafana's label_values(switchboard_requests_total, tenant) offers."""
    return list(prometheus.api("label/tenant/values", **{"match[]": "switchboard_requests_total"}))


def expand(expr: str, values: Mapping[str, str]) -> str:
    """Grafana's variable interpolation; an unknown variable raises KeyError."""
    return VARIABLE_REFERENCE.sub(lambda match: values[next(name for name in match.groups() if name)], expr)


def test_every_panel_query_parses_and_returns_finite_data(scenario: Scenario) -> None:
    prometheus, start, end = scenario.prometheus, scenario.start, scenario.end
    tenants = tenant_values(prometheus)
    assert sorted(tenants) == sorted(TENANTS)
    macros = {
        "__rate_interval": f"{4 * SCRAPE_INTERVAL_S:g}s",
        "__interval": f"{SCRAPE_INTERVAL_S:g}s",
        "__range": f"{round(end - start)}s",
    }
    queries: dict[tuple[str, bool], str] = {}
    for path in DASHBOARD_PATHS:
        for panel, target in prometheus_targets(load(path)):
            for tenant in (".*", *tenants):  # "All", then each tenant alone
                expr = expand(target["expr"], {**macros, "tenant": tenant})
                queries.setdefault((expr, bool(target.get("instant"))), f"{path.stem}: {panel['title']} [{tenant}]")
    failures = []
    for (expr, instant), where in queries.items():
        prometheus.format_query(expr)  # raises with Prometheus' parse error
        if instant:
            result = prometheus.query(expr, at=end)
        else:
            result = prometheus.query_range(expr, start, end, SCRAPE_INTERVAL_S)
        if not has_finite_value(result):
            failures.append(f"{where}: {expr}")
    assert not failures, f"backfilled: {scenario.backfilled}\n" + "\n".join(failures)
