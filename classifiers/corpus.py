"""The public-data corpus in ``classifiers/data/public/``: typed rows, loading by source, calls in turn order.

The files are built by ``classifiers/corpus_build.py`` from public snapshots (see that directory's README); each
row carries the source's own label and our mapped labels: the routing ``contract`` (issue 12's
high_stakes / small_safe / standard), ``intent`` and ``risks``. Rows of multi-turn sources also carry their
call id, their position in the call and every earlier message of the call, so a call can be replayed in order.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from classifiers.catalog import COARSE_INTENTS, RISKS

PUBLIC_DIR = Path(__file__).resolve().parent / "data" / "public"
MAPPING_PATH = PUBLIC_DIR / "mapping.yaml"
MANIFEST_PATH = PUBLIC_DIR / "manifest.json"

Contract = Literal["high_stakes", "small_safe", "standard"]
CONTRACTS: tuple[Contract, ...] = ("high_stakes", "small_safe", "standard")

SINGLE_TURN_SOURCES = ("banking77", "clinc150", "nlupp", "hint3", "nlu_evaluation_data")
MULTI_TURN_SOURCES = ("sgd", "star", "taskmaster4", "mts_dialog")
SOURCES = SINGLE_TURN_SOURCES + MULTI_TURN_SOURCES


class HistoryMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str


class CorpusRow(BaseModel):
    """One caller turn with the source's label and our mapped labels."""

    model_config = ConfigDict(frozen=True)

    source: str
    split: str
    text: str
    source_label: str
    contract: Contract
    intent: str
    risks: tuple[str, ...] = ()
    call_id: str | None = None
    turn_index: int | None = None
    history: tuple[HistoryMessage, ...] = ()

    @field_validator("intent")
    @classmethod
    def _known_intent(cls, intent: str) -> str:
        if intent not in COARSE_INTENTS:
            raise ValueError(f"unknown intent {intent!r}")
        return intent

    @field_validator("risks")
    @classmethod
    def _known_risks(cls, risks: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [risk for risk in risks if risk not in RISKS]
        if unknown:
            raise ValueError(f"unknown risks {unknown}")
        return tuple(risk for risk in RISKS if risk in risks)

    @property
    def in_call(self) -> bool:
        return self.call_id is not None


def source_path(source: str, directory: Path = PUBLIC_DIR) -> Path:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return directory / f"{source}.jsonl.gz"


def load_source(source: str, directory: Path = PUBLIC_DIR) -> list[CorpusRow]:
    with gzip.open(source_path(source, directory), "rt", encoding="utf-8") as lines:
        return [CorpusRow.model_validate_json(line) for line in lines if line.strip()]


def load_corpus(sources: Sequence[str] = SOURCES, directory: Path = PUBLIC_DIR) -> list[CorpusRow]:
    return [row for source in sources for row in load_source(source, directory)]


def iter_calls(rows: Iterable[CorpusRow]) -> Iterator[tuple[str, list[CorpusRow]]]:
    """Each call's rows in turn order; rows outside calls are skipped. Calls come in first-seen order."""
    in_calls = [row for row in rows if row.call_id is not None]
    order = {call_id: position for position, call_id in enumerate(dict.fromkeys(row.call_id for row in in_calls))}
    in_calls.sort(key=lambda row: (order[row.call_id], row.turn_index))
    for call_id, turns in groupby(in_calls, key=lambda row: row.call_id):
        yield str(call_id), list(turns)


def load_mapping(path: Path = MAPPING_PATH) -> dict[str, Any]:
    # libyaml's loader when present: the mapping is large enough for the pure-Python one to be slow.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
