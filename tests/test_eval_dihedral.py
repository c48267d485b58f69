"""Random flips/rotations: each sample gets one symmetry, applied to its mask alike."""

from __future__ import annotations

import pytest
import torch

from training.evaluation.dihedral import random_dihedral


def _symmetries(x: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(v, k, dims=(-2, -1)) for v in (x, torch.flip(x, dims=(-1,)))
            for k in range(4)]


def test_each_sample_gets_a_symmetry_and_its_mask_the_same() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.arange(16 * 3 * 5 * 5, dtype=torch.int64).reshape(16, 3, 5, 5).to(torch.uint8)
    masks = images[:, 0].clone()
    out, out_masks = random_dihedral(images, gen, masks)
    assert out_masks is not None and out.dtype == torch.uint8
    used = set()
    for i in range(16):
        which = [j for j, s in enumerate(_symmetries(images[i])) if torch.equal(s, out[i])]
        assert len(which) == 1  # the pattern has no symmetry of its own: one match
        assert torch.equal(_symmetries(masks[i])[which[0]], out_masks[i])
        used.add(which[0])
    assert len(used) > 3  # independent draws per sample, not one for the batch


def test_draws_follow_the_generator_and_need_square_inputs() -> None:
    x = torch.randint(0, 255, (8, 3, 4, 4), dtype=torch.uint8)
    a, _ = random_dihedral(x, torch.Generator().manual_seed(5))
    b, _ = random_dihedral(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="square"):
        random_dihedral(torch.zeros(1, 3, 4, 5), torch.Generator())
