"""The committed public corpus: loader, mapping coverage, README counts and hand-checked mappings.

The whole-file checks read the rows as plain JSON (the builder already validated them as ``CorpusRow``) so
the unit suite stays fast; the loader's own validation is exercised on the smaller files.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from functools import cache
from itertools import pairwise
from types import SimpleNamespace

import pytest

from classifiers.corpus import (
    CONTRACTS,
    MULTI_TURN_SOURCES,
    PUBLIC_DIR,
    SINGLE_TURN_SOURCES,
    SOURCES,
    CorpusRow,
    iter_calls,
    load_manifest,
    load_source,
    source_path,
)
from classifiers.corpus import load_mapping as read_mapping
from classifiers.corpus_build import Labels, nlupp_labels, sgd_labels, star_labels


@cache
def load_mapping() -> dict:
    return read_mapping()


@cache
def rows_of(source: str) -> tuple[SimpleNamespace, ...]:
    """The file's rows as plain records (attribute access like ``CorpusRow``, without re-validating)."""
    with gzip.open(source_path(source), "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    defaults = {"call_id": None, "turn_index": None, "history": []}
    return tuple(SimpleNamespace(**{**defaults, **record, "risks": tuple(record["risks"])}) for record in records)


@pytest.mark.parametrize("source", ["hint3", "nlupp", "taskmaster4"])
def test_loader_validates_the_same_rows(source: str) -> None:
    loaded = load_source(source)
    assert [(row.text, row.contract, row.risks) for row in loaded] == [
        (row.text, row.contract, row.risks) for row in rows_of(source)
    ]


def readme_counts() -> dict[str, list[int]]:
    table = {}
    for line in (PUBLIC_DIR / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", line)
        if match:
            table[match.group(1)] = [int(value) for value in match.groups()[1:]]
    return table


@pytest.mark.parametrize("source", SOURCES)
def test_readme_and_manifest_counts_match_the_files(source: str) -> None:
    rows = rows_of(source)
    contracts = Counter(row.contract for row in rows)
    calls = len({row.call_id for row in rows if row.call_id})
    actual = [len(rows), calls, *(contracts.get(contract, 0) for contract in CONTRACTS)]
    assert readme_counts()[source] == actual
    manifest = load_manifest()
    assert manifest["mapping_version"] == load_mapping()["version"]
    assert manifest["sources"][source]["rows"] == len(rows)


def flat_labels(source: str) -> set[str]:
    return set(load_mapping()["sources"][source]["labels"])


@pytest.mark.parametrize("source", ["banking77", "clinc150", "nlu_evaluation_data", "hint3", "taskmaster4"])
def test_every_flat_source_label_is_mapped_and_applied(source: str) -> None:
    mapping = load_mapping()["sources"][source]["labels"]
    for row in rows_of(source):
        contract, intent, risks = mapping[row.source_label][:3]
        if row.source_label != "none" or row.intent != "smalltalk":  # taskmaster4 courtesy turns
            assert (row.contract, row.intent, row.risks) == (contract, intent, tuple(risks)), row


def test_every_compositional_atom_is_mapped() -> None:
    sources = load_mapping()["sources"]
    atoms = set(sources["nlupp"]["atoms"])
    for row in rows_of("nlupp"):
        if not row.source_label.startswith("("):
            assert set(row.source_label.split("+")) <= atoms, row.source_label
    sgd_intents, sgd_acts = set(sources["sgd"]["intents"]), set(sources["sgd"]["acts"])
    for row in rows_of("sgd"):
        _, intent, acts = row.source_label.split("/")
        assert intent in sgd_intents and set(acts.split("+")) <= sgd_acts, row.source_label
    star_tasks = set(sources["star"]["tasks"])
    assert {row.source_label.split("/")[0] for row in rows_of("star")} <= star_tasks
    sections = set(sources["mts_dialog"]["sections"])
    assert {row.source_label for row in rows_of("mts_dialog")} <= sections


def test_single_turn_rows_have_no_call_and_multi_turn_rows_replay_in_order() -> None:
    for source in SINGLE_TURN_SOURCES:
        assert all(row.call_id is None and not row.history for row in rows_of(source))
    for source in MULTI_TURN_SOURCES:
        calls: dict[str, list[SimpleNamespace]] = {}
        for row in rows_of(source):
            calls.setdefault(row.call_id, []).append(row)
        assert calls, source
        for turns in calls.values():
            assert [turn.turn_index for turn in turns] == list(range(len(turns)))
            # Each turn's history extends the previous turn's history with that turn's own text.
            for earlier, later in pairwise(turns):
                assert later.history[: len(earlier.history)] == earlier.history
                assert later.history[len(earlier.history)] == {"role": "user", "content": earlier.text}
    loaded = list(iter_calls(load_source("taskmaster4")))
    assert len(loaded) == load_manifest()["sources"]["taskmaster4"]["calls"]


def test_iter_calls_groups_and_orders_rows() -> None:
    def turn(call_id: str | None, index: int | None) -> CorpusRow:
        return CorpusRow(
            source="sgd",
            split="train",
            text=f"{call_id}-{index}",
            source_label="x",
            contract="small_safe",
            intent="faq",
            call_id=call_id,
            turn_index=index,
        )

    rows = [turn("b", 1), turn("a", 0), turn(None, None), turn("b", 0)]
    grouped = [(call_id, [row.turn_index for row in turns]) for call_id, turns in iter_calls(rows)]
    assert grouped == [("b", [0, 1]), ("a", [0])]


def test_rows_reject_unknown_labels() -> None:
    with pytest.raises(ValueError):
        CorpusRow(source="x", split="y", text="t", source_label="l", contract="small_safe", intent="chat")
    with pytest.raises(ValueError):
        CorpusRow(source="x", split="y", text="t", source_label="l", contract="maybe", intent="faq")
    with pytest.raises(ValueError):
        CorpusRow(source="x", split="y", text="t", source_label="l", contract="small_safe", intent="faq", risks=("x",))


def test_hand_checked_flat_mappings() -> None:
    def row(source: str, text: str) -> SimpleNamespace:
        return next(row for row in rows_of(source) if row.text == text)

    assert row("banking77", "I am still waiting on my card?").contract == "small_safe"
    lost = [r for r in rows_of("banking77") if r.source_label == "lost_or_stolen_card"]
    assert lost and all(r.contract == "high_stakes" and "account_security" in r.risks for r in lost)
    transfers = [r for r in rows_of("clinc150") if r.source_label == "transfer"]
    assert transfers and {r.contract for r in transfers} == {"high_stakes"}
    side_effects = [r for r in rows_of("hint3") if r.source_label == "curekart/SIDE_EFFECT"]
    assert side_effects and {(r.contract, r.risks) for r in side_effects} == {("high_stakes", ("medical",))}


def test_hand_checked_compositional_mappings() -> None:
    atoms = load_mapping()["sources"]["nlupp"]["atoms"]
    assert nlupp_labels(["change", "pin"], False, atoms).contract == "high_stakes"
    assert nlupp_labels(["how_long", "refund"], False, atoms) == Labels("small_safe", "faq", ("payment",))
    assert nlupp_labels(["refund"], False, atoms).contract == "high_stakes"
    assert nlupp_labels(["lost_stolen"], False, atoms).contract == "high_stakes"
    assert nlupp_labels(["booking", "change"], False, atoms).contract == "small_safe"
    assert nlupp_labels(["thank"], False, atoms) == Labels("small_safe", "smalltalk", ())
    assert nlupp_labels([], True, atoms).intent == "data_collection"

    sources = load_mapping()["sources"]
    intents = {name: Labels(e[0], e[1], tuple(e[2])) for name, e in sources["sgd"]["intents"].items()}
    assert sgd_labels("TransferMoney", {"INFORM_INTENT", "INFORM"}, intents).contract == "high_stakes"
    assert sgd_labels("TransferMoney", {"AFFIRM"}, intents).contract == "high_stakes"
    assert sgd_labels("TransferMoney", {"REQUEST"}, intents).contract == "small_safe"
    assert sgd_labels("TransferMoney", {"THANK_YOU"}, intents).contract == "small_safe"
    assert sgd_labels("FindRestaurants", {"INFORM_INTENT"}, intents) == Labels("small_safe", "faq", ())

    star = sources["star"]
    assert star_labels("bank_balance", "bank_ask_pin", star).contract == "high_stakes"
    assert star_labels("doctor_schedule", "doctor_ask_symptoms", star).contract == "high_stakes"
    assert star_labels("bank_fraud_report", "OPENING", star).contract == "high_stakes"
    assert star_labels("bank_fraud_report", "bank_inform_fraud_report_submitted", star).contract == "small_safe"
    assert star_labels("bank_fraud_report", "custom", star).contract == "standard"
    assert star_labels("restaurant_book", "restaurant_ask_size", star).contract == "small_safe"


def test_mts_patient_turns_are_medical_except_courtesy_and_social_history() -> None:
    rows = rows_of("mts_dialog")
    symptom = [r for r in rows if "pain" in r.text.lower() and r.source_label != "FAM/SOCHX"]
    assert symptom and all(r.contract == "high_stakes" and r.risks == ("medical",) for r in symptom)
    small = {r.text.lower().strip(".!") for r in rows if r.contract == "small_safe"}
    assert small >= {"thank you", "okay", "good afternoon, doctor"}
    # family and social history mixes relatives' illnesses with chatter about pets and work: standard
    assert {r.contract for r in rows if r.source_label == "FAM/SOCHX"} == {"standard"}


def test_nlupp_action_on_an_appointment_is_scheduling() -> None:
    atoms = load_mapping()["sources"]["nlupp"]["atoms"]
    meeting = nlupp_labels(["appointment", "cancel_close_leave_freeze", "mortgage"], False, atoms)
    assert meeting == Labels("small_safe", "scheduling", ())
    assert nlupp_labels(["cancel_close_leave_freeze", "mortgage"], False, atoms).contract == "high_stakes"
