"""The paper's split protocol: stratified, disjoint, nested and reproducible under a seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.evaluation.splits import fraction_subset, stratified_split

LABELS = np.repeat(np.arange(5), [100, 40, 12, 4, 2])


def test_split_is_three_to_one_per_class_and_disjoint() -> None:
    train, test = stratified_split(LABELS, seed=0, repeat=0)
    assert not set(train) & set(test)
    assert sorted(np.concatenate([train, test])) == list(range(len(LABELS)))
    # round(n / 4) per class; the class of two keeps both for training (round(0.5) == 0)
    assert np.bincount(LABELS[test], minlength=5).tolist() == [25, 10, 3, 1, 0]
    assert np.bincount(LABELS[train]).tolist() == [75, 30, 9, 3, 2]


def test_split_is_deterministic_and_varies_with_repeat_and_seed() -> None:
    a = stratified_split(LABELS, seed=3, repeat=1)
    b = stratified_split(LABELS, seed=3, repeat=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], stratified_split(LABELS, seed=3, repeat=2)[1])
    assert not np.array_equal(a[1], stratified_split(LABELS, seed=4, repeat=1)[1])


def test_fraction_subset_is_stratified_nested_and_keeps_every_class() -> None:
    train, test = stratified_split(LABELS, seed=0, repeat=0)
    small = fraction_subset(LABELS, train, 0.05, seed=0, repeat=0)
    large = fraction_subset(LABELS, train, 0.5, seed=0, repeat=0)
    full = fraction_subset(LABELS, train, 1.0, seed=0, repeat=0)
    assert np.bincount(LABELS[small]).tolist() == [4, 2, 1, 1, 1]  # round(n * 5 %), at least 1
    assert np.bincount(LABELS[large]).tolist() == [38, 15, 4, 2, 1]
    assert np.array_equal(full, train)
    assert set(small) <= set(large) <= set(train)
    assert not set(large) & set(test)


def test_invalid_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="test_share"):
        stratified_split(LABELS, seed=0, repeat=0, test_share=1.0)
    with pytest.raises(ValueError, match="fraction"):
        fraction_subset(LABELS, np.arange(10), 0.0, seed=0, repeat=0)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
       fraction=st.floats(0.01, 1.0), seed=st.integers(0, 2**16), repeat=st.integers(0, 5))
def test_split_properties_hold_for_any_class_sizes(
    counts: list[int], fraction: float, seed: int, repeat: int
) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    train, test = stratified_split(labels, seed, repeat)
    sub = fraction_subset(labels, train, fraction, seed, repeat)
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(labels)
    assert set(labels[train]) == set(labels)  # every class keeps a training sample
    assert set(labels[sub]) == set(labels) and set(sub) <= set(train)
    again = fraction_subset(labels, *stratified_split(labels, seed, repeat)[:1], fraction,
                            seed, repeat)
    assert np.array_equal(sub, again)
