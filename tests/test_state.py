"""One rule per idea for a turn's records: call escalation (in process, in Redis's Lua, in replay), the call id of
served and refused requests, and the produced text of streamed and whole answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from router.accounting.tokens import completion_text, text_tokens
from router.errors import InvalidRequest
from router.identifiers import call_identity
from router.redisclient import SharedRedis
from router.state import CallRecord, InProcessState, RedisState
from tests.redis_server import RedisServer

# (tier, rank, risks) turn after turn, and what the call is after them: turns, max tier, escalated at turn, risks.
CASES = [
    ([("small", 0, [])], (1, "small", 1, set())),
    ([("small", 0, []), ("frontier", 2, ["payment"]), ("small", 0, [])], (3, "frontier", 2, {"payment"})),
    ([("standard", 1, []), ("standard", 1, ["medical"]), ("frontier", 2, ["high_stakes"])], (3, "frontier", 3, None)),
    ([("frontier", 2, []), ("small", 0, ["a", "b"]), ("standard", 1, ["a"])], (3, "frontier", 1, {"a", "b"})),
    ([("small", 0, []), ("small", 0, []), ("small", 0, [])], (3, "small", 1, set())),
]


def expected(case: tuple[int, str, int, set[str] | None], turns: list[tuple[str, int, list[str]]]) -> CallRecord:
    count, tier, at, risks = case
    seen = risks if risks is not None else {r for _, _, rs in turns for r in rs}
    return CallRecord(
        turns=count, max_tier=tier, max_rank=max(r for _, r, _ in turns), escalated_at_turn=at, risks_seen=seen
    )


def same_call(a: CallRecord, b: CallRecord) -> bool:
    return (a.turns, a.max_tier, a.max_rank, a.escalated_at_turn, a.risks_seen) == (
        b.turns,
        b.max_tier,
        b.max_rank,
        b.escalated_at_turn,
        b.risks_seen,
    )


@pytest.mark.parametrize(("turns", "after"), CASES)
async def test_the_escalation_rule_in_process(turns: list[tuple[str, int, list[str]]], after: tuple) -> None:
    record, state = CallRecord(), InProcessState()
    for tier, rank, risks in turns:
        record.add_turn(tier, rank, risks)
        await state.record_turn("acme", "call-1", tier, rank, risks)
    assert same_call(record, expected(after, turns))
    assert same_call(await state.load_call("acme", "call-1"), record)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.mark.e2e
async def test_the_lua_script_applies_the_same_rule(redis_server: RedisServer) -> None:
    shared = SharedRedis(redis_server.url)
    state = RedisState(shared)
    try:
        for number, (turns, _) in enumerate(CASES):
            record = CallRecord()
            for tier, rank, risks in turns:
                record.add_turn(tier, rank, risks)
                await state.record_turn("acme", f"call-{number}", tier, rank, risks)
            assert same_call(await state.load_call("acme", f"call-{number}"), record), turns
        assert not state.degraded
    finally:
        await state.aclose()
        await shared.aclose()


def test_refused_requests_name_their_call_by_the_served_rule() -> None:
    headers = {"x-call-id": "call-7"}
    metadata = {"call_id": "call-8", "caller_id": "caller-1"}
    for strict in (True, False):
        assert call_identity(headers, metadata, None, strict=strict) == ("call-7", "caller-1")
        assert call_identity({}, metadata, None, strict=strict) == ("call-8", "caller-1")
        assert call_identity({}, None, "user-3", strict=strict) == ("user-3", None)
        assert call_identity({}, None, "Jane Doe", strict=strict) == (None, None)
    # An invalid id: a 400 for a request being served, nothing (not the next candidate) for one already refused.
    with pytest.raises(InvalidRequest):
        call_identity({"x-call-id": "no spaces"}, metadata, None)
    assert call_identity({"x-call-id": "no spaces"}, metadata, None, strict=False) == (None, "caller-1")


def test_a_streamed_answer_has_the_text_of_the_same_answer_whole() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "get_hours", "arguments": '{"day": "monday"}'}}
    answer = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "We open at nine.", "tool_calls": [call]}}]
    }
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "We open"}}]},
        {"choices": [{"index": 0, "delta": {"content": " at nine."}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "id": "t1", "function": {"name": "get_hours", "arguments": ""}}]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"day": '}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"monday"}'}}]}}]},
        {"choices": [], "usage": None},
    ]
    whole = completion_text(answer["choices"], "message")
    streamed = "".join(completion_text(chunk["choices"], "delta") for chunk in chunks)
    assert streamed == whole == 'We open at nine.get_hours{"day": "monday"}'
    assert text_tokens(streamed) == text_tokens(whole)
    assert completion_text(None, "delta") == completion_text([{"delta": None}, "junk"], "delta") == ""
