"""The whole cost of a voice call: speech-to-text minutes, text-to-speech characters and telephony minutes.

A turn reports what its speech cost in ``metadata.voice`` (``stt_seconds``, ``tts_characters``,
``telephony_seconds`` with ``stt_vendor``/``stt_model``, ``tts_vendor``/``tts_model``, ``telephony_vendor``), and a
call may report its totals once at its end (``POST /v1/calls/{call_id}/usage``). Both are priced from the gateway
YAML's ``speech_prices`` (USD; a key is ``vendor/model`` or a vendor alone, ``default`` when no vendor is named) and
kept in the ledger beside the LLM cost, which stays ``cost_usd`` (budgets charge LLM spend only).

Every field is hostile until parsed: numbers are JSON numbers within bounds, names are short ids, and a vendor the
price table does not know is a 400 naming the field, never an unpriced cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from router.errors import InvalidRequest, validation_error

SpeechKind = Literal["stt", "tts", "telephony"]
SPEECH_KINDS: tuple[SpeechKind, ...] = ("stt", "tts", "telephony")
DEFAULT_VENDOR = "default"
MAX_SECONDS = 86_400.0  # a day: no single call or turn lasts longer
MAX_CHARACTERS = 10_000_000
CALL_USAGE_PREFIX = "call-usage:"  # the record id of a call's usage report: ``call-usage:<tenant>:<call id>``


def _json_number(value: Any) -> Any:
    if isinstance(value, str | bool):
        raise PydanticCustomError("number_type", "Input should be a number")
    return value


Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False), BeforeValidator(_json_number)]
Characters = Annotated[int, Field(ge=0, le=MAX_CHARACTERS), BeforeValidator(_json_number)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@/-]+$", strict=True)]
Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


class SpeechPrices(BaseModel):
    """``speech_prices`` in the gateway YAML: USD per unit, by ``vendor/model`` or vendor (or ``default``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stt_per_minute: dict[str, Price] = Field(default_factory=dict)
    tts_per_million_characters: dict[str, Price] = Field(default_factory=dict)
    telephony_per_minute: dict[str, Price] = Field(default_factory=dict)

    def table(self, kind: SpeechKind) -> Mapping[str, float]:
        return {
            "stt": self.stt_per_minute,
            "tts": self.tts_per_million_characters,
            "telephony": self.telephony_per_minute,
        }[kind]


class SpeechUsage(BaseModel):
    """Speech a turn (``metadata.voice``) or a whole call (its usage report) consumed; other keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stt_seconds: Seconds | None = None
    tts_characters: Characters | None = None
    telephony_seconds: Seconds | None = None
    stt_vendor: Name | None = None
    stt_model: Name | None = None
    tts_vendor: Name | None = None
    tts_model: Name | None = None
    telephony_vendor: Name | None = None
    outcome: Literal["resolved", "transferred", "abandoned"] | None = Field(
        default=None, description="How the call ended (with call_ended, or in the call's usage report)."
    )

    @property
    def empty(self) -> bool:
        quantities = (self.stt_seconds, self.tts_characters, self.telephony_seconds, self.outcome)
        return all(q is None for q in quantities)


class CallUsageReport(SpeechUsage):
    """``POST /v1/calls/{call_id}/usage``: the call's speech totals, its length and how it ended (``{}`` just
    ends the call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call_seconds: Seconds | None = None


@dataclass(frozen=True, slots=True)
class SpeechCost:
    """Speech quantities and their prices, as the ledger keeps them."""

    stt_seconds: float | None = None
    tts_characters: int | None = None
    telephony_seconds: float | None = None
    cost_usd: dict[SpeechKind, float] = field(default_factory=dict)
    vendors: dict[str, str] = field(default_factory=dict)
    outcome: str | None = None

    @property
    def total_usd(self) -> float:
        return sum(self.cost_usd.values())

    def ledger_fields(self) -> dict[str, Any]:
        return {
            "stt_seconds": self.stt_seconds,
            "tts_characters": self.tts_characters,
            "telephony_seconds": self.telephony_seconds,
            "stt_cost_usd": self.cost_usd.get("stt", 0.0),
            "tts_cost_usd": self.cost_usd.get("tts", 0.0),
            "telephony_cost_usd": self.cost_usd.get("telephony", 0.0),
            "speech_vendors": dict(self.vendors),
            "call_outcome": self.outcome,
        }


def price_speech(usage: SpeechUsage, prices: SpeechPrices, where: str) -> SpeechCost:
    """Price ``usage``; a quantity whose vendor (or ``default``) has no price is a 400 naming ``where``'s field."""
    quantities: dict[SpeechKind, tuple[float | None, float, str | None, str | None]] = {
        "stt": (usage.stt_seconds, 60.0, usage.stt_vendor, usage.stt_model),
        "tts": (usage.tts_characters, 1_000_000.0, usage.tts_vendor, usage.tts_model),
        "telephony": (usage.telephony_seconds, 60.0, usage.telephony_vendor, None),
    }
    costs: dict[SpeechKind, float] = {}
    vendors: dict[str, str] = {}
    for kind, (quantity, per, vendor, model) in quantities.items():
        if quantity is None:
            continue
        table = prices.table(kind)
        keys = [f"{vendor}/{model}"] if vendor and model else []
        keys.append(vendor or DEFAULT_VENDOR)
        key = next((k for k in keys if k in table), None)
        if key is None:
            raise InvalidRequest(
                f"no {kind} price for '{keys[0]}' in the gateway's speech_prices",
                param=f"{where}{kind}_vendor",
                code="unknown_speech_vendor",
            )
        costs[kind] = quantity / per * table[key]
        vendors[kind] = key
    return SpeechCost(usage.stt_seconds, usage.tts_characters, usage.telephony_seconds, costs, vendors, usage.outcome)


def turn_speech(metadata: Mapping[str, Any] | None, prices: SpeechPrices) -> SpeechCost | None:
    """The priced speech of a turn's ``metadata.voice`` (``None`` without any); 400 naming a bad field."""
    voice = (metadata or {}).get("voice")
    if not isinstance(voice, Mapping):
        return None
    try:
        usage = SpeechUsage.model_validate(voice)
    except ValidationError as exc:
        raise validation_error(
            [{**error, "loc": ("metadata", "voice", *error["loc"])} for error in exc.errors()]
        ) from exc
    return None if usage.empty else price_speech(usage, prices, "metadata.voice.")


def usage_report_schema(prices: SpeechPrices) -> dict[str, Any]:
    """The JSON schema of ``CallUsageReport`` as this gateway accepts it: a vendor is one its price table prices by
    name; a quantity without one needs a ``default`` price; a kind without any price takes no quantity."""
    schema = CallUsageReport.model_json_schema()
    properties = schema["properties"]
    dependent: dict[str, list[str]] = {}
    quantities: dict[SpeechKind, str] = {
        "stt": "stt_seconds",
        "tts": "tts_characters",
        "telephony": "telephony_seconds",
    }
    for kind, quantity in quantities.items():
        table = prices.table(kind)
        vendors = sorted(key for key in table if "/" not in key and key != DEFAULT_VENDOR)
        if not table:
            for name in (quantity, f"{kind}_vendor", f"{kind}_model"):
                properties.pop(name, None)
            continue
        if vendors:
            properties[f"{kind}_vendor"] = {"anyOf": [{"enum": vendors}, {"type": "null"}]}
        else:
            properties.pop(f"{kind}_vendor")
        if DEFAULT_VENDOR not in table:
            dependent[quantity] = [f"{kind}_vendor"]
    if dependent:
        schema["dependentRequired"] = dependent
    return schema


def speech_cost_of(record: Any) -> float:
    """The speech spend of a ledger record (``LedgerRecord``)."""
    return float(sum(getattr(record, f"{kind}_cost_usd") for kind in SPEECH_KINDS))


def observe_speech(metrics: Any, record: Any, tenant_label: str, agent_label: str) -> None:
    """``switchboard_speech_cost_usd_total{kind, vendor}`` for a ledger record (vendors are the price table's keys,
    so the operator bounds the label values)."""
    for kind in SPEECH_KINDS:
        cost = getattr(record, f"{kind}_cost_usd")
        if cost:
            metrics.speech_cost.labels(tenant_label, agent_label, kind, record.speech_vendors.get(kind, "")).inc(cost)


NO_SPEECH = SpeechCost().ledger_fields()
