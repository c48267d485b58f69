"""Random flips and 90° rotations of square slices, their boxes moved alike."""

from __future__ import annotations

import torch

from training.evaluation.dihedral import pick_dihedral


def dihedral_boxes(boxes: torch.Tensor, code: int, size: int) -> torch.Tensor:
    """The same symmetry on x1, y1, x2, y2 boxes in a ``size`` × ``size`` slice."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    if code >= 4:
        x1, x2 = size - x2, size - x1
    for _ in range(code % 4):  # rot90 (counter-clockwise): (x, y) → (y, size − x)
        x1, y1, x2, y2 = y1, size - x2, y2, size - x1
    return torch.stack([x1, y1, x2, y2], dim=-1)


def random_box_dihedral(images: torch.Tensor, boxes: list[torch.Tensor], generator: torch.Generator
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """An independent random symmetry per slice (aerial scenes have no up)."""
    size = images.shape[-1]
    codes = torch.randint(0, 8, (images.shape[0],), generator=generator)
    out = pick_dihedral(images, codes.to(images.device))
    return out, [dihedral_boxes(b, c, size) for b, c in zip(boxes, codes.tolist(), strict=True)]
