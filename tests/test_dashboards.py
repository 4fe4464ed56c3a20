"""The Grafana dashboards, their provisioning and the Prometheus rules, checked without a Grafana server.

The dashboards are read with grafana-foundation-sdk's Grafana 11.6 models (no Grafana server can be installed here);
what only a real Grafana shows (rendering, units, variable UX) is listed in dashboards/README.md.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as grafana
from grafana_foundation_sdk.models import prometheus as grafana_prometheus
from prometheus_client import CollectorRegistry

from router.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "dashboards"
DASHBOARD_PATHS = (DASHBOARDS / "finance.json", DASHBOARDS / "operations.json")
DATASOURCE_PROVISIONING = DASHBOARDS / "provisioning" / "datasources" / "switchboard.yaml"
DASHBOARD_PROVISIONING = DASHBOARDS / "provisioning" / "dashboards" / "switchboard.yaml"
RULES = DASHBOARDS / "rules" / "switchboard.rules.yaml"
RULE_TESTS = DASHBOARDS / "rules" / "switchboard.rules.test.yaml"

GRID_COLUMNS = 24
# Grafana 11.0 writes schema 39, 11.6 writes 41; every 11.x migrates 39 upwards on load.
GRAFANA_11_SCHEMAS = range(39, 42)
# Metrics the dashboards and rules read that router/metrics.py does not define yet (the e2e test backfills them).
NOT_DEFINED_BY_GATEWAY = {
    "switchboard_budget_limit_usd": "the hard limit of each budget, labelled like switchboard_budget_remaining_usd",
}
GRAFANA_MACROS = frozenset({"__rate_interval", "__interval", "__range"})
# $name, ${name}, ${name:format} and the deprecated [[name]].
VARIABLE_REFERENCE = re.compile(r"\$\{(?P<braced>\w+)(?::[\w-]+)?\}|\$(?P<plain>\w+)|\[\[(?P<old>\w+)\]\]")
METRIC_NAME = re.compile(r"(?<![\w:])switchboard_[a-z_]+(?![\w:])")
# Keys of Grafana's JSON that the SDK's models do not carry (so a round trip drops them on purpose).
UNMODELLED_KEYS = frozenset({"definition"})


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows."""
    return [p for top in board["panels"] for p in (top, *top.get("panels", []))]


