"""Routing quality on data never trained on: the gateway's own decision, leave-one-source-out.

For each public source (``classifiers.corpus``) a turn model is trained without that source
(``train_for_fold``, the one place that knows the learner), the source's turns are classified and decided
through ``router.traffic.replay`` (the gateway's facts builder, policy engine and call state, so stickiness
acts as it does live) under the configured policy (the embedded default gateway and ``policies/default.yaml``
unless told otherwise), and every turn is priced on its routed tier's first deployment and on the all-frontier
baseline. The shipped model is measured on the same turns as the "before" figures.

Metrics (``turn_metrics``, ``call_metrics``), against the corpus's ``contract`` labels:

* small_leak: share of ``high_stakes`` turns routed to the small tier (the contract says: never);
* small_capture: share of ``small_safe`` turns routed small, among those the contract lets go small: a small-safe
  turn that follows a high-stakes turn of its call must stay off the small tier (stickiness), so it is counted
  by the call-level figures and in ``small_safe_after_stakes``, not here;
* frontier_share: share of all turns routed to frontier;
* savings: 1 - cost / cost of sending every turn to the frontier baseline deployment;
* call level (multi-turn sources, every turn sent in order with its call id): ``after_high_leak`` is the share
  of turns that follow a call's first high-stakes turn and went small; ``clean_call_capture`` is the share of
  small_safe turns routed small in calls with no high-stakes turn; savings per call;
* contract ceiling: the savings had every turn gone exactly where the contract sends it (``contract_tier``), the
  most any classifier could save on the same turns under the default policy's floor: a savings figure reads
  against it, not against 100 %.

The encoder is frozen, so each distinct text is embedded once per run (``CachingEncoder``) and reused by every
fold. Turns are sampled per source (seeded) to keep a run within minutes on a 2-core machine; the sample sizes
are in the report.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from classifiers.corpus import MULTI_TURN_SOURCES, SOURCES, CorpusRow, iter_calls, load_source
from classifiers.dataset import load_turns
from classifiers.embeddings import TextEncoder, load_encoder
from classifiers.pipeline import DEFAULT_MODEL_PATH, TurnClassifier, TurnModel
from classifiers.train import SHIPPED_CORPUS_PER_SOURCE, TrainingSettings, corpus_sample, fit_model
from router.accounting.pricing import PriceBook
from router.accounting.usage import Usage
from router.config import GatewayConfig, load_config
from router.policy.store import LoadedPolicy, load_policy
from router.traffic.classify import CachingEncoder
from router.traffic.log import LoggedMessage, TrafficRecord
from router.traffic.replay import BatchClassifier, replay

WRITTEN_TURNS_PATH = Path(__file__).resolve().parent / "data" / "utterances.csv"
POLICY_LABEL = "policy"
TURNS_FILE = "routing-turns.csv.gz"
SMALL, STANDARD, FRONTIER = "small", "standard", "frontier"
TENANT = "routing-quality"
REQUESTED_MODEL = "auto"
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class RoutingSettings(BaseModel):
    """Sample sizes and seed of a run; recorded in the report."""

    # Defaults keep a whole run near 18 minutes with two workers on a quiet 2-core machine: fitting today's heads
    # (with their calibration folds) dominates, about four minutes per fold at the shipped training size.
    seed: int = 7
    eval_turns: int = 400  # single-turn sources: turns measured per source
    eval_calls: int = 40  # multi-turn sources: calls measured per source, half with a high-stakes turn if possible
    # Turns per source in each fold's training set (plus the hand-written set): as many as the shipped model trains
    # on, since the operating point moves with the amount of training data (300 per source measured a model with
    # fewer leaks and less capture than the one that ships: docs/learner-comparison.md, round 6).
    train_turns: int = SHIPPED_CORPUS_PER_SOURCE
    sources: tuple[str, ...] = SOURCES
    # Sources measured (each a fold, trained on every other source of ``sources``); empty: all of ``sources``.
    # A subset makes a quick check of a learner change that still trains as the full run does.
    held_out: tuple[str, ...] = ()
    loso: bool = True  # False: only the shipped model ("before")
    # Folds trained at once, each in its own process with its own encoder cache (1: in this process, in order).
    # The figures do not depend on it: each fold's model and decisions are the same wherever it runs.
    workers: int = 1

    @property
    def measured(self) -> tuple[str, ...]:
        return tuple(source for source in self.sources if source in self.held_out) if self.held_out else self.sources


# --- the learner -----------------------------------------------------------------------------------------


def training_frame(rows: Sequence[CorpusRow]) -> pd.DataFrame:
    """Corpus rows in the written set's schema (``classifiers.dataset.COLUMNS``); context = the agent's turn.

    ``contract`` and ``source`` ride along for learners that train on the routing contract itself.
    """
    return pd.DataFrame(
        {
            "text": [row.text for row in rows],
            "intent": [row.intent for row in rows],
            "risks": [";".join(row.risks) for row in rows],
            "context": [previous_assistant_text(row) for row in rows],
            "domain": ["general"] * len(rows),
            "language": ["en"] * len(rows),
            "style": ["clean"] * len(rows),
            "contract": [row.contract for row in rows],
            "source": [row.source for row in rows],
        }
    )


def train_for_fold(rows: Sequence[CorpusRow], encoder: TextEncoder) -> BatchClassifier:
    """The turn model of one fold: today's learner on ``rows`` plus the hand-written set. Swap to compare learners.

    The written set is always in training: it holds what public data lacks (ASR style, six languages,
    emergencies) and is never measured here.
    """
    model = fit_model(fold_frame(rows), encoder, TrainingSettings(test_size=0.0))
    return TurnClassifier(model, encoder)


def fold_frame(rows: Sequence[CorpusRow]) -> pd.DataFrame:
    """The training rows of one fold: the written set plus ``rows``, each text once."""
    frame = pd.concat([load_turns(WRITTEN_TURNS_PATH), training_frame(rows)], ignore_index=True)
    return frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)


def shipped_classifier(encoder: TextEncoder, model_path: Path = DEFAULT_MODEL_PATH) -> BatchClassifier:
    return TurnClassifier(TurnModel.load(model_path), encoder)


# --- replay through the gateway's decision ----------------------------------------------------------------


def previous_assistant_text(row: CorpusRow) -> str:
    """The agent's turn right before the caller's, as the gateway reads it (none if the caller spoke last)."""
    for message in reversed(row.history):
        if message.role == "user":
            return ""
        if message.content:
            return message.content
    return ""


def traffic_records(rows: Sequence[CorpusRow]) -> list[TrafficRecord]:
    """One request per turn as an agent would send it: the call so far plus the caller's turn, with its call id."""
    records = []
    for index, row in enumerate(rows):
        messages = [LoggedMessage(role=m.role, content=m.content) for m in row.history]
        messages.append(LoggedMessage(role="user", content=row.text))
        records.append(
            TrafficRecord(
                ts=_EPOCH + timedelta(seconds=index),
                request_id=f"rq-{index}",
                call_id=row.call_id,
                tenant=TENANT,
                requested_model=REQUESTED_MODEL,
                messages=messages,
            )
        )
    return records


