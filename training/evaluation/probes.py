"""Quick checks on frozen features: multinomial logistic regression and cosine k-NN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F


@contextmanager
def single_thread() -> Iterator[None]:
    """L-BFGS runs thousands of tiny ops: thread hand-offs cost 40× the arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def linear_probe(
    train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, n_classes: int,
    l2: float = 1e-3, max_iter: int = 200,
) -> np.ndarray:
    """Fit L2-regularised softmax regression by full-batch L-BFGS; predict test classes.

    Features are standardised on the training part only, so the test part leaks nothing.
    """
    mu = train_x.mean(0)
    sd = train_x.std(0, unbiased=False).clamp_min(1e-6)
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    ytr = torch.as_tensor(train_y, dtype=torch.long)
    w = torch.zeros(xtr.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, ytr) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with single_thread():
        opt.step(closure)
    with torch.no_grad():
        return (xte @ w + b).argmax(1).numpy()


def knn_predict(
    train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, n_classes: int, k: int = 20
) -> np.ndarray:
    """Majority vote of the k most cosine-similar training samples; ties by similarity."""
    k = min(k, train_x.shape[0])
    sims = F.normalize(test_x, dim=1) @ F.normalize(train_x, dim=1).T
    top, pos = sims.topk(k, dim=1)
    labels = torch.as_tensor(train_y, dtype=torch.long)[pos]
    votes = torch.zeros(test_x.shape[0], n_classes)
    votes.scatter_add_(1, labels, torch.ones_like(top) + 1e-3 * top)
    return votes.argmax(1).numpy()
