"""Device-side augmentation: geometry against torch.rot90/flip per sample, jitter, determinism."""

from __future__ import annotations

import itertools

import pytest
import torch

from training.augment import GpuAugment, Jitter, colour_jitter, rotate_flip, step_generator


def reference(x: torch.Tensor, k: int, v: bool, h: bool) -> torch.Tensor:
    y = torch.rot90(x, k, (1, 2))
    if v:
        y = y.flip(1)
    if h:
        y = y.flip(2)
    return y


def test_rotate_flip_matches_rot90_and_flips() -> None:
    combos = list(itertools.product(range(4), (False, True), (False, True)))
    x = torch.arange(len(combos) * 3 * 5 * 5, dtype=torch.float32).view(len(combos), 3, 5, 5)
    k = torch.tensor([c[0] for c in combos])
    v = torch.tensor([c[1] for c in combos])
    h = torch.tensor([c[2] for c in combos])
    out = rotate_flip(x, k, v, h)
    for i, (ki, vi, hi) in enumerate(combos):
        assert torch.equal(out[i], reference(x[i], ki, vi, hi)), (ki, vi, hi)


def test_train_augment_covers_all_eight_orientations() -> None:
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).expand(512, 3, 4, 4).contiguous()
    aug = GpuAugment([0.0] * 3, [1.0] * 3, Jitter(0.0, 0.0, 0.0))
    out = aug.train(x, step_generator(torch.device("cpu"), 0, 0, 0))
    kinds = {tuple(o[0].flatten().tolist()) for o in out}
    assert len(kinds) == 8  # the dihedral group of the square


def test_same_step_same_augmentation_other_step_other() -> None:
    x = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8)
    aug = GpuAugment([0.4, 0.5, 0.6], [0.2, 0.2, 0.2])
    cpu = torch.device("cpu")
    a = aug.train(x, step_generator(cpu, 1, 10, 0))
    b = aug.train(x, step_generator(cpu, 1, 10, 0))
    c = aug.train(x, step_generator(cpu, 1, 11, 0))
    d = aug.train(x, step_generator(cpu, 1, 10, 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, d)


def test_jitter_bounds_and_identity() -> None:
    x = torch.rand(32, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(colour_jitter(x.clone(), Jitter(0.0, 0.0, 0.0), g), x)
    y = colour_jitter(x.clone(), Jitter(0.5, 0.5, 0.5), g)
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert not torch.allclose(x, y)
    # brightness alone scales every pixel of a sample by one factor in [0.5, 1.5]
    z = colour_jitter(x.clone() * 0.5, Jitter(0.5, 0.0, 0.0), g)
    ratio = z / (x * 0.5)
    per_sample = ratio.flatten(1)
    torch.testing.assert_close(per_sample.min(1).values, per_sample.max(1).values)
    assert per_sample.min() >= 0.5 - 1e-6 and per_sample.max() <= 1.5 + 1e-6


def test_eval_normalises_only() -> None:
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    aug = GpuAugment([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    out = aug.eval(x)
    assert out[:, 0].unique().tolist() == [1.0]
    assert out[:, 1].unique().tolist() == [3.0]
    assert out[:, 2].unique().tolist() == pytest.approx([0.5])
