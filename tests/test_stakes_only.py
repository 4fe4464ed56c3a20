"""The stakes-only screen's parsing and figures (``bench/stakes_only.py``), on hand-made scores."""

from __future__ import annotations

import click
import pandas as pd
import pytest

from bench.stakes_only import Variant, summary


def test_variants_parse_from_the_command_line() -> None:
    assert Variant.parse("base") == Variant("base")
    assert Variant.parse("vote=0.3,k=10,C=1") == Variant("vote=0.3,k=10,C=1", c=1.0, vote_weight=0.3, vote_k=10)
    with pytest.raises(click.BadParameter, match="unknown key 'weight'"):
        Variant.parse("weight=0.3")


def test_leak_counts_only_a_calls_turns_before_its_first_high_stakes_one() -> None:
    scores = pd.DataFrame(
        {
            "contract": ["high_stakes"] * 3 + ["small_safe"] * 5 + ["standard"],
            "after_high_stakes": [False, False, True, False, False, False, False, True, False],
            # Two first high-stakes turns (one under the band), one sticky turn under it that does not count;
            # four small-safe turns that count (three under the band), one after stakes that does not.
            "v": [0.1, 0.9, 0.05, 0.1, 0.2, 0.25, 0.6, 0.0, 0.5],
        }
    )
    found = summary(scores, "v")
    assert found["leak"] == pytest.approx(1 / 2)
    assert found["capture"] == pytest.approx(3 / 4)
    # The 80 % quantile of the counted small-safe scores is 0.39: the leak there is again 1 of 2.
    assert found["leak_at_equal_capture"] == pytest.approx(1 / 2)
    # Over every labelled turn, sticky ones too: 7.5 of 15 high/small pairs ordered right (a tie counts half).
    assert found["auc"] == pytest.approx(0.5)
