"""Batch-wise random flips and 90° rotations, run on the batch's own device."""

from __future__ import annotations

import torch


def dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 symmetries of the square on the last two dims."""
    if code >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k=code % 4, dims=(-2, -1))


def pick_dihedral(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Symmetry ``codes[i]`` on sample ``i``."""
    # Build all 8 views and gather: no host synchronisation, cheap on uint8 batches.
    views = torch.stack([dihedral(x, c) for c in range(8)])
    return views[codes, torch.arange(x.shape[0], device=x.device)]


def random_dihedral(
    images: torch.Tensor, generator: torch.Generator, masks: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply an independent random flip/rotation to each sample (and its mask alike).

    Aerial scenes have no canonical orientation, so all 8 symmetries are valid views.
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError("random rotations need square images")
    codes = torch.randint(0, 8, (images.shape[0],), generator=generator).to(images.device)
    moved = pick_dihedral(masks, codes) if masks is not None else None
    return pick_dihedral(images, codes), moved
