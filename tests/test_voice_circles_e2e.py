"""Going in circles, end to end through the openai SDK: a caller who repeats a request is escalated, then a human
handoff is recommended; the traffic generator's calls (no repetition) never are."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.simulator import SimulatorServer
from router.traffic.generate import sample_turns
from router.traffic.redact import Redactor
from router.traffic.send import send_traffic
from tests.conftest import GatewayServer, gateway_config, make_gateway

pytestmark = pytest.mark.e2e

REQUEST = "I need to change the delivery address of my order"
# The same request four times in other words: no two share enough words for the lexical rule; the classifier's
# embeddings find each an earlier saying (cosine 0.83 to 0.90).
REPHRASED = (
    "I need to cancel my order",
    "please just cancel the order I placed",
    "can you please cancel the order I made",
    "I just want you to cancel my order",
)


def metric(gateway: GatewayServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{gateway.base_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def ledger(gateway: GatewayServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    time.sleep(0.2)  # a refusal or the last batch may still be queued
    with sqlite3.connect(Path(gateway.settings.data_dir) / "ledger.sqlite3") as db:
        return db.execute(sql, params).fetchall()


@pytest.mark.parametrize(
    ("classifier", "lines"),
    [("off", (REQUEST,) * 4), ("on", (REQUEST,) * 4), ("on", REPHRASED)],
    ids=["same-words-lexical", "same-words-embeddings", "rephrased-embeddings"],
)
def test_a_caller_repeating_a_request_is_escalated_then_handed_off(
    tmp_path: Path, simulator: SimulatorServer, classifier: str, lines: tuple[str, ...]
) -> None:
    with (
        # A generous classification deadline: a turn classified late on a busy machine would fall back to the
        # lexical rule, which cannot see a rephrasing.
        make_gateway(
            tmp_path,
            gateway_config(simulator.base_url, limits={"classification_deadline_ms": 5000}),
            classifier=classifier,
        ) as gateway,
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        chat: list[dict[str, Any]] = []
        turns = []
        for index, line in enumerate(lines):  # the request, then said again three times
            chat.append({"role": "user", "content": line})
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=chat, stream=index % 2 == 1, extra_headers={"x-call-id": "call-circles"}
            )
            parsed = raw.parse()
            answer = (
                "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
                if index % 2
                else parsed.choices[0].message.content
            )
            chat.append({"role": "assistant", "content": answer})
            turns.append(raw.headers)
        handoffs = metric(gateway, "switchboard_handoffs_total", handoff="circles-after-escalation")
        rows = ledger(gateway, "SELECT rule, tier, handoff FROM ledger WHERE call_id = 'call-circles' ORDER BY ts")
        call = httpx.get(f"{gateway.base_url}/v1/calls/call-circles").json()

    rules = [h["x-switchboard-rule"] for h in turns]
    assert "going-in-circles" not in rules[:2]  # one repetition is no circle yet
    assert rules[2:] == ["going-in-circles", "going-in-circles"]
    assert [h["x-switchboard-tier"] for h in turns[2:]] == ["frontier", "frontier"]
    assert [h.get("x-switchboard-handoff") for h in turns] == [None, None, None, "recommended"]
    assert "going in circles after escalation" in turns[3]["x-switchboard-handoff-reason"]
    assert [r[2] is not None for r in rows] == [False, False, False, True]
    assert rows[3][2].startswith("circles-after-escalation: ")
    assert handoffs == 1
    assert [t["handoff"] for t in call["turns"]] == [None, None, None, rows[3][2]]


@pytest.mark.parametrize("classifier", ["off", "on"])
def test_generated_calls_without_repetition_are_never_handed_off(
    tmp_path: Path, simulator: SimulatorServer, classifier: str
) -> None:
    records = [turn.record for turn in sample_turns(120, seed=7, masker=Redactor())]
    with make_gateway(tmp_path, gateway_config(simulator.base_url), classifier=classifier) as gateway:
        summary = asyncio.run(send_traffic(records, gateway.base_url, concurrency=8))
        handoffs = metric(gateway, "switchboard_handoffs_total")
        circles = ledger(gateway, "SELECT COUNT(*) FROM ledger WHERE rule = 'going-in-circles' OR handoff IS NOT NULL")
        served = ledger(gateway, "SELECT COUNT(*) FROM ledger WHERE status = 200")
        classified = ledger(gateway, "SELECT COUNT(*) FROM ledger WHERE intent IS NOT NULL")
    print(
        f"generated calls, classifier {classifier}: {summary.planned_calls} calls, {served[0][0]} turns served "
        f"({classified[0][0]} classified), 0 expected handoffs"
    )
    assert served[0][0] == len(records) > 500
    assert handoffs == 0
    assert circles == [(0,)]  # no false escalation either
