"""Regenerate ``classifiers/data/public/`` from the public snapshots (an offline tool; serving never imports it).

    python -m classifiers.corpus_build --mirror /work/.mirror

reads each source's bare git snapshot (``<mirror>/<owner>+<name>/repo``, as the ``fetch`` tool leaves them),
takes only the allowed files and splits, maps every source label through ``mapping.yaml`` and writes one
``<source>.jsonl.gz`` per source plus ``manifest.json`` (snapshot commits, sampling, counts). Output is
byte-for-byte deterministic: sorted inputs, seeded sampling, gzip without timestamps.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from classifiers.corpus import (
    MANIFEST_PATH,
    PUBLIC_DIR,
    SOURCES,
    CorpusRow,
    HistoryMessage,
    load_mapping,
    source_path,
)

SEED = 20261202
# Dialogue sources are sampled by whole dialogue so the committed corpus stays small (see README).
SGD_OTHER_DIALOGUES = 450  # plus every dialogue that uses a Banks_* service
STAR_DIALOGUES_PER_TASK = 30
STAR_DIALOGUES_PER_RISKY_TASK = 80  # tasks not mapped small_safe (bank_*, doctor_followup): more stakes
TASKMASTER4_DIALOGUES = 400

REPOSITORIES = {
    "banking77": "PolyAI-LDN/task-specific-datasets",
    "nlupp": "PolyAI-LDN/task-specific-datasets",
    "clinc150": "clinc/oos-eval",
    "nlu_evaluation_data": "xliuhw/NLU-Evaluation-Data",
    "hint3": "hellohaptik/HINT3",
    "sgd": "google-research-datasets/dstc8-schema-guided-dialogue",
    "taskmaster4": "google-research-datasets/Taskmaster",
    "star": "RasaHQ/STAR",
    "mts_dialog": "abachaa/MTS-Dialog",
}
NLU_ED_TRAIN_DIR = (
    "CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/CrossValidation/KFold_1/trainset/"
)
HINT3_BOTS = ("curekart", "powerplay11", "sofmattress")
SGD_SPLITS = ("train", "dev")
MTS_FILES = {
    "train": "Main-Dataset/MTS-Dialog-TrainingSet.csv",
    "validation": "Main-Dataset/MTS-Dialog-ValidationSet.csv",
}
MTS_USER_SPEAKERS = {"patient", "guest_family"}
STAR_FREE_FORM_PROMPTS = ("custom", "out_of_scope")
# A run of digits long enough to be an account number or PIN (STAR's bank tasks ask for both).
STAR_ACCOUNT_DIGITS = re.compile(r"\d{4,}")
STAR_CLOSING_MARKERS = ("_inform_", "_successful", "_succeeded", "_failed", "_unavailable", "_nothing_found", "_result")
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


class Snapshot:
    """One bare git snapshot; files the snapshot left out (4 MiB or more) read as ``None``."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    def _git(self, *arguments: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *arguments], check=True, capture_output=True).stdout

    def commit(self) -> str:
        return self._git("rev-parse", "HEAD").decode().strip()

    def paths(self, prefix: str) -> list[str]:
        return sorted(self._git("ls-tree", "-r", "--name-only", "HEAD", prefix).decode().splitlines())

    def read(self, path: str) -> str | None:
        try:
            return self._git("show", f"HEAD:{path}").decode("utf-8")
        except subprocess.CalledProcessError:
            return None


@dataclass(frozen=True)
class Labels:
    contract: str
    intent: str
    risks: tuple[str, ...]


def _labels(entry: Sequence[Any]) -> Labels:
    contract, intent, risks = entry[0], entry[1], entry[2]
    return Labels(contract, intent, tuple(risks))


def _flat(mapping: dict[str, Any], source: str) -> dict[str, Labels]:
    return {str(label): _labels(entry) for label, entry in mapping["sources"][source]["labels"].items()}


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _courtesy_key(text: str) -> str:
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def _row(source: str, split: str, text: str, source_label: str, labels: Labels, **call: Any) -> CorpusRow:
    return CorpusRow(
        source=source,
        split=split,
        text=text,
        source_label=source_label,
        contract=labels.contract,
        intent=labels.intent,
        risks=labels.risks,
        **call,
    )


