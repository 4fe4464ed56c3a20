"""Sample traffic generator, traffic log format, PII masking and the non-blocking log writer."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from classifiers.detectors import detect
from router.accounting.usage import Usage
from router.facts import voice_facts
from router.traffic.generate import MAX_TURNS, MIN_TURNS, sample_turns, write_sample_log
from router.traffic.log import (
    LoggedDecision,
    TrafficLogWriter,
    TrafficMetadata,
    TrafficRecord,
    VoiceMetadata,
    logged_messages,
    masked_messages,
    read_traffic,
    tool_names,
)
from router.traffic.redact import PLACEHOLDERS, STAND_INS, Redactor, with_stand_ins

TENANTS = {"clinic-north", "saas-billing", "logistics-express", "bank-retail"}
ROUTINE = {"smalltalk", "faq", "data_collection", "scheduling", "other"}


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture(scope="module")
def turns(redactor: Redactor) -> list:
    return sample_turns(300, seed=11, masker=redactor)


def _pii_left(text: str, context: str = "") -> list[str]:
    # The date-of-birth detector also fires on a date cue followed by a bare month or "for"; see redact.py.
    return [hit.name for hit in detect(text, context) if "pii" in hit.risks and hit.name != "date_of_birth"]


@pytest.mark.e2e
def test_same_seed_gives_byte_identical_logs_and_another_seed_does_not(tmp_path: Path, redactor: Redactor) -> None:
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert write_sample_log(first, 30, 5, redactor) == write_sample_log(second, 30, 5, Redactor())
    write_sample_log(other, 30, 6, redactor)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert len(list(read_traffic(first))) == len(first.read_bytes().splitlines())


@pytest.mark.e2e
def test_mix_is_mostly_routine_with_a_minority_of_risky_turns(turns: list) -> None:
    categories = Counter(turn.category for turn in turns)
    share = {category: count / len(turns) for category, count in categories.items()}
    assert sum(share.get(c, 0) for c in ROUTINE) > 0.7
    for minority in ("payment", "complaint", "medical", "account_security"):
        assert 0 < share.get(minority, 0) < 0.12, minority
    assert 0 < share["emergency"] < 0.02
    assert {turn.record.tenant for turn in turns} == TENANTS
    assert {turn.domain for turn in turns} == {"clinic", "saas-billing", "logistics", "bank"}


@pytest.mark.e2e
def test_calls_are_well_formed_voice_conversations(turns: list) -> None:
    calls: dict[str, list] = defaultdict(list)
    for turn in turns:
        calls[turn.record.call_id].append(turn.record)
    assert len(calls) == 300
    timestamps = [turn.record.ts for turn in turns]
    assert timestamps == sorted(timestamps), "records are written in time order"
    for records in calls.values():
        assert MIN_TURNS <= len(records) <= MAX_TURNS
        assert len({(r.tenant, r.agent, r.caller_id) for r in records}) == 1
        seconds = [r.metadata.voice.call_seconds for r in records]
        prompts = [r.usage.prompt_tokens for r in records]
        assert seconds == sorted(seconds) and prompts == sorted(prompts)
        assert all(20 <= r.usage.completion_tokens <= 200 for r in records)
        last = records[-1]
        assert last.messages[0].role == "system"
        roles = [m.role for m in last.messages[1:]]
        assert roles == ["assistant", "user"] * (len(roles) // 2)
        assert len(last.messages) == 1 + 2 * len(records)
        assert last.decision is None and last.requested_model == "auto"
        voice = last.metadata.voice
        assert voice is not None and 0.3 <= voice.asr_confidence <= 0.99 and voice.language.startswith("en-")
        assert last.tools and all(isinstance(name, str) for name in last.tools)


@pytest.mark.e2e
def test_caller_speech_carries_asr_noise(turns: list) -> None:
    said = [turn.record.messages[-1].content for turn in turns]
    assert sum(text == text.lower() for text in said) / len(said) > 0.6
    assert any(re.search(r"\b(uh|um|er|hmm)\b", text) for text in said)
    assert any(
        re.search(r"\b(one|two|three|four|five|six|seven|eight|nine|oh) (one|two|three|four|five)\b", t) for t in said
    )


@pytest.mark.e2e
def test_no_personal_data_survives_in_a_generated_log(turns: list) -> None:
    checked: set[tuple[str, str]] = set()
    for turn in turns:
        context = ""
        for message in turn.record.messages:
            checked.add((message.content, context if message.role == "user" else ""))
            context = message.content if message.role == "assistant" else context
    placeholders = Counter()
    for text, context in checked:
        assert not _pii_left(text, context), text
        placeholders.update(re.findall(r"\[[A-Z]+\]", text))
    for placeholder in ("[CARD]", "[EMAIL]", "[PHONE]", "[DOB]", "[SSN]", "[IBAN]", "[NAME]", "[ADDRESS]"):
        assert placeholders[placeholder] > 0, placeholder


@pytest.mark.parametrize(
    ("text", "context", "masked"),
    [
        ("my card is 4111 1111 1111 1111 thanks", "", "my card is [CARD] thanks"),
        ("four one one one one one one one one one one one one one one one", "", "[CARD]"),
        ("it's four two four two uh four two four two four two four two four two four two", "", "it's [CARD]"),
        ("The IBAN is GB82 WEST 1234 5698 7654 32, thanks", "", "The IBAN is [IBAN], thanks"),
        ("email me at jane.doe@example.com please", "", "email me at [EMAIL] please"),
        ("try kwame two at gmail dot com", "", "try [EMAIL]"),
        ("call me on (415) 555-0132", "", "call me on [PHONE]"),
        ("my social is 123-45-6789", "", "my social is [SSN]"),
        ("the fourth of march nineteen eighty seven", "And your date of birth?", "the [DOB]"),
        ("It's March 4th, 1987.", "For security, what's your date of birth?", "It's [DOB]."),
        ("my name is maria garcia and I live at 42 maple avenue", "", "[NAME] and I live at [ADDRESS]"),
        ("It's Maria Garcia.", "Could I have your full name, please?", "[NAME]"),
        ("what time do you open on saturday", "", "what time do you open on saturday"),
        ("dial 911 for emergencies", "", "dial 911 for emergencies"),
    ],
)
def test_masking_replaces_exactly_the_personal_data(redactor: Redactor, text: str, context: str, masked: str) -> None:
    assert redactor.mask(text, context) == masked
    assert not _pii_left(masked, context)


@pytest.mark.parametrize("detector", sorted(PLACEHOLDERS))
def test_each_stand_in_fires_the_detector_its_placeholder_hid(detector: str) -> None:
    cues = {"card_security_code": "the security code is ", "bank_account": "my account number is "}
    context = "Can I have your date of birth?" if detector == "date_of_birth" else ""
    text = with_stand_ins(cues.get(detector, "it's ") + PLACEHOLDERS[detector])
    assert detector in {hit.name for hit in detect(text, context)}
    assert set(STAND_INS) == set(PLACEHOLDERS.values())


def test_logged_messages_mask_in_context_and_keep_only_tool_names(redactor: Redactor) -> None:
    messages = [
        {"role": "system", "content": "You are a receptionist."},
        {"role": "assistant", "content": "What's your date of birth?"},
        {"role": "user", "content": [{"type": "text", "text": "the 4th of March 1987"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "lookup", "arguments": '{"dob": "x"}'}}
            ],
        },
    ]
    logged = masked_messages(logged_messages(messages), redactor)
    assert [m.content for m in logged] == ["You are a receptionist.", "What's your date of birth?", "the [DOB]", ""]
    assert logged[3].tool_calls == ["lookup"]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}, {"bad": 1}]
    assert tool_names(tools) == ["lookup"]


def test_voice_metadata_keeps_what_the_policy_reads() -> None:
    raw = {"voice": {"asr_confidence": 0.8, "interruptions": 2.0, "call_seconds": "12", "language": "en-GB", "x": 1}}
    voice = VoiceMetadata.from_metadata(raw)
    assert voice is not None
    assert voice.model_dump(exclude_none=True) == {"asr_confidence": 0.8, "interruptions": 2, "language": "en-GB"}
    assert voice_facts(voice.model_dump(exclude_none=True)) == voice_facts(raw["voice"])
    assert VoiceMetadata.from_metadata({"voice": "loud"}) is None


def _record(index: int) -> TrafficRecord:
    return TrafficRecord(
        ts=datetime(2025, 3, 3, 9, 0, tzinfo=UTC) + timedelta(seconds=index),
        request_id=f"req-{index}",
        call_id="call-1",
        tenant="clinic-north",
        requested_model="auto",
        messages=[{"role": "user", "content": f"turn {index}"}],
        metadata=TrafficMetadata(voice=VoiceMetadata(call_seconds=float(index))),
        decision=LoggedDecision(tier="small", deployment="gpt-4o-mini", rule="chatter", policy_version="default@1"),
        usage=Usage(prompt_tokens=100 + index, completion_tokens=20, cached_prompt_tokens=64),
    )


def test_a_live_request_becomes_a_record_masked_by_the_writer(tmp_path: Path) -> None:
    body = {
        "messages": [
            {"role": "assistant", "content": "Card number please."},
            {"role": "user", "content": "it's 4242 4242 4242 4242"},
        ],
        "tools": [{"type": "function", "function": {"name": "take_payment", "parameters": {}}}],
        "metadata": {"voice": {"asr_confidence": 0.7, "call_seconds": 31}, "crm_note": "VIP, jane@example.com"},
    }
    record = TrafficRecord.from_request(
        request_id="r1",
        ts=datetime(2025, 3, 3, 9, tzinfo=UTC),
        tenant="saas-billing",
        requested_model="auto",
        messages=body["messages"],
        tools=body["tools"],
        metadata=body["metadata"],
        decision=LoggedDecision(tier="frontier", deployment="gpt-5", rule="transactions", risks=["payment", "pii"]),
    )
    assert record.tools == ["take_payment"]
    assert record.metadata.model_dump(exclude_none=True) == {"voice": {"asr_confidence": 0.7, "call_seconds": 31.0}}

    async def write() -> None:
        writer = TrafficLogWriter(tmp_path / "live.jsonl")
        writer.write(record)
        await writer.aclose()

    asyncio.run(write())
    line = (tmp_path / "live.jsonl").read_text()
    assert "[CARD]" in line and "4242" not in line and "crm_note" not in line


def test_a_record_round_trips_through_one_json_line() -> None:
    record = _record(3)
    line = record.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b'"ts":"2025-03-03T09:00:03.000000Z"' in line
    assert TrafficRecord.model_validate_json(line) == record


async def test_writer_queues_without_blocking_and_flushes_in_order_on_close(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "traffic.jsonl"
    writer = TrafficLogWriter(path, batch_size=8, flush_interval_s=10)
    for index in range(20):
        writer.write(_record(index))
    assert writer.pending == 20 and not path.exists(), "write() only queues"
    # Well inside the 10 s flush interval, however busy the machine: only a full batch can have woken the task.
    deadline = time.monotonic() + 5
    while writer.written < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert writer.written == 20, "a full batch wakes the background task, which writes everything queued"
    for index in range(20, 23):
        writer.write(_record(index))
    await asyncio.sleep(0.05)
    assert writer.written == 20, "less than a batch waits for the flush interval"
    await writer.aclose()
    assert [r.request_id for r in read_traffic(path)] == [f"req-{i}" for i in range(23)]
    with pytest.raises(RuntimeError):
        writer.write(_record(99))


async def test_writer_drops_and_counts_when_its_queue_is_full(tmp_path: Path) -> None:
    writer = TrafficLogWriter(tmp_path / "t.jsonl", max_queued=5, flush_interval_s=10)
    for index in range(8):
        writer.write(_record(index))
    assert writer.dropped == 3
    await writer.aclose()
    assert len(list(read_traffic(tmp_path / "t.jsonl"))) == 5


def test_reading_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(_record(1).to_line() + b'{"v":1,"ts":"2025-03-0' + b"\n" + _record(2).to_line())
    assert [r.request_id for r in read_traffic(path)] == ["req-1", "req-2"]


@pytest.mark.e2e
def test_send_drives_a_gateway_call_by_call_shows_progress_and_the_ledger_matches(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings
    from router.traffic.cli import traffic
    from router.traffic.send import group_calls, send_traffic
    from router.traffic.send_progress import SendProgress
    from tests.conftest import gateway_config, make_gateway

    log = tmp_path / "sample.jsonl"
    write_sample_log(log, 6, seed=3, masker=Redactor())
    records = list(read_traffic(log))
    calls = group_calls(records)
    assert sum(len(call) for call in calls) == len(records) and len(calls) == 6
    shown = io.StringIO()
    progress = SendProgress(shown, bar=False, every_s=0)
    with (
        SimulatorServer(SimulatorSettings(models={"*": ModelBehaviour(output_tokens=6)})) as simulator,
        make_gateway(tmp_path, gateway_config(simulator.base_url)) as gateway,
    ):
        summary = asyncio.run(send_traffic(records, gateway.base_url, concurrency=3, stream_every=2, progress=progress))
        progress.close(summary)
        rows = _ledger_rows(gateway, {r.tenant for r in records})
        # The command line: progress on stderr (plain lines, as stderr is not a terminal), totals on stdout.
        url = gateway.base_url
        cli = CliRunner().invoke(traffic, ["send", "--traffic", str(log), "--url", url, "--progress-every", "0"])
        all_rows = _ledger_rows(gateway, {r.tenant for r in records})
    assert summary.requests == len(records) and summary.statuses == {200: len(records)}
    assert (summary.calls, summary.planned_calls, summary.planned_turns) == (6, 6, len(records))
    assert len(rows) == len(records)
    assert {row.call_id for row in rows} == {r.call_id for r in records}
    # Headers carry 8 decimals: the ledger's exact sum agrees within the rounding of each turn.
    assert summary.cost_usd == pytest.approx(sum(row.cost_usd for row in rows), abs=1e-8 * len(rows))
    assert summary.baseline_cost_usd == pytest.approx(sum(row.baseline_cost_usd for row in rows), abs=1e-8 * len(rows))
    lines = shown.getvalue().splitlines()
    progress_line = re.compile(r"sent (\d+)/(\d+) turns, (\d+)/6 calls, \d+:\d\d elapsed, cost \$(\d+\.\d{6})")
    parsed = [progress_line.fullmatch(line) for line in lines]
    assert all(parsed), lines
    turns_shown = [int(match[1]) for match in parsed if match]
    assert turns_shown == list(range(1, len(records) + 1))
    assert lines[-1].startswith(f"sent {len(records)}/{len(records)} turns, 6/6 calls")
    assert float(parsed[-1][4]) == pytest.approx(summary.cost_usd, abs=5e-7)

    assert cli.exit_code == 0, cli.output
    assert re.search(rf"sent {len(records)}/{len(records)} turns, 6/6 calls, \d+:\d\d elapsed", cli.stderr)
    assert cli.stderr.startswith(f"sending {log} to {url}, 32 calls at a time\n")
    second_rows = len(all_rows) - len(rows)
    assert second_rows == len(records)
    assert f"sent {len(records)} turns of 6 calls (200: {len(records)})" in cli.stdout
    billed = float(re.search(r"^cost \$(\d+\.\d+),", cli.stdout, re.MULTILINE)[1])  # type: ignore[index]
    second_cost = sum(row.cost_usd for row in all_rows) - sum(row.cost_usd for row in rows)
    assert billed == pytest.approx(second_cost, abs=5e-7 + 1e-8 * second_rows)


def _ledger_rows(gateway: Any, tenants: set[str]) -> list[Any]:
    ledger = gateway.services.recorder.ledger
    deadline = time.monotonic() + 5
    while ledger.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    return [row for tenant in tenants for row in gateway.call(ledger.sink.query(tenant))]


def test_send_progress_draws_a_bar_on_a_terminal() -> None:
    from router.traffic.send import SendSummary
    from router.traffic.send_progress import SendProgress

    shown = io.StringIO()
    progress = SendProgress(shown, bar=True, every_s=10)
    summary = SendSummary(planned_turns=4, planned_calls=2)
    for turn in range(4):
        summary.requests += 1
        summary.calls += turn % 2
        summary.cost_usd += 0.25
        summary.statuses[200] = turn + 1
        progress(summary)
    progress.close(summary)
    final = shown.getvalue().split("\r")[-1]
    assert "4/4" in final and "calls 2/2, cost $1.000000" in final


def test_send_counts_turns_the_gateway_never_answered_and_finishes(tmp_path: Path) -> None:
    from router.traffic.send import send_traffic

    log = tmp_path / "sample.jsonl"
    write_sample_log(log, 2, seed=5, masker=Redactor())
    records = list(read_traffic(log))
    with socket.socket() as unused:  # a port nothing listens on: every connection is refused
        unused.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    summary = asyncio.run(send_traffic(records, closed_url, concurrency=2, timeout_s=5))
    assert (summary.requests, summary.no_response, summary.failed) == (len(records), len(records), len(records))
    assert (summary.calls, summary.statuses, summary.cost_usd) == (2, {}, 0.0)
