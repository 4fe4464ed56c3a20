"""The nearest-example index: quoting neighbours and the stakes vote (``classifiers.neighbours``)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from classifiers.neighbours import UNKNOWN_STAKES, ExampleIndex, blend_stakes


def unit(*angles: float) -> np.ndarray:
    """Unit vectors in the plane at the given angles (radians): cosine similarity is the cosine of the gap."""
    return np.column_stack([np.cos(angles), np.sin(angles)]).astype(np.float32)


def test_nearest_quotes_the_most_similar_examples_first() -> None:
    index = ExampleIndex(unit(0.0, 1.0, 2.0), ["near", "middle", "far"], ["faq", "faq", "transaction"])
    [found] = index.nearest(index.similarities(unit(0.1)), k=2)
    assert [neighbour.text for neighbour in found] == ["near", "middle"]
    assert found[0].similarity == pytest.approx(np.cos(0.1), abs=1e-3)


def test_the_vote_is_the_similarity_weighted_share_of_high_stakes_neighbours() -> None:
    index = ExampleIndex(unit(0.0, 0.5, 1.0, 3.0), ["a", "b", "c", "d"], ["x"] * 4, stakes=[1, 0, 1, 0])
    query = unit(0.0)
    similarities = index.similarities(query)
    weights = np.cos([0.0, 0.5, 1.0])  # the three nearest; "d" (cosine < 0) is not among them
    expected = (weights[0] + weights[2]) / weights.sum()
    # Examples are stored as float16: similarities carry about 1e-4 of relative error.
    np.testing.assert_allclose(index.stakes_vote(similarities, k=3), [expected], rtol=1e-3)
    np.testing.assert_allclose(index.stakes_vote(similarities, k=1), [1.0])


def test_examples_without_a_contract_label_have_no_say() -> None:
    """A ``standard`` training turn is quoted as a neighbour but does not vote: the nearest labelled ones do."""
    index = ExampleIndex(unit(0.0, 0.1, 1.0), ["standard", "risky", "safe"], ["x"] * 3, stakes=[UNKNOWN_STAKES, 1, 0])
    similarities = index.similarities(unit(0.0))
    assert index.nearest(similarities, k=1)[0][0].text == "standard"
    np.testing.assert_allclose(index.stakes_vote(similarities, k=1), [1.0])
    only_standard = ExampleIndex(unit(0.0), ["standard"], ["x"], stakes=[UNKNOWN_STAKES])
    assert only_standard.stakes_vote(only_standard.similarities(unit(0.0)), k=5) is None


def test_an_index_without_labels_votes_nothing_even_when_unpickled_from_before_the_vote() -> None:
    unlabelled = ExampleIndex(unit(0.0, 1.0), ["a", "b"], ["x", "y"])
    assert unlabelled.stakes_vote(unlabelled.similarities(unit(0.0)), k=2) is None
    state = unlabelled.__getstate__()
    del state["stakes"]  # what a model pickled before the vote holds (``classifiers.convert`` reads those)
    restored = ExampleIndex.__new__(ExampleIndex)
    restored.__setstate__(state)
    assert restored.stakes is None
    assert pickle.loads(pickle.dumps(unlabelled)).texts == ["a", "b"]


def test_labels_must_match_the_examples() -> None:
    with pytest.raises(ValueError, match="one label per example"):
        ExampleIndex(unit(0.0, 1.0), ["a", "b"], ["x", "y"], stakes=[1])


def test_blended_stakes_are_the_head_alone_without_a_vote_or_a_weight() -> None:
    head, vote = np.array([0.2, 0.8]), np.array([1.0, 0.0])
    np.testing.assert_allclose(blend_stakes(head, vote, 0.3), [0.44, 0.56])
    np.testing.assert_array_equal(blend_stakes(head, None, 0.3), head)
    np.testing.assert_array_equal(blend_stakes(head, vote, 0.0), head)
