"""CenterNet targets and decoding (Zhou et al., "Objects as Points", 2019).

Boxes are x1, y1, x2, y2 in input pixels. At output stride ``R`` an object is the peak
of a Gaussian in its class's heatmap at the cell holding its centre, plus its size and
the sub-cell offset of its centre, both in output cells. Decoding inverts this exactly:
3×3 max-pool peaks, the top K, centre = cell + offset, box = centre ± size / 2.
Size and offset are class-agnostic (as in CenterNet): objects whose centres fall in one
output cell share them.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class Targets:
    """Dense heatmap (B, C, H, W) and one row per object: its image, cell, size, offset."""

    heatmap: torch.Tensor
    batch: torch.Tensor
    cell: torch.Tensor  # y * W + x
    size: torch.Tensor  # (K, 2) width, height in output cells
    offset: torch.Tensor  # (K, 2) centre minus cell corner


@dataclasses.dataclass(frozen=True)
class Detections:
    """One image's detections: ``boxes`` (K, 4) x1, y1, x2, y2 pixels, scores, labels."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7
                    ) -> torch.Tensor:
    """The largest centre shift keeping IoU ≥ ``min_overlap`` in three corner cases.

    As in the CornerNet/CenterNet reference code (including its divisors), so that the
    targets are those CenterNet's published results were trained with.
    """
    hw, s = height * width, height + width
    sq1 = torch.sqrt(s**2 - 4 * hw * (1 - min_overlap) / (1 + min_overlap))
    r1 = (s + sq1) / 2
    sq2 = torch.sqrt((2 * s) ** 2 - 16 * (1 - min_overlap) * hw)
    r2 = (2 * s + sq2) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * s
    sq3 = torch.sqrt(b3**2 - 4 * a3 * (min_overlap - 1) * hw)
    r3 = (b3 + sq3) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def encode(boxes: list[torch.Tensor], labels: list[torch.Tensor], n_classes: int,
           out_size: tuple[int, int], stride: int, min_overlap: float = 0.7) -> Targets:
    """Targets of a batch on the boxes' device; overlapping Gaussians keep their maximum."""
    height, width = out_size
    device = boxes[0].device if boxes else torch.device("cpu")
    counts = torch.tensor([len(b) for b in boxes], device=device)
    batch = torch.repeat_interleave(torch.arange(len(boxes), device=device), counts)
    b = (torch.cat(boxes) if boxes else torch.zeros(0, 4, device=device)).float() / stride
    lab = torch.cat(labels).long() if labels else torch.zeros(0, dtype=torch.long)
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = b[:, 2:] - b[:, :2]
    cx = centre[:, 0].floor().long().clamp(0, width - 1)
    cy = centre[:, 1].floor().long().clamp(0, height - 1)
    heatmap = torch.zeros(len(boxes) * n_classes, height, width, device=device)
    if len(b):
        radius = gaussian_radius(size[:, 1], size[:, 0], min_overlap).floor().clamp(min=0)
        sigma = (2 * radius + 1) / 6
        dx = torch.arange(width, device=device)[None, :] - cx[:, None]
        dy = torch.arange(height, device=device)[None, :] - cy[:, None]
        inside = ((dx.abs() <= radius[:, None])[:, None, :]
                  & (dy.abs() <= radius[:, None])[:, :, None])
        d2 = (dx**2)[:, None, :] + (dy**2)[:, :, None]
        peaks = torch.exp(-d2 / (2 * sigma[:, None, None] ** 2)) * inside
        plane = (batch * n_classes + lab.to(device)) * (height * width)
        cells = plane[:, None] + torch.arange(height * width, device=device)[None, :]
        heatmap.view(-1).scatter_reduce_(0, cells.flatten(), peaks.flatten(), "amax")
    offset = centre - torch.stack([cx, cy], 1).float()
    return Targets(heatmap.view(len(boxes), n_classes, height, width), batch,
                   cy * width + cx, size, offset)


@torch.no_grad()
def decode(heatmap_logits: torch.Tensor, size: torch.Tensor, offset: torch.Tensor,
           stride: int, top_k: int = 100, kernel: int = 3) -> list[Detections]:
    """Peaks that are their ``kernel``² neighbourhood's maximum, the ``top_k`` per image."""
    heat = heatmap_logits.float().sigmoid()
    n, n_classes, height, width = heat.shape
    peak = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    heat = heat * (peak == heat)
    scores, index = heat.view(n, -1).topk(min(top_k, n_classes * height * width))
    labels, cell = index // (height * width), index % (height * width)
    gather = cell[:, None, :].expand(-1, 2, -1)
    wh = size.float().view(n, 2, -1).gather(2, gather).clamp(min=0)
    off = offset.float().view(n, 2, -1).gather(2, gather)
    cx = (cell % width).float() + off[:, 0]
    cy = torch.div(cell, width, rounding_mode="floor").float() + off[:, 1]
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2,
                         cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], dim=-1) * stride
    limit = torch.tensor([width, height, width, height], device=boxes.device) * stride
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    return [Detections(boxes[i], scores[i], labels[i]) for i in range(n)]