def _unique(rows: Iterator[CorpusRow]) -> list[CorpusRow]:
    """Single-turn sources: the first row of each distinct text (several sources repeat phrasings)."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row.text and row.text not in seen:
            seen.add(row.text)
            kept.append(row)
    return kept


# --- single-turn sources ---------------------------------------------------------------------------------


def build_banking77(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    labels = _flat(mapping, "banking77")
    text = snapshot.read("banking_data/train.csv") or ""
    return _unique(
        _row("banking77", "train", _clean(record["text"]), record["category"], labels[record["category"]])
        for record in csv.DictReader(io.StringIO(text))
    )


def build_clinc150(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    labels = _flat(mapping, "clinc150")
    data = json.loads(snapshot.read("data/data_full.json") or "{}")
    # The test and oos_test parts are never read: they are CLINC's test split.
    parts = (("train", "train"), ("val", "val"), ("oos_train", "train"), ("oos_val", "val"))
    return _unique(
        _row("clinc150", split, _clean(text), label, labels[label])
        for part, split in parts
        for text, label in data[part]
    )


def build_nlu_evaluation_data(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    labels = _flat(mapping, "nlu_evaluation_data")

    def rows() -> Iterator[CorpusRow]:
        for path in snapshot.paths(NLU_ED_TRAIN_DIR):
            reader = csv.DictReader(io.StringIO(snapshot.read(path) or ""), delimiter=";")
            for record in reader:
                label = f"{record['scenario']}_{record['intent']}"
                text = _clean(record["answer_from_user"] or record["answer_from_anno"])
                yield _row("nlu_evaluation_data", "kfold1_train", text, label, labels[label])

    return _unique(rows())


def build_hint3(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    labels = _flat(mapping, "hint3")

    def rows() -> Iterator[CorpusRow]:
        for bot in HINT3_BOTS:
            reader = csv.reader(io.StringIO(snapshot.read(f"dataset/v2/train/{bot}_train.csv") or ""))
            next(reader)
            for record in reader:
                label = f"{bot}/{record[1]}"
                yield _row("hint3", "train", _clean(record[0]), label, labels[label])

    return _unique(rows())


def nlupp_labels(intents: Sequence[str], has_slots: bool, atoms: dict[str, dict[str, str]]) -> Labels:
    """NLU++'s multi-label turn -> one contract/intent/risks, by the rule documented in mapping.yaml."""
    roles = {atoms[intent]["role"] for intent in intents}
    kinds = {atoms[intent].get("kind") for intent in intents if atoms[intent]["role"] == "object"}
    money = bool(kinds & {"money", "card"})
    if "lost" in roles:
        return Labels("high_stakes", "faq", ("payment", "account_security"))
    if "problem" in roles:
        if money or "refund" in intents:
            return Labels("high_stakes", "faq", ("payment",))
        return Labels("standard", "faq", ("payment",) if kinds & {"contract"} else ())
    if "action" in roles:
        if "appointment" in intents:  # booking, moving or cancelling a meeting, whatever it is about
            return Labels("small_safe", "scheduling", ())
        if kinds & {"security", "card"}:
            return Labels("high_stakes", "transaction", ("account_security",))
        if kinds & {"money", "contract"}:
            return Labels("high_stakes", "transaction", ("payment",))
        if kinds & {"booking", "hotel"}:
            return Labels("small_safe", "scheduling", ())
        return Labels("standard", "transaction", ())
    if {"refund", "transfer_payment_deposit"} & set(intents) and "question" not in roles:
        return Labels("high_stakes", "transaction", ("payment",))
    if "handoff" in roles:
        return Labels("standard", "complaint", ())
    if "question" in roles:
        return Labels("small_safe", "faq", ("payment",) if kinds & {"money", "card", "contract", "security"} else ())
    if roles <= {"act", "modifier"} and "act" in roles:
        return Labels("small_safe", "smalltalk", ())
    if not intents:
        return Labels("small_safe", "data_collection" if has_slots else "other", ())
    if "balance" in intents:
        return Labels("standard", "faq", ("payment",))
    return Labels("small_safe", "faq", ("payment",) if kinds & {"money", "card", "contract", "security"} else ())


def nlupp_source_label(intents: Sequence[str], has_slots: bool) -> str:
    if intents:
        return "+".join(sorted(intents))
    return "(slots)" if has_slots else "(none)"


