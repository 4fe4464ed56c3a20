"""Tenant intent catalogs: format and line-numbered errors, matching, merge safety, disk cache, fit and eval."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from classifiers.catalog import (
    NO_MATCH,
    Catalog,
    CatalogEmbeddingCache,
    CatalogIndex,
    CatalogIntent,
    CatalogMatch,
    CatalogScores,
    CatalogVocabulary,
    fit_thresholds,
    load_catalog,
    merge,
    write_thresholds,
)
from classifiers.catalog_cli import CatalogTools, catalog, load_labelled
from classifiers.embeddings import EMBEDDING_DIM, TextEncoder, load_encoder
from classifiers.pipeline import TurnClassifier
from classifiers.schemas import Classification, Conversation, normalise_text
from router.yamlsource import ConfigFileError

CATALOGS = Path(__file__).resolve().parent.parent / "policies" / "catalogs"
DOMAINS = ("clinic", "saas_billing", "logistics", "banking")


class CountingEncoder:
    """Delegates to a real encoder and counts what it was asked to encode."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.encoder_id = inner.encoder_id
        self.runtime = inner.runtime
        self.calls = 0
        self.texts = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return load_encoder()


@pytest.fixture(scope="module")
def generic(encoder: TextEncoder) -> TurnClassifier:
    return TurnClassifier.load(None, encoder=encoder)


@pytest.fixture(scope="module")
def clinic(encoder: TextEncoder, tmp_path_factory: pytest.TempPathFactory) -> CatalogIndex:
    return CatalogIndex.load(
        CATALOGS / "clinic.yaml", encoder, cache=CatalogEmbeddingCache(tmp_path_factory.mktemp("cache"))
    )


