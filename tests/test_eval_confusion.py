"""Mean class accuracy and mIoU against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.confusion import (
    confusion_matrix,
    mean_class_accuracy,
    mean_iou,
    per_class_iou,
)


def test_mean_class_accuracy_by_hand() -> None:
    # class 0: 3 of 4 right; class 1: 1 of 2; class 2: 0 of 1 → (0.75 + 0.5 + 0) / 3
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 1])
    conf = confusion_matrix(y_true, y_pred, 3)
    assert conf.tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert mean_class_accuracy(conf) == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    # overall accuracy would be 4/7: the metric weights classes, not samples
    assert mean_class_accuracy(conf) != pytest.approx(4 / 7)


def test_absent_class_is_left_out_of_the_mean() -> None:
    conf = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 4)
    assert mean_class_accuracy(conf) == 1.0


def test_miou_by_hand_with_ignored_pixels() -> None:
    y_true = np.array([[0, 0, 1], [1, 255, 2]])
    y_pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(y_true, y_pred, 3, ignore_index=255)
    # the ignored pixel's prediction (2) counts nowhere; kept pairs (t, p):
    # (0,0) (0,1) (1,1) (1,1) (2,0)
    # class 0: I=1, U=2 true + 2 predicted - 1 = 3; class 1: I=2, U=2+3-2=3;
    # class 2: I=0, U=1+0-0=1
    assert conf.sum() == 5
    assert per_class_iou(conf) == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean_iou(conf) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_out_of_range_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)