def route(
    rows: Sequence[CorpusRow], classifier: BatchClassifier, policy: LoadedPolicy, config: GatewayConfig
) -> pd.DataFrame:
    """Per turn: source, call, contract label, routed tier, cost and all-frontier cost."""
    result = replay(traffic_records(rows), {POLICY_LABEL: policy}, config, classifier)
    turns = result.turns
    sticky = after_high_stakes(rows)
    tiers = [contract_tier(row.contract, after) for row, after in zip(rows, sticky, strict=True)]
    return pd.DataFrame(
        {
            "source": [row.source for row in rows],
            "call_id": [row.call_id for row in rows],
            "turn_index": [row.turn_index for row in rows],
            "contract": [row.contract for row in rows],
            "after_high_stakes": sticky,
            "text": [row.text for row in rows],
            "source_label": [row.source_label for row in rows],
            "intent": turns["intent"].to_numpy(),
            "stakes": turns["stakes"].to_numpy(dtype=float),
            "rule": turns[f"rule.{POLICY_LABEL}"].to_numpy(),
            "reasons": turns[f"reasons.{POLICY_LABEL}"].to_numpy(),
            "tier": turns[f"tier.{POLICY_LABEL}"].to_numpy(),
            "cost": turns[f"cost.{POLICY_LABEL}"].to_numpy(dtype=float),
            "baseline_cost": turns["baseline_cost"].to_numpy(dtype=float),
            "contract_cost": contract_costs(tiers, turns, config),
        }
    )


