"""Fuzz the gateway's own OpenAPI schema with schemathesis: no 500s, every answer as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
from tests.conftest import gateway_config, make_gateway

EXAMPLES_PER_OPERATION = 30


@pytest.mark.e2e
def test_every_operation_answers_as_documented(tmp_path: Path) -> None:
    checked: list[str] = []
    with (
        SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour(output_tokens=4)})) as simulator,
        make_gateway(tmp_path, gateway_config(simulator.base_url), admin_key="fuzz-admin") as gateway,
    ):
        schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate()

            check()
            checked.append(operation.label)
    assert "POST /v1/chat/completions" in checked and "GET /v1/calls/{call_id}" in checked
