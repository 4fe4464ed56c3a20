"""Issue 11, item 1: no text a caller sends can make a detector (or the redactor that reuses them) backtrack.

``"my order is " + "1" * 40 + " x"`` held the gateway for over a minute: the postal-address pattern's nested
quantifier backtracked exponentially in Python's ``re``. Every pattern now runs on RE2, and a test here runs every
registered detector and the redactor on the inputs that hurt backtracking engines.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from classifiers import regex
from classifiers.detectors import DEFAULT_DETECTORS, detect, literal_reading
from classifiers.normalise import MAX_TURN_CHARS
from classifiers.schemas import Conversation
from router.traffic.redact import Redactor

REPO = Path(__file__).resolve().parents[2]

HOSTILE_TURNS = {
    "order number of 40 ones": "my order is " + "1" * 40 + " x",
    "24-digit reference": "my reference is " + "1" * 24 + " please check it",
    "26-digit reference": "the code is " + "9" * 26 + " ok",
    "5000-digit run": "my order is " + "1" * 5000 + " x",
    "spoken digits": "my order is " + "one " * 300 + "x",
    "repeated word": "help " * 20_000,
    "100 kB of one letter": "a" * 100_000,
    "100 kB of one digit": "1" * 100_000,
    "100 kB of spaces": " " * 100_000 + "x",
    "mixed separators": "1-2 3.4/5 (6) +7, " * 5_000,
    "address-like": "12a 34b 56c 78d " * 2_000 + "street",
    "email-like": "a." * 20_000 + "@" + "b-" * 10_000,
    "phone-like": "+1 " + "12 " * 10_000 + "x",
    "iban-like": "gb82 " + "a1 " * 20_000,
    "emergency words": "my chest " * 5_000 + "x",
}


@pytest.mark.parametrize("text", list(HOSTILE_TURNS.values()), ids=list(HOSTILE_TURNS))
def test_every_detector_reads_a_hostile_turn_in_linear_time(text: str) -> None:
    context = "can I have your card number, phone number and date of birth, please?"
    started = time.perf_counter()
    for detector in DEFAULT_DETECTORS:
        detect(text, context, detectors=(detector,))
    Redactor().mask(text, context)
    elapsed = time.perf_counter() - started
    # A backtracking engine takes seconds to minutes on these; linear matching takes milliseconds.
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_the_whole_hostile_set_is_read_in_well_under_a_second() -> None:
    started = time.perf_counter()
    for text in HOSTILE_TURNS.values():
        detect(text)
    assert time.perf_counter() - started < 1.0


def test_detectors_and_the_classifier_read_a_bounded_part_of_a_turn() -> None:
    long_turn = "x " * MAX_TURN_CHARS + "my card is 4111 1111 1111 1111"
    assert detect(long_turn) == []  # the card number is past what detectors read
    assert [hit.name for hit in detect(long_turn[-40:])] == ["card_number"]
    normalised = Conversation(latest_user_text=long_turn, previous_assistant_text=long_turn).normalised()
    assert len(normalised.latest_user_text) <= MAX_TURN_CHARS
    assert len(normalised.previous_assistant_text or "") <= MAX_TURN_CHARS


def test_the_rewritten_backreference_still_collapses_stutters() -> None:
    assert literal_reading("i i i can't breathe") == "i can't breathe"
    assert literal_reading("brennt brennt es") == "brennt es"
    assert literal_reading("no, no no nothing") == "no, no nothing"
    assert [hit.name for hit in detect("es brennt brennt brennt")] == ["fire"]


def test_rewritten_lookarounds_keep_their_meaning() -> None:
    names = lambda text: [hit.name for hit in detect(text)]  # noqa: E731
    assert "national_id" in names("my ssn is 123-45-6789")
    assert "national_id" not in names("part 9123-45-6789")
    assert "phone_number" in names("reach me at 555-123-4567.")
    assert "phone_number" not in names("serial ab555-123-4567")
    assert "personal_name" in names("my name is maria")
    assert "personal_name" not in names("my name is not on the list")
    assert "self_harm" in names("i want to end my life")
    assert "self_harm" not in names("i want to end my life insurance policy")


def test_the_wrapper_refuses_patterns_re2_cannot_run() -> None:
    for pattern in (r"(?<!a)b", r"a(?=b)", r"(\w+) \1"):
        with pytest.raises(ValueError, match="not a linear-time"):
            regex.compile(pattern)


def test_the_wrapper_matches_like_re_on_ascii_and_unicode_text() -> None:
    pattern = regex.compile(r"(\d+)-(\d+)?")
    for text in ("a 12-34 b 5- c", "é 12-34 ü 5- ç"):
        assert pattern.findall(text) == [("12", "34"), ("5", "")]
        assert [match.span() for match in pattern.finditer(text)] == [(2, 7), (10, 12)]
        assert pattern.sub(lambda match: f"<{match.group(1)}>", text) == f"{text[:2]}<12>{text[7:10]}<5>{text[12:]}"
        assert pattern.search(text, 5) is not None and pattern.search(text, 5).span() == (10, 12)  # type: ignore[union-attr]
        assert pattern.match(text, 2) is not None and pattern.match(text) is None
    assert regex.compile(r"(?i)bearer").search("BEARER x") is not None
    assert regex.compile(r"x*").findall("ab") == ["", "", ""]
    assert regex.compile(regex.escape("a+b (c)")).fullmatch("a+b (c)") is not None


# Modules whose patterns read caller text: each compiles them through classifiers.regex, never with ``re``.
# Not caller text: the encoder's file names, and the offline corpus builder (public datasets, never served).
OFFLINE_MODULES = {"embeddings.py", "corpus_build.py"}
CALLER_TEXT_MODULES = [
    *sorted(path for path in (REPO / "classifiers").glob("*.py") if path.name not in OFFLINE_MODULES),
    REPO / "router" / "traffic" / "redact.py",
    REPO / "router" / "facts.py",
    REPO / "router" / "classification.py",
]


@pytest.mark.parametrize("path", CALLER_TEXT_MODULES, ids=lambda path: path.name)
def test_no_module_that_reads_caller_text_uses_a_backtracking_engine(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"re", "regex"}, f"{path.name} imports a backtracking regex engine"