def contract_tier(contract: str, after_high: bool) -> str:
    """The cheapest tier the contract allows a turn, with the default policy's floor for stakes: frontier for a
    high-stakes turn and every later turn of its call, standard for a turn it leaves to the policy (complaints
    go at least there), small for the rest."""
    if contract == "high_stakes" or after_high:
        return FRONTIER
    return STANDARD if contract == "standard" else SMALL


def contract_costs(tiers: Sequence[str], turns: pd.DataFrame, config: GatewayConfig) -> np.ndarray:
    """Each replayed turn priced on the first deployment of its tier (``contract_tier``), with the tokens the
    replay priced it with (no prompt cache: the ceiling does not count on one)."""
    prices = PriceBook({d.name: (d.model, d.price) for d in config.deployments})
    usages = turns[["prompt_tokens", "completion_tokens", "reasoning_tokens"]].itertuples(index=False)
    return np.array(
        [
            float(prices.cost(config.tiers[tier][0], Usage(**usage._asdict())).cost_usd)
            for tier, usage in zip(tiers, usages, strict=True)
        ]
    )


def after_high_stakes(rows: Sequence[CorpusRow]) -> list[bool]:
    """Per row: whether an earlier turn of its call is high-stakes (rows of a call are in turn order)."""
    seen: set[str] = set()
    flags = []
    for row in rows:
        flags.append(row.call_id is not None and row.call_id in seen)
        if row.call_id is not None and row.contract == "high_stakes":
            seen.add(row.call_id)
    return flags


# --- metrics ---------------------------------------------------------------------------------------------


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _savings(cost: float, baseline: float) -> float | None:
    return 1.0 - cost / baseline if baseline > 0 else None


def turn_metrics(turns: pd.DataFrame) -> dict[str, Any]:
    """small_leak, small_capture, frontier share and savings of a set of decided turns."""
    small = turns["tier"] == SMALL
    high = turns["contract"] == "high_stakes"
    sticky = turns["after_high_stakes"].astype(bool)
    safe = (turns["contract"] == "small_safe") & ~sticky
    standard = turns["contract"] == "standard"
    return {
        "turns": len(turns),
        "high_stakes_turns": int(high.sum()),
        "small_safe_turns": int(safe.sum()),
        "small_safe_after_stakes": int(((turns["contract"] == "small_safe") & sticky).sum()),
        "small_leak": _share(int((small & high).sum()), int(high.sum())),
        "small_capture": _share(int((small & safe).sum()), int(safe.sum())),
        "standard_to_small": _share(int((small & standard).sum()), int(standard.sum())),
        "small_share": _share(int(small.sum()), len(turns)),
        "frontier_share": _share(int((turns["tier"] == FRONTIER).sum()), len(turns)),
        "savings": _savings(float(turns["cost"].sum()), float(turns["baseline_cost"].sum())),
        "contract_savings": _savings(float(turns["contract_cost"].sum()), float(turns["baseline_cost"].sum())),
    }


