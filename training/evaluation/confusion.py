"""Confusion-matrix metrics: the paper's mean class accuracy and mIoU."""

from __future__ import annotations

import numpy as np


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Rows: true class, columns: predicted class; ``ignore_index`` pixels are left out."""
    t = np.asarray(y_true).ravel().astype(np.int64)
    p = np.asarray(y_pred).ravel().astype(np.int64)
    keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
    t, p = t[keep], p[keep]
    if t.size and (t.min() < 0 or t.max() >= n_classes or p.min() < 0 or p.max() >= n_classes):
        raise ValueError(f"class index outside [0, {n_classes})")
    return np.bincount(t * n_classes + p, minlength=n_classes**2).reshape(n_classes, n_classes)


def per_class_accuracy(conf: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class with no true samples."""
    support = conf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(conf) / support, np.nan)


def mean_class_accuracy(conf: np.ndarray) -> float:
    """Mean of the per-class top-1 accuracies over classes present in the truth."""
    return float(np.nanmean(per_class_accuracy(conf)))


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """Intersection over union per class; NaN where a class is neither true nor predicted."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """mIoU over the classes that occur in truth or prediction."""
    return float(np.nanmean(per_class_iou(conf)))
