"""Seeded stratified splits: the same draws for every initialisation of a comparison."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SPLIT, _SUBSET = 0, 1


def _rng(seed: int, repeat: int, stratum: int, purpose: int) -> np.random.Generator:
    # Each (repeat, class) gets its own stream, so adding a class or a fraction
    # never changes the draws of the others.
    return np.random.default_rng([seed, repeat, stratum, purpose])


def stratified_split(
    labels: np.ndarray, seed: int, repeat: int, test_share: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test), ``test_share`` of every class in test.

    A class keeps at least one training sample; a class with a single sample has no
    test sample.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    labels = np.asarray(labels)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = _rng(seed, repeat, int(cls), _SPLIT).permutation(np.flatnonzero(labels == cls))
        n_test = min(round(len(idx) * test_share), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def fraction_subset(
    labels: np.ndarray, train_idx: np.ndarray, fraction: float, seed: int, repeat: int
) -> np.ndarray:
    """A stratified ``fraction`` of ``train_idx``, at least one sample per class.

    Subsets of one repeat are nested (the 5 % subset lies inside the 10 % one), so a
    curve over fractions measures the labels added, not a new draw.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    train_idx = np.asarray(train_idx)
    out: list[np.ndarray] = []
    for cls in np.unique(labels[train_idx]):
        members = train_idx[labels[train_idx] == cls]
        order = _rng(seed, repeat, int(cls), _SUBSET).permutation(members)
        out.append(order[: max(1, round(len(members) * fraction))])
    return np.sort(np.concatenate(out))


def min_class_size(test_share: float = 0.25) -> int:
    """Fewest samples a class needs for one test and one training sample."""
    n = 2
    while min(round(n * test_share), n - 1) < 1:
        n += 1
    return n


def split_problem(
    labels: np.ndarray, names: Sequence[str], test_share: float = 0.25
) -> str | None:
    """Why these class labels cannot be compared (None when they can).

    With fewer than two classes every score is 1.0; a class smaller than
    :func:`min_class_size` has no test sample, and a cell would score NaN.
    """
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(names))
    present = np.flatnonzero(counts).tolist()
    if len(present) < 2:
        found = ", ".join(names[i] for i in present) or "none"
        return f"holds {len(present)} class(es) ({found}); a comparison needs at least 2"
    need = min_class_size(test_share)
    small = [f"{names[i]} ({counts[i]})" for i in present if counts[i] < need]
    if small:
        return (f"class {', '.join(small[:5])} too small: a {1 - test_share:.0%}/"
                f"{test_share:.0%} train/test split needs at least {need} images per class")
    return None