def call_metrics(turns: pd.DataFrame, risky_share: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Call-level figures of turns that carry call ids (in turn order within each call).

    The sample holds calls with and without a high-stakes turn half and half, so that leak and capture both get
    calls; ``risky_share`` (each source's own share of calls with a high-stakes turn) adds ``savings_at_source_mix``
    (and its contract ceiling), the savings with each kind of call weighted back to its share in the source.
    """
    in_calls = turns[turns["call_id"].notna()]
    after_high = after_high_small = clean_safe = clean_safe_small = calls_with_high = calls_leaking = 0
    per_call_savings = []
    calls: list[tuple[str, bool, CallCosts]] = []  # source, has a high-stakes turn, costs
    for _, call in in_calls.groupby("call_id", sort=False):
        call = call.sort_values("turn_index")
        small = (call["tier"] == SMALL).to_numpy()
        high = (call["contract"] == "high_stakes").to_numpy()
        if high.any():
            calls_with_high += 1
            first = int(np.argmax(high))
            after_high += len(call) - first - 1
            after_high_small += int(small[first + 1 :].sum())
            calls_leaking += bool(small[first:].any())
        else:
            safe = (call["contract"] == "small_safe").to_numpy()
            clean_safe += int(safe.sum())
            clean_safe_small += int((safe & small).sum())
        costs = CallCosts(
            float(call["cost"].sum()), float(call["contract_cost"].sum()), float(call["baseline_cost"].sum())
        )
        calls.append((str(call["source"].iloc[0]), bool(high.any()), costs))
        saving = _savings(costs.routed, costs.baseline)
        if saving is not None:
            per_call_savings.append(saving)
    at_mix = _costs_at_mix(calls, risky_share) if risky_share is not None else None
    return {
        "calls": int(in_calls["call_id"].nunique()),
        "calls_with_high_stakes": calls_with_high,
        "turns_after_first_high_stakes": after_high,
        "after_high_leak": _share(after_high_small, after_high),
        "calls_leaking": _share(calls_leaking, calls_with_high),
        "clean_call_capture": _share(clean_safe_small, clean_safe),
        "savings": _savings(float(in_calls["cost"].sum()), float(in_calls["baseline_cost"].sum())),
        "contract_savings": _savings(float(in_calls["contract_cost"].sum()), float(in_calls["baseline_cost"].sum())),
        "mean_call_savings": float(np.mean(per_call_savings)) if per_call_savings else None,
        "savings_at_source_mix": None if at_mix is None else _savings(at_mix.routed, at_mix.baseline),
        "contract_savings_at_source_mix": None if at_mix is None else _savings(at_mix.contract, at_mix.baseline),
    }


@dataclass(frozen=True)
class CallCosts:
    """What a call (or a weighted sum of calls) cost as routed, as the contract would route it, and on the
    all-frontier baseline."""

    routed: float
    contract: float
    baseline: float


def _costs_at_mix(calls: Sequence[tuple[str, bool, CallCosts]], risky_share: Mapping[str, float]) -> CallCosts:
    """Costs with each source's calls reweighted so that calls with a high-stakes turn weigh their share in the
    source (calls of a kind the sample lacks keep weight 1: there is nothing to reweight them against)."""
    routed = contract = baseline = 0.0
    for source in dict.fromkeys(source for source, _, _ in calls):
        of_source = [(risky, costs) for name, risky, costs in calls if name == source]
        sampled = sum(risky for risky, _ in of_source) / len(of_source)
        share = risky_share.get(source, sampled)
        for risky, costs in of_source:
            weight = 1.0
            if 0.0 < sampled < 1.0:
                weight = share / sampled if risky else (1.0 - share) / (1.0 - sampled)
            routed += weight * costs.routed
            contract += weight * costs.contract
            baseline += weight * costs.baseline
    return CallCosts(routed, contract, baseline)


EXAMPLES_PER_SOURCE = 8
_EXAMPLE_COLUMNS = ["text", "source_label", "intent", "tier", "rule"]


def examples(turns: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The first few leaks (high-stakes turns routed small) and missed captures (small-safe turns not routed
    small), in sample order, so that a figure can be traced back to the turns behind it."""
    small = turns["tier"] == SMALL
    leaks = turns[small & (turns["contract"] == "high_stakes")]
    missed = turns[~small & (turns["contract"] == "small_safe") & ~turns["after_high_stakes"].astype(bool)]
    return {
        "leaks": leaks[_EXAMPLE_COLUMNS].head(EXAMPLES_PER_SOURCE).to_dict("records"),
        "missed_captures": missed[_EXAMPLE_COLUMNS].head(EXAMPLES_PER_SOURCE).to_dict("records"),
    }


def summarise(turns: pd.DataFrame, risky_share: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Per source and overall (pooled turns), plus call level for the multi-turn sources, and example turns."""
    per_source = {source: turn_metrics(group) for source, group in turns.groupby("source", sort=False)}
    calls = {
        source: call_metrics(group, risky_share)
        for source, group in turns.groupby("source", sort=False)
        if source in MULTI_TURN_SOURCES
    }
    multi = turns[turns["source"].isin(MULTI_TURN_SOURCES)]
    return {
        "per_source": per_source,
        "overall": turn_metrics(turns),
        "calls_per_source": calls,
        "calls_overall": call_metrics(multi, risky_share) if len(multi) else None,
        "examples": {source: examples(group) for source, group in turns.groupby("source", sort=False)},
    }


# --- sampling and the run --------------------------------------------------------------------------------


def evaluation_sample(source: str, rows: Sequence[CorpusRow], settings: RoutingSettings) -> list[CorpusRow]:
    """Seeded: ``eval_turns`` turns of a single-turn source, or ``eval_calls`` whole calls of a multi-turn one
    (half of them with a high-stakes turn when the source has enough, so leak and capture both get calls)."""
    sampler = random.Random(f"{settings.seed}-{source}-eval")
    if source not in MULTI_TURN_SOURCES:
        return sampler.sample(list(rows), min(settings.eval_turns, len(rows)))
    calls = list(iter_calls(rows))
    risky = [turns for _, turns in calls if any(turn.contract == "high_stakes" for turn in turns)]
    clean = [turns for _, turns in calls if all(turn.contract != "high_stakes" for turn in turns)]
    wanted_risky = min(len(risky), settings.eval_calls // 2)
    wanted_clean = min(len(clean), settings.eval_calls - wanted_risky)
    wanted_risky = min(len(risky), settings.eval_calls - wanted_clean)
    chosen = sampler.sample(risky, wanted_risky) + sampler.sample(clean, wanted_clean)
    return [turn for turns in chosen for turn in turns]


def risky_call_share(rows: Sequence[CorpusRow]) -> float:
    """The share of a multi-turn source's calls that have a high-stakes turn."""
    calls = list(iter_calls(rows))
    return sum(any(turn.contract == "high_stakes" for turn in turns) for _, turns in calls) / max(len(calls), 1)


@dataclass
class RoutingRun:
    settings: RoutingSettings
    policy_version: str
    before: dict[str, Any]
    loso: dict[str, Any] | None
    sample_sizes: dict[str, dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)
    encoded_texts: int = 0
    # Every measured turn's decision (``route``'s columns) under ``run``: "before" or "leave_one_source_out".
    turns: pd.DataFrame | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings.model_dump(mode="json"),
            "policy_version": self.policy_version,
            "sample_sizes": self.sample_sizes,
            "before": self.before,
            "leave_one_source_out": self.loso,
            "timings_seconds": {name: round(seconds, 1) for name, seconds in self.timings.items()},
            "encoded_texts": self.encoded_texts,
        }


Learner = Callable[[Sequence[CorpusRow], TextEncoder], BatchClassifier]


def run_routing_quality(
    settings: RoutingSettings,
    *,
    config_path: Path | None = None,
    policy_path: Path | None = None,
    encoder: TextEncoder | None = None,
    learner: Learner = train_for_fold,
    progress: Callable[[str], None] = lambda message: None,
) -> RoutingRun:
    started = time.perf_counter()
    loaded = load_config(config_path)
    policy = load_policy(loaded.policy_path(policy_path), loaded.config)
    caching = CachingEncoder(encoder or load_encoder())
    corpus = {source: load_source(source) for source in settings.sources}
    evaluation = {source: evaluation_sample(source, rows, settings) for source, rows in corpus.items()}
    # Sampled as the shipped model's corpus is (multi-turn sources by whole calls), so folds measure that recipe.
    training = {source: corpus_sample(rows, settings.train_turns, settings.seed) for source, rows in corpus.items()}
    risky_share = {
        source: risky_call_share(corpus[source]) for source in settings.sources if source in MULTI_TURN_SOURCES
    }
    sizes = {
        source: {
            "corpus_turns": len(corpus[source]),
            "eval_turns": len(evaluation[source]),
            "eval_calls": len({row.call_id for row in evaluation[source] if row.call_id}),
            "train_turns": len(training[source]),
        }
        | ({"risky_call_share": round(risky_share[source], 3)} if source in risky_share else {})
        for source in settings.sources
    }
    timings = {"load": time.perf_counter() - started}

    progress("before: the shipped model on every source")
    mark = time.perf_counter()
    shipped = shipped_classifier(caching)
    before_turns = pd.concat(
        [route(evaluation[source], shipped, policy, loaded.config) for source in settings.measured]
    )
    before = summarise(before_turns, risky_share)
    measured_turns = [before_turns.assign(run="before")]
    timings["before"] = time.perf_counter() - mark

    loso = None
    if settings.loso:
        folds: list[pd.DataFrame] = []
        fold_rows = {
            source: [row for other in settings.sources if other != source for row in training[other]]
            for source in settings.measured
        }
        if settings.workers > 1:
            mark = time.perf_counter()
            progress(f"folds {', '.join(settings.measured)}: {settings.workers} at a time")
            folds, encoded = _parallel_folds(settings, fold_rows, evaluation, learner, config_path, policy_path)
            caching.encoded += encoded
            timings["folds"] = time.perf_counter() - mark
        for source in settings.measured if settings.workers <= 1 else ():
            mark = time.perf_counter()
            progress(f"fold {source}: training on {len(fold_rows[source])} turns of the other sources")
            classifier = learner(fold_rows[source], caching)
            folds.append(route(evaluation[source], classifier, policy, loaded.config))
            timings[f"fold.{source}"] = time.perf_counter() - mark
        loso_turns = pd.concat(folds)
        loso = summarise(loso_turns, risky_share)
        measured_turns.append(loso_turns.assign(run="leave_one_source_out"))
    timings["total"] = time.perf_counter() - started
    return RoutingRun(
        settings=settings,
        policy_version=policy.version,
        before=before,
        loso=loso,
        sample_sizes=sizes,
        timings=timings,
        encoded_texts=caching.encoded,
        turns=pd.concat(measured_turns, ignore_index=True),
    )


def _fold_in_worker(
    rows: Sequence[CorpusRow],
    evaluation: Sequence[CorpusRow],
    learner: Learner,
    config_path: Path | None,
    policy_path: Path | None,
) -> tuple[pd.DataFrame, int]:
    """One fold in a worker process: its own policy, encoder and cache (nothing of the parent's is shared)."""
    loaded = load_config(config_path)
    policy = load_policy(loaded.policy_path(policy_path), loaded.config)
    caching = CachingEncoder(load_encoder())
    classifier = learner(rows, caching)
    return route(evaluation, classifier, policy, loaded.config), caching.encoded


def _parallel_folds(
    settings: RoutingSettings,
    fold_rows: dict[str, list[CorpusRow]],
    evaluation: dict[str, list[CorpusRow]],
    learner: Learner,
    config_path: Path | None,
    policy_path: Path | None,
) -> tuple[list[pd.DataFrame], int]:
    """Every measured fold, ``settings.workers`` at a time (spawned processes: no forked encoder sessions);
    results in the order of ``settings.measured``."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=settings.workers, mp_context=context) as pool:
        futures = [
            pool.submit(_fold_in_worker, fold_rows[source], evaluation[source], learner, config_path, policy_path)
            for source in settings.measured
        ]
        results = [future.result() for future in futures]
    return [frame for frame, _ in results], sum(encoded for _, encoded in results)


# --- rendering -------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _turn_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| source | turns | high-stakes | small_leak | small-safe | small_capture | small-safe after stakes |"
        " frontier share | savings | contract ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [*summary["per_source"].items(), ("**overall**", summary["overall"])]
    for source, m in rows:
        lines.append(
            f"| {source} | {m['turns']} | {m['high_stakes_turns']} | {_pct(m['small_leak'])} | "
            f"{m['small_safe_turns']} | {_pct(m['small_capture'])} | {m['small_safe_after_stakes']} | "
            f"{_pct(m['frontier_share'])} | {_pct(m['savings'])} | {_pct(m['contract_savings'])} |"
        )
    return lines


def _call_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| source | calls | with high-stakes | turns after it | after_high_leak | calls leaking | "
        "clean_call_capture | savings | contract ceiling | mean per-call savings | savings at source mix |"
        " ceiling at source mix |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = list(summary["calls_per_source"].items())
    if summary["calls_overall"]:
        rows.append(("**overall**", summary["calls_overall"]))
    for source, m in rows:
        lines.append(
            f"| {source} | {m['calls']} | {m['calls_with_high_stakes']} | {m['turns_after_first_high_stakes']} | "
            f"{_pct(m['after_high_leak'])} | {_pct(m['calls_leaking'])} | {_pct(m['clean_call_capture'])} | "
            f"{_pct(m['savings'])} | {_pct(m['contract_savings'])} | {_pct(m['mean_call_savings'])} | "
            f"{_pct(m.get('savings_at_source_mix'))} | {_pct(m.get('contract_savings_at_source_mix'))} |"
        )
    return lines


def render_markdown(run: RoutingRun) -> str:
    s = run.settings
    lines = [
        "# Routing quality on public service data",
        "",
        f"Policy `{run.policy_version}` on the embedded default gateway; decisions through the gateway's facts,"
        " policy engine and call state (`router.traffic.replay`). Contract labels and sources:"
        " `classifiers/data/public/README.md`.",
        "",
        f"Sampled per source with seed {s.seed}: {s.eval_turns} turns of each single-turn source, {s.eval_calls}"
        f" whole calls of each multi-turn source (half with a high-stakes turn where available); each fold trains"
        f" on about {s.train_turns} turns of every other source (multi-turn sources by whole calls, as the shipped"
        " model's corpus is sampled) plus the hand-written set. Run time"
        f" {run.timings.get('total', 0.0) / 60:.1f} min, {run.encoded_texts} distinct texts embedded.",
        "",
        "small_leak: high-stakes turns routed small (target ≤ 1%). small_capture: small-safe turns routed small"
        " (target ≥ 80%), counting only those the contract lets go small: a small-safe turn after a high-stakes"
        " turn of its call must stay off small (stickiness); those are in *small-safe after stakes* and in the"
        " call table. Savings: against every turn on the frontier baseline deployment. The call sample is half"
        " calls with a high-stakes turn; *savings at source mix* weighs each kind of call back to its share in the"
        " source (sample sizes below), which is what a deployment on that traffic would save. *Contract ceiling*:"
        " the savings had every turn gone exactly where the contract sends it (small-safe small, `standard`"
        " standard, high-stakes and every later turn of its call frontier), the most a perfect classifier could"
        " save on the same turns.",
    ]
    shipped = "Shipped model (`classifiers/models/default.npz`; trained on these sources too: not held out)"
    sections = [(shipped, run.before)]
    if run.loso is not None:
        sections.append(("Leave-one-source-out: trained without the measured source", run.loso))
    for title, summary in sections:
        lines += ["", f"## {title}", "", "Turns (multi-turn sources replayed as calls):", ""]
        lines += _turn_table(summary)
        lines += ["", "Calls (every turn in order with its call id; target after_high_leak ≤ 1%, savings ≥ 50%):", ""]
        lines += _call_table(summary)
    lines += [
        "",
        "Sample sizes:",
        "",
        "| source | corpus turns | eval turns | eval calls | train turns |"
        " calls with a high-stakes turn in the source |",
    ]
    lines += ["| --- | ---: | ---: | ---: | ---: | ---: |"]
    for source, size in run.sample_sizes.items():
        lines.append(
            f"| {source} | {size['corpus_turns']} | {size['eval_turns']} | {size['eval_calls']} |"
            f" {size['train_turns']} | {_pct(size.get('risky_call_share'))} |"
        )
    return "\n".join(lines) + "\n"


def write_results(run: RoutingRun, out_dir: Path) -> tuple[Path, Path]:
    """``routing.json`` and ``routing.md`` in ``out_dir``, and every measured turn's decision in
    ``routing-turns.csv.gz`` (text, contract label, stakes, rule, tier, cost) for reading misses one by one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / "routing.json", out_dir / "routing.md"
    json_path.write_text(json.dumps(run.as_json(), indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(run), encoding="utf-8")
    if run.turns is not None:
        run.turns.to_csv(out_dir / TURNS_FILE, index=False, compression={"method": "gzip", "mtime": 0})
    return json_path, markdown_path
