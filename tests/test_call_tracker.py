"""When a call counts as finished for the per-call metrics, and with which outcome."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from router.accounting.calls import CallCostTracker
from router.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_a_usage_report_finishes_the_call_once_with_its_outcome(metrics: Metrics) -> None:
    calls = CallCostTracker(metrics, idle_seconds=60, end_grace_seconds=30)
    calls.add_turn("t", "a", "c1", 0.01, 30, ended=False)
    calls.add_turn("t", "a", "c1", 0.02, 60, ended=True)  # call_ended: waits for the report
    assert value(metrics, "switchboard_calls_total", tenant="t", agent="a") == 0
    calls.add_turn("t", "a", "c1", 0.005, 90, ended=True, outcome="resolved", report=True)
    calls.add_turn("t", "a", "c1", 0.005, 90, ended=True, outcome="resolved", report=True)  # a retried report
    assert value(metrics, "switchboard_calls_total", tenant="t", agent="a") == 1
    assert value(metrics, "switchboard_call_outcomes_total", tenant="t", agent="a", outcome="resolved") == 1
    assert value(
        metrics, "switchboard_call_outcome_cost_usd_total", tenant="t", agent="a", outcome="resolved"
    ) == pytest.approx(0.035)
    assert value(metrics, "switchboard_call_seconds_total", tenant="t", agent="a") == 90


def test_ended_calls_finish_after_the_grace_and_silent_ones_as_abandoned(metrics: Metrics) -> None:
    calls = CallCostTracker(metrics, idle_seconds=0.2, end_grace_seconds=0.05)
    calls.add_turn("t", "a", "quiet", 0.01, None, ended=False)
    calls.add_turn("t", "a", "ended", 0.01, None, ended=True)
    assert calls.sweep() == 0
    time.sleep(0.08)
    assert calls.sweep() == 1  # the ended call, without an outcome
    assert value(metrics, "switchboard_call_outcomes_total", tenant="t", agent="a", outcome="unreported") == 1
    time.sleep(0.15)
    assert calls.sweep() == 1
    assert value(metrics, "switchboard_call_outcomes_total", tenant="t", agent="a", outcome="abandoned") == 1
