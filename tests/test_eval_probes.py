"""The harness learns: probes far above chance on separable features, at chance on none."""

from __future__ import annotations

import numpy as np
import torch

from training.evaluation.confusion import confusion_matrix, mean_class_accuracy
from training.evaluation.probes import knn_predict, linear_probe

K = 6


def _features(n_per_class: int, dim: int, informative: bool, seed: int
              ) -> tuple[torch.Tensor, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    labels = np.repeat(np.arange(K), n_per_class)
    x = torch.randn(len(labels), dim, generator=gen)
    if informative:  # class mean shifted along its own direction, noise elsewhere
        x[np.arange(len(labels)), labels] += 4.0
    return x, labels


def _score(pred: np.ndarray, truth: np.ndarray) -> float:
    return mean_class_accuracy(confusion_matrix(truth, pred, K))


def test_linear_probe_separates_separable_features() -> None:
    xtr, ytr = _features(30, 32, True, seed=0)
    xte, yte = _features(20, 32, True, seed=1)
    assert _score(linear_probe(xtr, ytr, xte, K), yte) > 0.9  # chance is 1/6


def test_linear_probe_on_constant_features_is_at_chance() -> None:
    xtr, ytr = torch.full((60, 16), 0.7), np.repeat(np.arange(K), 10)
    xte, yte = torch.full((120, 16), 0.7), np.repeat(np.arange(K), 20)
    pred = linear_probe(xtr, ytr, xte, K)
    assert len(set(pred.tolist())) == 1  # nothing to tell the samples apart
    assert _score(pred, yte) == 1 / K


def test_linear_probe_on_noise_is_near_chance() -> None:
    xtr, ytr = _features(10, 32, False, seed=0)
    xte, yte = _features(50, 32, False, seed=1)
    assert _score(linear_probe(xtr, ytr, xte, K), yte) < 0.35


def test_knn_separates_separable_features_and_not_constant_ones() -> None:
    xtr, ytr = _features(10, 32, True, seed=0)
    xte, yte = _features(20, 32, True, seed=1)
    assert _score(knn_predict(xtr, ytr, xte, K, k=5), yte) > 0.9
    const = knn_predict(torch.ones(60, 8), ytr, torch.ones(120, 8), K, k=5)
    assert _score(const, yte) == 1 / K
