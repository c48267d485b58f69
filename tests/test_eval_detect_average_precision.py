"""Detection mAP against pycocotools driven directly, on hand-built predictions."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from training.evaluation.detection.average_precision import mean_average_precision
from training.evaluation.detection.targets import Detections

# three images, two classes: hits, a loose hit, a duplicate, a false alarm, a miss
TRUTH = [
    ([[10, 10, 50, 40], [60, 60, 90, 100]], [0, 1]),
    ([[5, 5, 25, 25], [30, 30, 70, 70], [100, 10, 120, 40]], [0, 0, 1]),
    ([], []),
]
PREDICTIONS = [
    ([[12, 11, 50, 42], [61, 58, 88, 101], [0, 0, 20, 20]], [0.9, 0.8, 0.3], [0, 1, 0]),
    ([[5, 6, 26, 25], [6, 5, 24, 26], [36, 36, 76, 76], [200, 200, 220, 220]],
     [0.95, 0.7, 0.6, 0.85], [0, 0, 0, 1]),
    ([[40, 40, 60, 60]], [0.5], [1]),
]


def as_inputs(preds: list, truth: list) -> tuple[list[Detections], list]:
    dets = [Detections(torch.tensor(b, dtype=torch.float32).reshape(-1, 4), torch.tensor(s),
                       torch.tensor(lab)) for b, s, lab in preds]
    gts = [(torch.tensor(b, dtype=torch.float32).reshape(-1, 4), torch.tensor(lab))
           for b, lab in truth]
    return dets, gts


def pycocotools_scores(preds: list, truth: list, cat: int | None = None) -> tuple[float, float]:
    """(AP@[.5:.95], AP@.5) straight from COCOeval, xywh boxes as COCO stores them."""
    xywh = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]  # noqa: E731
    images = [{"id": i, "width": 256, "height": 256} for i in range(len(truth))]
    anns = [{"id": len(images) * 100 + k, "image_id": i, "category_id": lab, "bbox": xywh(b),
             "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0}
            for i, (boxes, labels) in enumerate(truth)
            for k, (b, lab) in enumerate(zip(boxes, labels, strict=True))]
    for k, a in enumerate(anns):
        a["id"] = k + 1
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([{"image_id": i, "category_id": lab, "bbox": xywh(b), "score": s}
                         for i, (boxes, scores, labels) in enumerate(preds)
                         for b, s, lab in zip(boxes, scores, labels, strict=True)])
        ev = COCOeval(gt, dt, "bbox")
        if cat is not None:
            ev.params.catIds = [cat]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def test_map_equals_pycocotools_on_hand_built_predictions() -> None:
    score = mean_average_precision(*as_inputs(PREDICTIONS, TRUTH), n_classes=3)
    coco, at50 = pycocotools_scores(PREDICTIONS, TRUTH)
    assert 0.2 < at50 < 1 and coco < at50  # a case that is neither trivial nor perfect
    assert score.map50 == pytest.approx(at50, abs=1e-6)
    assert score.map == pytest.approx(coco, abs=1e-6)
    for cls in (0, 1):
        assert score.per_class50[cls] == pytest.approx(
            pycocotools_scores(PREDICTIONS, TRUTH, cat=cls)[1], abs=1e-6)
    assert math.isnan(score.per_class50[2])  # no such object in the truth


def test_empty_predictions_score_zero_and_perfect_ones_one() -> None:
    empty = [([], [], []) for _ in TRUTH]
    score = mean_average_precision(*as_inputs(empty, TRUTH), n_classes=2)
    assert score.map50 == 0 and score.map == 0
    perfect = [(b, [1.0] * len(b), lab) for b, lab in TRUTH]
    score = mean_average_precision(*as_inputs(perfect, TRUTH), n_classes=2)
    assert score.map50 == 1 and score.map == 1
    assert np.array_equal(score.per_class50, [1.0, 1.0])


def test_no_ground_truth_object_has_no_score() -> None:
    score = mean_average_precision(*as_inputs(PREDICTIONS[2:], TRUTH[2:]), n_classes=2)
    assert math.isnan(score.map50) and math.isnan(score.map)