def prometheus_targets(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in all_panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def variable_references(text: str) -> set[str]:
    return {next(name for name in match.groups() if name) for match in VARIABLE_REFERENCE.finditer(text)}


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def gateway_metric_names() -> set[str]:
    """Every series name the gateway's registry can expose: counters with _total, histograms with their parts."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families = Metrics(CollectorRegistry()).registry.collect()
    return {f"{family.name}{suffix}" for family in families for suffix in suffixes[family.type]}


@pytest.fixture(scope="module", autouse=True)
def _sdk_plugins() -> None:
    # Panel options and Prometheus queries decode into typed models only with the plugins registered.
    register_default_plugins()


@pytest.fixture(params=DASHBOARD_PATHS, ids=lambda p: p.stem)
def board(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_dashboards_decode_into_grafana_11_models(board: dict[str, Any]) -> None:
    model = grafana.Dashboard.from_json(board)
    assert model.schema_version in GRAFANA_11_SCHEMAS
    assert model.panels
    for panel in model.panels:
        if isinstance(panel, grafana.RowPanel):
            continue
        # An unknown panel type, or options of the wrong shape, would stay a plain dict.
        assert not isinstance(panel.options, dict), (panel.title, panel.type_val)
        assert panel.targets, panel.title
        assert all(isinstance(t, grafana_prometheus.Dataquery) for t in panel.targets), panel.title


def test_sdk_round_trip_keeps_every_field(board: dict[str, Any]) -> None:
    """A misspelt or misplaced key (``gridpos``, ``unit`` outside ``defaults``) is dropped by the typed models."""
    again = json.loads(json.dumps(grafana.Dashboard.from_json(board), cls=JSONEncoder))
    lost: list[str] = []

    def compare(original: Any, decoded: Any, path: str) -> None:
        if isinstance(original, dict):
            for key, value in original.items():
                if key not in decoded:
                    if key not in UNMODELLED_KEYS:
                        lost.append(f"{path}/{key}")
                else:
                    compare(value, decoded[key], f"{path}/{key}")
        elif isinstance(original, list):
            assert len(original) == len(decoded), path
            for index, (item, decoded_item) in enumerate(zip(original, decoded, strict=True)):
                compare(item, decoded_item, f"{path}[{index}]")
        else:
            assert original == decoded, path

    compare(board, again, "")
    assert not lost


def test_panel_ids_are_unique() -> None:
    for path in DASHBOARD_PATHS:
        ids = [p["id"] for p in all_panels(load(path))]
        assert len(ids) == len(set(ids)), path.name
    uids = [load(path)["uid"] for path in DASHBOARD_PATHS]
    assert len(uids) == len(set(uids))


def test_panels_fit_the_grid_and_do_not_overlap(board: dict[str, Any]) -> None:
    boxes = []
    for panel in all_panels(board):
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1, panel["title"]
        assert x + w <= GRID_COLUMNS, panel["title"]
        boxes.append((panel["title"], x, y, w, h))
    for (a, ax, ay, aw, ah), (b, bx, by, bw, bh) in itertools.combinations(boxes, 2):
        overlap = ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
        assert not overlap, (a, b)


def test_datasource_variable_defaults_to_the_provisioned_uid(board: dict[str, Any]) -> None:
    datasources = yaml.safe_load(DATASOURCE_PROVISIONING.read_text())["datasources"]
    (provisioned,) = [d for d in datasources if d["type"] == "prometheus"]
    assert provisioned["uid"]
    datasource = variables(board)["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    assert datasource["current"]["value"] == provisioned["uid"]
    templated = {"type": "prometheus", "uid": "${datasource}"}
    for panel in all_panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == templated, panel["title"]
        assert all(t["datasource"] == templated for t in panel["targets"]), panel["title"]


def test_tenant_variable_is_multi_with_all_from_the_requests_metric(board: dict[str, Any]) -> None:
    tenant = variables(board)["tenant"]
    assert tenant["type"] == "query"
    assert tenant["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert tenant["query"]["query"] == "label_values(switchboard_requests_total, tenant)"
    assert tenant["multi"] and tenant["includeAll"] and tenant["allValue"] == ".*"


def test_every_variable_used_is_defined(board: dict[str, Any]) -> None:
    defined = set(variables(board)) | GRAFANA_MACROS
    used: set[str] = set()
    for text in strings_in([board["panels"], board["links"]]):
        used |= variable_references(text)
    for variable in board["templating"]["list"]:
        used |= variable_references(json.dumps([variable.get("query"), variable.get("datasource")]))
    assert used, "the dashboard uses no variable at all"
    assert used <= defined, used - defined


def test_tenant_is_matched_as_a_regex_because_it_is_multi_valued(board: dict[str, Any]) -> None:
    for panel, target in prometheus_targets(board):
        expr = target["expr"]
        matchers = re.findall(r'tenant\s*(=~|!~|!=|=)\s*"\$tenant"', expr)
        assert matchers == ["=~"] * expr.count("$tenant"), (panel["title"], expr)


def test_queries_and_rules_read_only_metrics_the_gateway_defines() -> None:
    known = gateway_metric_names() | set(NOT_DEFINED_BY_GATEWAY)
    exprs = [t["expr"] for path in DASHBOARD_PATHS for _, t in prometheus_targets(load(path))]
    rules = yaml.safe_load(RULES.read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used - known == set()


def test_dashboards_cover_the_finance_and_operations_metrics() -> None:
    def used(path: Path) -> set[str]:
        return {n for _, t in prometheus_targets(load(path)) for n in METRIC_NAME.findall(t["expr"])}

    assert {
        "switchboard_cost_usd_total",
        "switchboard_baseline_cost_usd_total",
        "switchboard_interrupted_cost_usd_total",
        "switchboard_call_cost_usd_bucket",
        "switchboard_call_minute_cost_usd_bucket",
        "switchboard_budget_remaining_usd",
    } <= used(DASHBOARDS / "finance.json")
    assert {
        "switchboard_requests_total",
        "switchboard_gateway_overhead_seconds_bucket",
        "switchboard_time_to_first_token_seconds_bucket",
        "switchboard_classification_seconds_bucket",
        "switchboard_fallbacks_total",
        "switchboard_routing_decisions_total",
        "switchboard_policy_info",
        "switchboard_circuit_open",
        "switchboard_shadow_decisions_total",
        "switchboard_redis_up",
        "switchboard_ledger_commit_seconds_bucket",
    } <= used(DASHBOARDS / "operations.json")


def test_dashboard_provider_loads_the_json_folder() -> None:
    (provider,) = yaml.safe_load(DASHBOARD_PROVISIONING.read_text())["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).is_absolute()
    # calls.json reads PostgreSQL, not Prometheus: tests/test_calls_dashboard.py checks it.
    assert {p.name for p in DASHBOARDS.glob("*.json")} == {p.name for p in DASHBOARD_PATHS} | {"calls.json"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (Debian package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent)


@pytest.mark.e2e
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.e2e
def test_promtool_rule_unit_tests() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
