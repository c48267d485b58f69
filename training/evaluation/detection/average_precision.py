"""mAP by pycocotools (through torchmetrics): AP at IoU 0.5 and COCO's AP@[.5:.95].

AP at IoU 0.5 per class, averaged over the classes present in the ground truth, is the
paper's (VOC-style) metric; interpolation is COCO's 101 recall points. Classes absent
from the ground truth are left out of the mean (null in the per-class list).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from training.evaluation.detection.targets import Detections

IOU = 0.5


@dataclasses.dataclass(frozen=True)
class DetectionScore:
    map50: float  # NaN when the ground truth has no object
    map: float
    per_class50: np.ndarray  # (C,), NaN for classes absent from the ground truth


def _metric(iou_thresholds: list[float] | None, max_dets: int, per_class: bool) -> Any:
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools",
                                iou_thresholds=iou_thresholds, class_metrics=per_class,
                                max_detection_thresholds=[1, 10, max_dets])


def _value(x: torch.Tensor) -> float:
    v = float(x)
    return math.nan if v < 0 else v  # pycocotools' −1: nothing to score


def mean_average_precision(
    predictions: Sequence[Detections], truth: Sequence[tuple[torch.Tensor, torch.Tensor]],
    n_classes: int, max_dets: int = 100, coco: bool = True,
) -> DetectionScore:
    """Score ``predictions`` against (boxes, labels) per image; all on the CPU.
    ``coco=False`` skips the ten-threshold COCO pass (model selection needs AP@0.5 only)."""
    preds = [{"boxes": d.boxes.float().cpu(), "scores": d.scores.float().cpu(),
              "labels": d.labels.long().cpu()} for d in predictions]
    target = [{"boxes": b.float().cpu().reshape(-1, 4), "labels": lab.long().cpu()}
              for b, lab in truth]
    per_class = np.full(n_classes, np.nan)
    if not any(len(t["labels"]) for t in target):
        return DetectionScore(math.nan, math.nan, per_class)
    at50 = _metric([IOU], max_dets, per_class=True)
    at50.update(preds, target)
    result = at50.compute()
    full = {"map": torch.tensor(math.nan)}
    if coco:
        every = _metric(None, max_dets, per_class=False)
        every.update(preds, target)
        full = every.compute()
    for cls, ap in zip(result["classes"].reshape(-1).tolist(),
                       result["map_per_class"].reshape(-1).tolist(), strict=True):
        per_class[int(cls)] = ap if ap >= 0 else math.nan
    return DetectionScore(_value(result["map"]), _value(full["map"]), per_class)
