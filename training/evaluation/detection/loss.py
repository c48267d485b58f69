"""CenterNet's training loss: penalty-reduced focal loss on heatmaps, L1 on size/offset."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.evaluation.detection.model import CenterNetConfig, Heads
from training.evaluation.detection.targets import Targets


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
               beta: float = 4.0) -> torch.Tensor:
    """Peaks (target 1) as positives; elsewhere negatives down-weighted by (1 − target)^β.

    Normalised by the number of objects (by 1 where there is none).
    """
    logits, target = logits.float(), target.float()
    pos = target.eq(1).float()
    p = logits.sigmoid()
    pos_loss = F.logsigmoid(logits) * (1 - p) ** alpha * pos
    neg_loss = F.logsigmoid(-logits) * p**alpha * (1 - target) ** beta * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def gathered_l1(pred: torch.Tensor, targets: Targets, value: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the map's values at each object's cell and the object's target."""
    if not len(value):
        return pred.sum() * 0.0
    flat = pred.float().flatten(2)  # (B, 2, H*W)
    at = flat[targets.batch, :, targets.cell]  # (K, 2)
    return F.l1_loss(at, value)


def centernet_loss(heads: Heads, targets: Targets, cfg: CenterNetConfig) -> torch.Tensor:
    heat = focal_loss(heads.heatmap, targets.heatmap, cfg.focal_alpha, cfg.focal_beta)
    size = gathered_l1(heads.size, targets, targets.size)
    offset = gathered_l1(heads.offset, targets, targets.offset)
    return heat + cfg.size_weight * size + cfg.offset_weight * offset