def build_nlupp(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    atoms = mapping["sources"]["nlupp"]["atoms"]

    def rows() -> Iterator[CorpusRow]:
        for path in snapshot.paths("nlupp/data/"):
            if not re.search(r"/fold\d+\.json$", path):
                continue
            for record in json.loads(snapshot.read(path) or "[]"):
                intents = sorted(record.get("intents", []))
                has_slots = bool(record.get("slots"))
                labels = nlupp_labels(intents, has_slots, atoms)
                fold = Path(path).stem
                yield _row("nlupp", fold, _clean(record["text"]), nlupp_source_label(intents, has_slots), labels)

    return _unique(rows())


# --- multi-turn sources ----------------------------------------------------------------------------------


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    text: str
    source_label: str = ""
    labels: Labels | None = None


def _call_rows(source: str, split: str, call_id: str, turns: list[Turn]) -> list[CorpusRow]:
    """User turns of one dialogue as rows, each with every earlier message as its history."""
    rows: list[CorpusRow] = []
    history: list[HistoryMessage] = []
    for turn in turns:
        if not turn.text:
            continue
        if turn.role == "user" and turn.labels is not None:
            rows.append(
                _row(
                    source,
                    split,
                    turn.text,
                    turn.source_label,
                    turn.labels,
                    call_id=call_id,
                    turn_index=len(rows),
                    history=tuple(history),
                )
            )
        history.append(HistoryMessage(role="user" if turn.role == "user" else "assistant", content=turn.text))
    return rows


def sgd_labels(intent: str, acts: set[str], intents: dict[str, Labels]) -> Labels:
    """One SGD user turn -> labels, by the rule documented in mapping.yaml."""
    if acts <= {"THANK_YOU", "GOODBYE"}:
        return Labels("small_safe", "smalltalk", ())
    task = intents[intent]
    if acts & {"INFORM_INTENT", "AFFIRM_INTENT"}:
        act_intent = task.intent
    elif acts == {"REQUEST"}:
        act_intent = "faq"
    else:
        act_intent = "data_collection"
    if task.contract == "high_stakes" and acts == {"REQUEST"}:
        return Labels("small_safe", "faq", task.risks)
    return Labels(task.contract, act_intent, task.risks)


def _sgd_dialogues(snapshot: Snapshot) -> Iterator[tuple[str, dict[str, Any]]]:
    for split in SGD_SPLITS:
        for path in snapshot.paths(f"{split}/"):
            if not re.search(r"/dialogues_\d+\.json$", path):
                continue
            text = snapshot.read(path)
            if text is None:  # left out of the snapshot (4 MiB or more)
                continue
            for dialogue in json.loads(text):
                yield split, dialogue


def build_sgd(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    intents = {name: _labels(entry) for name, entry in mapping["sources"]["sgd"]["intents"].items()}
    dialogues = list(_sgd_dialogues(snapshot))
    banks = [item for item in dialogues if any(s.startswith("Banks_") for s in item[1]["services"])]
    others = [item for item in dialogues if not any(s.startswith("Banks_") for s in item[1]["services"])]
    chosen = banks + random.Random(SEED).sample(others, min(SGD_OTHER_DIALOGUES, len(others)))
    rows = []
    for split, dialogue in sorted(chosen, key=lambda item: (item[0], item[1]["dialogue_id"])):
        turns = []
        for turn in dialogue["turns"]:
            text = _clean(turn["utterance"])
            if turn["speaker"] != "USER":
                turns.append(Turn("assistant", text))
                continue
            frame = max(turn["frames"], key=lambda f: len(f["actions"]))  # the frame the user acted in
            acts = {action["act"] for f in turn["frames"] for action in f["actions"]}
            intent = frame.get("state", {}).get("active_intent") or "NONE"
            label = f"{frame['service']}/{intent}/{'+'.join(sorted(acts))}"
            turns.append(Turn("user", text, label, sgd_labels(intent, acts, intents)))
        rows += _call_rows("sgd", split, f"sgd-{split}-{dialogue['dialogue_id']}", turns)
    return rows


def star_labels(task: str, prompt: str, star: dict[str, Any]) -> Labels:
    """One STAR user turn -> labels from its task and the wizard's previous label (rule in mapping.yaml)."""
    prompts = star["prompts"]
    if prompt in prompts:
        return _labels(prompts[prompt])
    if "_ask_" in prompt:
        return Labels("small_safe", "data_collection", ())
    closing = prompt.endswith("_bye") or prompt.startswith("goodbye") or prompt == "anything_else"
    if closing or any(marker in prompt for marker in STAR_CLOSING_MARKERS):
        return Labels("small_safe", "smalltalk", ())
    labels = _labels(star["tasks"][task])
    if prompt in STAR_FREE_FORM_PROMPTS and labels.contract != "small_safe":
        return Labels("standard", labels.intent, labels.risks)
    return labels


def _star_task(dialogue: dict[str, Any]) -> str | None:
    for event in dialogue["Events"]:
        if event.get("Action") == "query" and event.get("APIName"):
            return str(event["APIName"])
    capabilities = dialogue["Scenario"]["WizardCapabilities"]
    return str(capabilities[0]["Task"]) if len(capabilities) == 1 else None


def build_star(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    star = mapping["sources"]["star"]
    courtesy = set(mapping["courtesy_turns"])
    by_task: dict[str, list[dict[str, Any]]] = {}
    for path in snapshot.paths("dialogues/"):
        dialogue = json.loads(snapshot.read(path) or "{}")
        task = _star_task(dialogue)
        if dialogue.get("CompletionLevel") == "Complete" and task is not None and task in star["tasks"]:
            by_task.setdefault(task, []).append(dialogue)
    rows = []
    sampler = random.Random(SEED)
    for task in sorted(by_task):
        candidates = sorted(by_task[task], key=lambda d: d["DialogueID"])
        risky = star["tasks"][task][0] != "small_safe"
        wanted = STAR_DIALOGUES_PER_RISKY_TASK if risky else STAR_DIALOGUES_PER_TASK
        for dialogue in sorted(sampler.sample(candidates, min(wanted, len(candidates))), key=lambda d: d["DialogueID"]):
            turns = []
            prompt = "OPENING"
            for event in dialogue["Events"]:
                text = _clean(event.get("Text", ""))
                if event["Agent"] == "User" and event["Action"] == "utter":
                    labels = star_labels(task, prompt, star)
                    label = f"{task}/{prompt}"
                    if _courtesy_key(text) in courtesy:
                        labels, label = Labels("small_safe", "smalltalk", ()), f"{task}/COURTESY"
                    elif task.startswith("bank_") and STAR_ACCOUNT_DIGITS.search(text):
                        labels = Labels("high_stakes", "data_collection", ("payment", "pii", "account_security"))
                        label = f"{task}/ACCOUNT_DIGITS"
                    turns.append(Turn("user", text, label, labels))
                elif event["Agent"] == "Wizard" and event["Action"] in ("pick_suggestion", "utter"):
                    prompt = event.get("ActionLabel") or "custom"
                    turns.append(Turn("assistant", text))
            rows += _call_rows("star", "all", f"star-{dialogue['DialogueID']}", turns)
    return rows


def _mts_turns(dialogue: str) -> list[tuple[str, str]]:
    """``Doctor: ...`` / ``Patient: ...`` lines -> (speaker, text); unprefixed lines continue the last turn."""
    turns: list[tuple[str, str]] = []
    for line in dialogue.splitlines():
        match = re.match(r"\s*([A-Za-z_]+)\s*:\s*(.*)", line)
        if match and match.group(1).lower() in MTS_USER_SPEAKERS | {"doctor", "guest_clinician"}:
            turns.append((match.group(1).lower(), match.group(2)))
        elif turns and line.strip():
            speaker, text = turns[-1]
            turns[-1] = (speaker, f"{text} {line.strip()}")
    return turns


def build_mts_dialog(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    sections = {name: _labels(entry) for name, entry in mapping["sources"]["mts_dialog"]["sections"].items()}
    courtesy = set(mapping["courtesy_turns"])
    rows = []
    for split, path in MTS_FILES.items():
        for record in csv.DictReader(io.StringIO(snapshot.read(path) or "")):
            section = record["section_header"].strip()
            turns = []
            for speaker, raw in _mts_turns(record["dialogue"]):
                text = _clean(raw)
                if speaker not in MTS_USER_SPEAKERS:
                    turns.append(Turn("assistant", text))
                elif _courtesy_key(text) in courtesy:
                    turns.append(Turn("user", text, "COURTESY", sections["COURTESY"]))
                else:
                    turns.append(Turn("user", text, section, sections[section]))
            rows += _call_rows("mts_dialog", split, f"mts-{split}-{record['ID']}", turns)
    return rows


def build_taskmaster4(snapshot: Snapshot, mapping: dict[str, Any]) -> list[CorpusRow]:
    labels = _flat(mapping, "taskmaster4")
    courtesy = set(mapping["courtesy_turns"])
    dialogues = []
    for path in snapshot.paths("TM-4-2024/data/"):
        text = snapshot.read(path)
        if text is not None:
            dialogues += json.loads(text)
    dialogues.sort(key=lambda d: d["conversation_id"])
    chosen = sorted(
        random.Random(SEED).sample(dialogues, min(TASKMASTER4_DIALOGUES, len(dialogues))),
        key=lambda d: d["conversation_id"],
    )
    rows = []
    for dialogue in chosen:
        turns = []
        for utterance in dialogue["utterances"]:
            text = _clean(utterance["text"])
            if utterance["speaker"] != "user":
                turns.append(Turn("assistant", text))
                continue
            calls = [a["value"] for a in utterance.get("annotations", []) if a["name"] == "api_call"]
            label = calls[0] if calls else "none"
            if not calls and _courtesy_key(text) in courtesy:
                turns.append(Turn("user", text, label, Labels("small_safe", "smalltalk", ())))
            else:
                turns.append(Turn("user", text, label, labels[label]))
        rows += _call_rows("taskmaster4", "all", f"tm4-{dialogue['conversation_id']}", turns)
    return rows


BUILDERS: dict[str, Callable[[Snapshot, dict[str, Any]], list[CorpusRow]]] = {
    "banking77": build_banking77,
    "clinc150": build_clinc150,
    "nlupp": build_nlupp,
    "hint3": build_hint3,
    "nlu_evaluation_data": build_nlu_evaluation_data,
    "sgd": build_sgd,
    "star": build_star,
    "taskmaster4": build_taskmaster4,
    "mts_dialog": build_mts_dialog,
}


def write_rows(rows: list[CorpusRow], path: Path) -> None:
    lines = "".join(
        json.dumps(row.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n" for row in rows
    )
    path.write_bytes(gzip.compress(lines.encode("utf-8"), compresslevel=9, mtime=0))


def summary(rows: list[CorpusRow]) -> dict[str, Any]:
    return {
        "rows": len(rows),
        "calls": len({row.call_id for row in rows if row.call_id}),
        "contract": dict(sorted(Counter(row.contract for row in rows).items())),
        "intent": dict(sorted(Counter(row.intent for row in rows).items())),
        "split": dict(sorted(Counter(row.split for row in rows).items())),
    }


def build(mirror: Path, output: Path, sources: Sequence[str] = SOURCES) -> dict[str, Any]:
    mapping = load_mapping(output / "mapping.yaml")
    manifest: dict[str, Any] = {
        "mapping_version": mapping["version"],
        "seed": SEED,
        "sampling": {
            "sgd": f"every dialogue with a Banks_* service plus {SGD_OTHER_DIALOGUES} others, seeded",
            "star": (
                f"up to {STAR_DIALOGUES_PER_TASK} Complete dialogues per task ({STAR_DIALOGUES_PER_RISKY_TASK} for"
                " tasks not mapped small_safe), seeded"
            ),
            "taskmaster4": f"{TASKMASTER4_DIALOGUES} dialogues, seeded",
        },
        "snapshots": {},
        "sources": {},
    }
    for source in sources:
        repository = REPOSITORIES[source]
        snapshot = Snapshot(mirror / repository.replace("/", "+") / "repo")
        rows = BUILDERS[source](snapshot, mapping)
        write_rows(rows, source_path(source, output))
        manifest["snapshots"][repository] = snapshot.commit()
        manifest["sources"][source] = summary(rows)
    (output / MANIFEST_PATH.name).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@click.command()
@click.option("--mirror", type=click.Path(path_type=Path, file_okay=False), default=Path("/work/.mirror"))
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=PUBLIC_DIR)
def main(mirror: Path, output: Path) -> None:
    """Rebuild every derived corpus file from the fetched snapshots."""
    manifest = build(mirror, output)
    for source, counts in manifest["sources"].items():
        click.echo(f"{source}: {counts['rows']} rows, {counts['calls']} calls, {counts['contract']}")


if __name__ == "__main__":
    main()
