"""The contrastive fine-tune's pairs (classifiers/encoder_finetune.py): what is paired, and that it is seeded."""

from __future__ import annotations

import pandas as pd
import pytest

from classifiers.contract import HIGH_STAKES, SMALL_SAFE
from classifiers.encoder_finetune import labelled_texts, sample_pairs


def frame() -> pd.DataFrame:
    rows = [
        ("someone took money from my account", "complaint", "payment", "high_stakes"),
        ("there is a charge I never made", "complaint", "payment", "high_stakes"),
        ("what are your opening hours", "faq", "", "small_safe"),
        ("when do you open on sunday", "faq", "", "small_safe"),
        ("I want to dispute how you handled this", "complaint", "", "standard"),
    ]
    return pd.DataFrame(
        {
            "text": [r[0] for r in rows],
            "intent": [r[1] for r in rows],
            "risks": [r[2] for r in rows],
            "contract": [r[3] for r in rows],
        }
    )


def test_standard_turns_are_not_paired() -> None:
    texts = labelled_texts(frame())
    assert {contract for _, contract, _ in texts} == {HIGH_STAKES, SMALL_SAFE}
    assert "I want to dispute how you handled this" not in {text for text, _, _ in texts}


def test_pairs_alternate_similar_and_dissimilar_and_are_seeded() -> None:
    texts = labelled_texts(frame())
    contract_of = {text: contract for text, contract, _ in texts}
    pairs = sample_pairs(texts, 40, seed=3)
    assert pairs == sample_pairs(texts, 40, seed=3)
    assert pairs != sample_pairs(texts, 40, seed=4)
    for index, (first, second, target) in enumerate(pairs):
        if index % 2 == 0:
            assert target == 1.0 and first != second and contract_of[first] == contract_of[second]
        else:
            assert target == 0.0 and {contract_of[first], contract_of[second]} == {HIGH_STAKES, SMALL_SAFE}


def test_pairs_need_both_contracts() -> None:
    only_safe = frame().iloc[2:4]
    with pytest.raises(ValueError, match="both contracts"):
        sample_pairs(labelled_texts(only_safe), 4, seed=1)