def user_vectors(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """The user-turn embeddings as the generic classifier computes them (normalised text)."""
    return encoder.encode([normalise_text(text) for text in texts])


SMALL_CATALOG = """\
name: tiny
threshold: 0.6
intents:
  - name: bring_pet
    intent: faq
    risks: []
    tier: small
    examples:
      - Can I bring my dog?
      - Are pets allowed inside?
      - can my cat come with me
      - Is my service dog welcome?
      - do you allow animals
    negatives:
      - My dog bit me.
  - name: refill
    intent: transaction
    risks: [medical]
    tier: standard
    examples:
      - I need a refill of my pills.
      - Can you renew my prescription?
      - my inhaler is running out
      - I need more of my medication.
      - please send my prescription to the pharmacy
"""


@pytest.mark.parametrize(
    ("old", "new", "marker", "reason"),
    [
        ("      - do you allow animals\n", "", "    examples:\n", "at least 5"),
        ("    intent: transaction", "    intent: transactions", "    intent: transactions", "unknown coarse intent"),
        ("    risks: [medical]", "    risks: [medicine]", "    risks: [medicine]", "unknown risk 'medicine'"),
        ("    tier: standard", "    tier: fronteir", "    tier: fronteir", "unknown tier 'fronteir'"),
        ("  - name: refill", "  - name: bring_pet", "  - name: bring_pet\n    intent: trans", "defined twice"),
        ("      - I need more of my medication.", "      - do you allow animals", "", "also an example of intent"),
        ("      - My dog bit me.", "      - Can I bring my dog?", "      - Can I bring my dog?\n  - name", "negative"),
        ("    tier: small", "    tier: small\n    exmaples: []", "    exmaples", "Extra inputs"),
        ("threshold: 0.6", "threshold: 1.6", "threshold: 1.6", "less than or equal to 1"),
    ],
    ids=["too-few", "intent", "risk", "tier", "dup-name", "shared-example", "negative", "typo-key", "threshold"],
)
def test_validation_errors_name_the_line(tmp_path: Path, old: str, new: str, marker: str, reason: str) -> None:
    assert old in SMALL_CATALOG
    text = SMALL_CATALOG.replace(old, new, 1)
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    # The line of the offending node: the marker's first line, or the second occurrence for a duplicated example.
    if marker:
        expected = text[: text.index(marker)].count("\n") + 1
    else:
        expected = text[: text.rindex("      - do you allow animals")].count("\n") + 1
    with pytest.raises(ConfigFileError) as raised:
        load_catalog(path)
    assert raised.value.line == expected, str(raised.value)
    assert reason in str(raised.value)
    assert str(raised.value).startswith(f"{path}:{expected}: ")


def test_a_negative_may_quote_another_intents_example(tmp_path: Path) -> None:
    text = SMALL_CATALOG.replace("      - My dog bit me.", "      - I need more of my medication.")
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    assert load_catalog(path).catalog.intent_named("bring_pet").negatives == ["I need more of my medication."]


@pytest.mark.parametrize("domain", DOMAINS)
def test_shipped_catalogs_are_valid_fitted_and_labelled(domain: str) -> None:
    loaded = load_catalog(CATALOGS / f"{domain}.yaml")
    intents = loaded.catalog.intents
    assert 8 <= len(intents) <= 15
    assert all(8 <= len(intent.examples) <= 20 for intent in intents)
    assert any(intent.negatives for intent in intents)
    assert all(intent.threshold is not None for intent in intents), "run `switchboard catalog fit` on it"
    turns = load_labelled(CATALOGS / f"{domain}.labelled.csv", loaded.catalog, CatalogVocabulary())
    assert 60 <= len(turns.texts) <= 120
    assert NO_MATCH in turns.intents
    assert {intent.name for intent in intents} <= set(turns.intents)
    examples = {normalise_text(text) for intent in intents for text in intent.examples}
    assert not examples & {normalise_text(text) for text in turns.texts}, "labelled turns must not repeat examples"


@pytest.mark.e2e
def test_paraphrases_match_their_intent_and_unrelated_turns_do_not(clinic: CatalogIndex, encoder: TextEncoder) -> None:
    turns = {
        "is it alright to bring my beagle along to the visit?": "bring_pet",
        "I need to push my appointment back a few days": "reschedule",
        "do you open early on saturday mornings": "opening_hours",
        "my prescription for blood thinners is running out": "refill_prescription",
        "what's the capital of france": None,
        "tell me a joke about pirates": None,
        "I'd like to order a large pepperoni pizza": None,
    }
    matches = clinic.match(user_vectors(encoder, list(turns)))
    assert [m.intent_name if m else None for m in matches] == list(turns.values())
    pet = matches[0]
    assert pet is not None
    assert (pet.catalog, pet.coarse_intent, pet.risks, pet.tier) == ("clinic", "faq", (), "small")
    assert pet.nearest_example in clinic.catalog.intent_named("bring_pet").examples
    assert pet.threshold <= pet.similarity <= 1.0
    assert re.fullmatch(r"catalog:clinic/bring_pet nearest:'.+' \(0\.\d\d\)", pet.reason)
    refill = matches[3]
    assert refill is not None and refill.risks == ("medical",) and refill.tier == "standard"


@pytest.mark.e2e
def test_a_turn_closer_to_a_negative_is_not_claimed_by_that_intent(clinic: CatalogIndex, encoder: TextEncoder) -> None:
    negative = clinic.catalog.intent_named("bring_pet").negatives[0]
    scores = clinic.scores(user_vectors(encoder, [negative]))
    names = [intent.name for intent in clinic.catalog.intents]
    assert scores.candidate[0] == -1 or names[scores.candidate[0]] != "bring_pet"


@pytest.mark.e2e
def test_match_takes_a_batch_and_checks_its_shape(clinic: CatalogIndex, encoder: TextEncoder) -> None:
    vectors = user_vectors(encoder, ["can i bring my dog", "what's the capital of france"])
    assert clinic.match(np.zeros((0, EMBEDDING_DIM), dtype=np.float32)) == []
    batched, alone = clinic.match(vectors)[0], clinic.match_one(vectors[0])
    assert batched is not None and alone is not None
    # A matrix product and a matrix-vector product round differently in the last float32 bits, no more.
    assert batched.model_copy(update={"similarity": alone.similarity}) == alone
    assert batched.similarity == pytest.approx(alone.similarity, abs=1e-6)
    with pytest.raises(ValueError, match="384"):
        clinic.match(np.zeros((2, 10), dtype=np.float32))


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("text", "intent", "detector", "risk"),
    [
        ("can I bring my dog in? my card is 4111 1111 1111 1111", "bring_pet", "card_number", "payment"),
        ("are pets allowed? my friend is having a heart attack", "bring_pet", "heart_attack", "emergency"),
    ],
)
def test_merge_never_silences_detector_risks_of_a_small_intent(
    clinic: CatalogIndex,
    encoder: TextEncoder,
    generic: TurnClassifier,
    text: str,
    intent: str,
    detector: str,
    risk: str,
) -> None:
    classification = generic.classify(Conversation(latest_user_text=text))
    match = clinic.match_one(user_vectors(encoder, [text])[0])
    assert match is not None and match.intent_name == intent and match.tier == "small"
    merged = merge(classification, match, generic.threshold)
    assert merged.intent == "faq"
    assert merged.risks[risk] == 1.0
    assert detector in merged.detectors
    assert merged.high_stakes
    assert merged.reasons[0] == match.reason
    assert classification.reasons == merged.reasons[1:]


