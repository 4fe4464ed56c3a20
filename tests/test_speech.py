"""Speech pricing and the ledger columns that carry it, without servers (end to end: test_voice_cost_e2e.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from router.accounting.ledger import LEDGER_COLUMNS, LedgerRecord, SQLiteLedgerSink, record_to_row
from router.accounting.speech import SpeechPrices, SpeechUsage, price_speech, turn_speech, usage_report_schema
from router.errors import InvalidRequest

PRICES = SpeechPrices(
    stt_per_minute={"deepgram/nova-3": 0.0077, "deepgram": 0.0058},
    tts_per_million_characters={"default": 15.0},
    telephony_per_minute={"twilio": 0.0085},
)


def test_a_model_price_wins_over_its_vendor_and_default_applies_without_a_vendor() -> None:
    cost = price_speech(
        SpeechUsage(stt_seconds=30, stt_vendor="deepgram", stt_model="nova-3", tts_characters=2000),
        PRICES,
        "metadata.voice.",
    )
    assert cost.cost_usd == {"stt": pytest.approx(0.5 * 0.0077), "tts": pytest.approx(0.03)}
    assert cost.vendors == {"stt": "deepgram/nova-3", "tts": "default"}
    other_model = price_speech(SpeechUsage(stt_seconds=60, stt_vendor="deepgram", stt_model="nova-2"), PRICES, "")
    assert other_model.cost_usd["stt"] == pytest.approx(0.0058)


def test_speech_metadata_is_parsed_strictly() -> None:
    assert turn_speech({"voice": {"call_seconds": 3, "asr_confidence": 0.9}}, PRICES) is None
    assert turn_speech({"voice": "not an object"}, PRICES) is None  # the lenient voice facts ignore it too
    for voice, param in (
        ({"stt_seconds": True}, "metadata.voice.stt_seconds"),
        ({"stt_seconds": float("inf")}, "metadata.voice.stt_seconds"),
        ({"tts_characters": "12"}, "metadata.voice.tts_characters"),
        ({"telephony_seconds": 3, "telephony_vendor": "telnyx"}, "metadata.voice.telephony_vendor"),
        ({"stt_vendor": "deep gram"}, "metadata.voice.stt_vendor"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            turn_speech({"voice": voice}, PRICES)
        assert caught.value.param == param


def test_a_ledger_file_from_before_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    columns = list(LEDGER_COLUMNS)
    old = columns[: columns.index("stt_seconds")]  # the ledger of migration 0001
    row = record_to_row(LedgerRecord(request_id="r0", tenant="t", status=200, cost_usd=0.5))
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE ledger ({', '.join(old)}, PRIMARY KEY (record_id))")
        db.execute(f"INSERT INTO ledger VALUES ({', '.join('?' * len(old))})", [row[name] for name in old])
    sink = SQLiteLedgerSink(path)

    async def roundtrip() -> list[LedgerRecord]:
        await sink.write_batch(
            [LedgerRecord(request_id="r1", tenant="t", status=200, stt_seconds=3.0, call_outcome="resolved")]
        )
        records = await sink.query("t")
        await sink.aclose()
        return records

    old_record, new_record = asyncio.run(roundtrip())
    assert (old_record.cost_usd, old_record.stt_cost_usd, old_record.speech_vendors) == (0.5, 0.0, {})
    assert (old_record.stt_seconds, old_record.call_outcome) == (None, None)
    assert (new_record.stt_seconds, new_record.call_outcome) == (3.0, "resolved")


def test_the_documented_usage_report_names_the_priced_vendors() -> None:
    schema = usage_report_schema(PRICES)
    assert schema["properties"]["stt_vendor"] == {"anyOf": [{"enum": ["deepgram"]}, {"type": "null"}]}
    assert "tts_vendor" not in schema["properties"]  # only a default TTS price: name no vendor
    assert schema["dependentRequired"] == {"stt_seconds": ["stt_vendor"], "telephony_seconds": ["telephony_vendor"]}
    bare = usage_report_schema(SpeechPrices())["properties"]
    assert "stt_seconds" not in bare and "call_seconds" in bare and "outcome" in bare
