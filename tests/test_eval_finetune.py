"""The training loop's batching, and that fine-tuning learns on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from training.evaluation.finetune import FinetuneConfig, batch_indices, fit, predict


@pytest.mark.parametrize(("n", "size", "lengths"), [(9, 4, [4, 5]), (8, 4, [4, 4]),
                                                    (1, 4, [1]), (10, 3, [3, 3, 4])])
def test_batches_cover_the_epoch_without_a_single_sample_batch(
    n: int, size: int, lengths: list[int]
) -> None:
    chunks = batch_indices(n, size, torch.Generator().manual_seed(0))
    assert [len(c) for c in chunks] == lengths
    assert sorted(torch.cat(chunks).tolist()) == list(range(n))


class Brightness(nn.Module):
    """Classifies by mean brightness: learnable only if inputs reach it scaled to [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.fc = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(x.mean(dim=(1, 2, 3))[:, None]))


def test_fit_learns_a_rotation_invariant_rule() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    images = (torch.rand(40, 3, 8, 8, generator=gen) * 100 + 100 * labels[:, None, None, None])
    images = images.to(torch.uint8)
    torch.manual_seed(0)
    model = Brightness()
    cfg = FinetuneConfig(epochs=30, lr=0.05, batch_size=8)
    fit(model, images, labels, np.arange(24), cfg, seed=0)
    test = np.arange(24, 40)
    assert (predict(model, images, test, cfg) == labels[test].numpy()).all()  # both classes
