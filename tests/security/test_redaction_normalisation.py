"""Issue 11, item 9: the traffic-log redactor reads text exactly as the detectors do.

A card number with a zero-width space after its first digit was logged verbatim although the classifier flagged
the same turn ``payment,pii``. Both now read text through ``classifiers.normalise.fold``.
"""

from __future__ import annotations

import random

import pytest

from classifiers.detectors import detect
from classifiers.normalise import MAX_TURN_CHARS, fold, fold_with_offsets
from classifiers.schemas import normalise_text
from router.traffic.redact import Redactor

CARD = "4111 1111 1111 1111"
DISGUISED_CARDS = {
    "zero-width space after the first digit": "4\u200b111 1111 1111 1111",
    "full-width digits": "４１１１ １１１１ １１１１ １１１１",
    "zero-width joiners and soft hyphens": "4111\u200d1111\u00ad1111\ufeff1111",
    "no-break and ideographic spaces": "4111\u00a01111\u30001111\u20091111",
    "Arabic-Indic digits": "٤١١١ ١١١١ ١١١١ ١١١١",
    "mathematical digits": "𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏",
}


@pytest.mark.parametrize("card", list(DISGUISED_CARDS.values()), ids=list(DISGUISED_CARDS))
def test_a_disguised_card_number_is_detected_and_masked(card: str) -> None:
    text = f"sure, my card is {card} and it expires soon"
    assert "card_number" in [hit.name for hit in detect(text)]
    masked = Redactor().mask(text)
    assert masked == "sure, my card is [CARD] and it expires soon"


def test_the_classifier_and_the_redactor_see_the_same_detector_hits() -> None:
    for card in DISGUISED_CARDS.values():
        text = f"Mein Name ist Jürgen, meine Karte ist {card}"
        # The classifier detects on its normal form; the redactor on the raw text.
        assert detect(normalise_text(text)) == detect(text)


def test_the_masked_text_keeps_everything_around_the_value() -> None:
    text = "Ünïcode prefix — call me at ５５５-１２３-４５６７ tomorrow"
    assert Redactor().mask(text) == "Ünïcode prefix — call me at [PHONE] tomorrow"


def test_folding_with_offsets_is_folding() -> None:
    alphabet = [*"aZ9 -.\t", "\u200b", "\u00ad", "ß", "İ", "Σ", "é", "\u0301", "１", "٣", "½", "ﬁ", "𝐀", "\u3000", "¨"]
    rng = random.Random(11)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        folded, origins = fold_with_offsets(text)
        assert folded == fold(text) == fold(normalise_text(text))
        assert len(origins) == len(folded) and origins == sorted(origins)


@pytest.mark.parametrize("before", [1530, 1790, 2040, 2046])
def test_a_card_number_is_masked_wherever_a_window_or_the_logged_head_ends(before: int) -> None:
    # Texts longer than the detectors read are masked in overlapping windows; longer ones still are logged as
    # head and tail. A value across any of those boundaries is masked whole.
    for length in (4000, 12_000):
        text = "x" * before + f" {CARD} " + "y" * (length - before)
        masked = Redactor().mask(text)
        assert "4111" not in masked and "1111" not in masked
        assert "[CARD]" in masked or length > 2 * MAX_TURN_CHARS  # the logged head may end inside "[CARD]"