def test_merge_raises_catalog_risks_and_lowers_nothing() -> None:
    generic = Classification(
        intent="scheduling",
        intent_confidence=0.9,
        risks={"medical": 0.2, "payment": 0.7, "pii": 0.0},
        reasons=["nearest:'x' (scheduling, 0.80)"],
        detectors=[],
        high_stakes=True,
    )
    match = CatalogMatch(
        catalog="clinic",
        intent_name="refill_prescription",
        coarse_intent="transaction",
        risks=("medical",),
        tier="standard",
        similarity=0.8,
        threshold=0.6,
        nearest_example="I need a refill",
    )
    merged = merge(generic, match, lambda _risk: 0.95)
    assert merged.risks == {"medical": 1.0, "payment": 0.7, "pii": 0.0}
    assert merged.high_stakes  # never cleared, although payment 0.7 is under 0.95 here
    assert merged.intent == "transaction"
    assert merged.intent_confidence == pytest.approx(0.5 + 0.5 * (0.8 - 0.6) / 0.4)
    agreeing = merge(generic.model_copy(update={"intent": "transaction"}), match)
    assert agreeing.intent_confidence == 0.9  # the generic confidence when both agree and it is higher
    assert merge(generic, None) is generic
    quiet = generic.model_copy(update={"risks": {"medical": 0.1}, "high_stakes": False})
    assert merge(quiet, match).high_stakes  # the catalog's medical risk crosses the default threshold


@pytest.mark.e2e
def test_second_load_reads_the_disk_cache_without_encoding(encoder: TextEncoder, tmp_path: Path) -> None:
    counting = CountingEncoder(encoder)
    cache = CatalogEmbeddingCache(tmp_path)
    first = CatalogIndex.load(CATALOGS / "clinic.yaml", counting, cache=cache)
    assert counting.texts == len(first.catalog.utterances())
    calls = counting.calls
    second = CatalogIndex.load(CATALOGS / "clinic.yaml", counting, cache=cache)
    assert counting.calls == calls
    probe = user_vectors(encoder, ["can my dog come along"])
    assert first.match(probe) == second.match(probe)
    assert len(list((tmp_path / "catalogs").glob("clinic-*.npy"))) == 1


@pytest.mark.e2e
def test_catalog_content_changes_the_cache_key_thresholds_do_not(encoder: TextEncoder, tmp_path: Path) -> None:
    counting = CountingEncoder(encoder)
    cache = CatalogEmbeddingCache(tmp_path / "cache")
    path = tmp_path / "clinic.yaml"
    shutil.copy(CATALOGS / "clinic.yaml", path)
    index = CatalogIndex.load(path, counting, cache=cache)
    key = cache.key(index.catalog.utterances(), counting)
    assert index.reloaded() is index

    path.write_text(re.sub(r"(name: bring_pet\n    threshold: )[0-9.]+", r"\g<1>0.61", path.read_text(), count=1))
    refitted = index.reloaded()
    assert refitted is not index and refitted.catalog.intent_named("bring_pet").threshold == 0.61
    assert cache.key(refitted.catalog.utterances(), counting) == key
    encoded = counting.texts

    path.write_text(path.read_text().replace("Are dogs allowed at the clinic?", "Are ferrets allowed at the clinic?"))
    edited = refitted.reloaded()
    assert cache.key(edited.catalog.utterances(), counting) != key
    assert counting.texts == encoded + len(edited.catalog.utterances())

    path.write_text(path.read_text().replace("    tier: small", "    tier: smol", 1))
    with pytest.raises(ConfigFileError, match=r"clinic\.yaml:\d+: intents\[0\]\.tier: .*unknown tier 'smol'"):
        edited.reloaded()


def _intent(name: str) -> CatalogIntent:
    return CatalogIntent(name=name, intent="faq", examples=[f"{name} {i}" for i in range(5)])


def test_fit_picks_the_best_f1_above_the_precision_floor() -> None:
    tiny = Catalog(name="tiny", threshold=0.7, intents=[_intent("a"), _intent("b"), _intent("c")])
    # Candidates and similarities of eight labelled turns; "c" has no labelled turn at all.
    scores = CatalogScores(
        candidate=np.array([0, 0, 0, 0, 0, 1, 1, -1]),
        similarity=np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.85, -np.inf]),
        nearest_example=np.zeros(8, dtype=np.intp),
    )
    truth = ["a", "a", "a", NO_MATCH, "a", NO_MATCH, "b", "b"]
    fitted = {result.intent: result for result in fit_thresholds(tiny, scores, truth, min_precision=0.9)}
    # "a": accepting the top three gives precision 1 and recall 3/4; the midpoint to the 0.6 false turn is 0.65.
    assert fitted["a"].threshold == 0.65 and fitted["a"].precision == 1.0 and fitted["a"].recall == 0.75
    # "b": its best turn is a false one; the threshold is raised above it.
    assert fitted["b"].threshold > 0.95 and fitted["b"].claimed == 0
    assert not fitted["c"].fitted and fitted["c"].threshold == 0.7


def test_write_thresholds_keeps_comments_or_says_it_could_not(tmp_path: Path) -> None:
    block = tmp_path / "block.yaml"
    block.write_text(
        "# keep me\n" + SMALL_CATALOG.replace("    intent: transaction", "    threshold: 0.5\n    intent: transaction")
    )
    assert write_thresholds(block, {"bring_pet": 0.612, "refill": 0.55})
    assert block.read_text().startswith("# keep me\n")
    thresholds = {i.name: i.threshold for i in load_catalog(block).catalog.intents}
    assert thresholds == {"bring_pet": 0.612, "refill": 0.55}

    flow = tmp_path / "flow.yaml"
    data = yaml.safe_load(SMALL_CATALOG)
    flow.write_text("# lost\n" + yaml.safe_dump(data, default_flow_style=True))
    assert not write_thresholds(flow, {"refill": 0.42})
    assert load_catalog(flow).catalog.intent_named("refill").threshold == 0.42
    assert load_catalog(flow).catalog.intent_named("bring_pet").negatives == ["My dog bit me."]


@pytest.mark.e2e
def test_labelled_csv_errors_name_the_line(clinic: CatalogIndex, tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("text,intent\ncan i bring my dog,bring_pet\nhello,greeting\n")
    with pytest.raises(ConfigFileError, match=r"bad\.csv:3: unknown intent 'greeting'"):
        load_labelled(data, clinic.catalog, CatalogVocabulary())


@pytest.mark.e2e
def test_fit_writes_thresholds_and_eval_prints_the_figures(encoder: TextEncoder, tmp_path: Path) -> None:
    shipped = {i.name: i.threshold for i in load_catalog(CATALOGS / "clinic.yaml").catalog.intents}
    path = tmp_path / "clinic.yaml"
    # The shipped catalog without its fitted thresholds: fit must find them again from the labelled turns.
    path.write_text(re.sub(r"\n    threshold: [0-9.]+", "", (CATALOGS / "clinic.yaml").read_text()))
    assert all(intent.threshold is None for intent in load_catalog(path).catalog.intents)
    tools = CatalogTools(encoder=encoder, cache=CatalogEmbeddingCache(tmp_path / "cache"))
    data = str(CATALOGS / "clinic.labelled.csv")
    runner = CliRunner()

    fitted = runner.invoke(catalog, ["fit", "--catalog", str(path), "--data", data], obj=tools)
    assert fitted.exit_code == 0, fitted.output
    assert f"wrote {len(shipped)} thresholds" in fitted.output and "comments were lost" not in fitted.output
    assert "5-fold held-out: claim precision" in fitted.output
    refitted = {i.name: i.threshold for i in load_catalog(path).catalog.intents}
    assert refitted == pytest.approx(shipped, abs=0.005)
    assert path.read_text().startswith("# A family medical clinic")

    evaluated = runner.invoke(catalog, ["eval", "--catalog", str(path), "--data", data], obj=tools)
    assert evaluated.exit_code == 0, evaluated.output
    assert re.search(r"^bring_pet\s+1\.000\s+\d\.\d{3}\s+6$", evaluated.output, re.M)
    recall = re.search(r"^high-risk recall\s+(\d\.\d{3})", evaluated.output, re.M)
    precision = re.search(r"^small-safe precision\s+(\d\.\d{3})", evaluated.output, re.M)
    assert recall and float(recall.group(1)) >= 0.9
    assert precision and float(precision.group(1)) >= 0.9
    assert "left to the generic classifier:" in evaluated.output

    checked = runner.invoke(catalog, ["check", "--catalog", str(path)], obj=tools)
    assert checked.exit_code == 0 and checked.output.startswith("valid: clinic@")
    path.write_text(path.read_text().replace("intent: faq", "intent: faqs", 1))
    invalid = runner.invoke(catalog, ["check", "--catalog", str(path)], obj=tools)
    assert invalid.exit_code == 1 and re.search(r"clinic\.yaml:\d+: intents\[0\]\.intent: .*'faqs'", invalid.output)
