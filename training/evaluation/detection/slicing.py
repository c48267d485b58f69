"""Large images cut into square slices, boxes clipped to each slice (the paper's setup).

Slices cover the whole image: the last row and column of slices sit flush with the far
edge (overlapping their neighbours) instead of dropping the remainder; an image smaller
than a slice is zero-padded at the bottom and right. A box is kept in a slice when at
least ``keep`` of its area lies inside it, and is then clipped to the slice.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from pipeline.report import RunReport
from training.evaluation.detection.data import Annotations, read_image

DEFAULT_KEEP = 0.5  # "most of it"


@dataclasses.dataclass(frozen=True)
class SliceSpec:
    size: int = 256
    overlap: int = 0
    keep: float = DEFAULT_KEEP

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"slice overlap {self.overlap} must be in [0, {self.size})")
        if not 0.0 < self.keep <= 1.0:
            raise ValueError(f"keep {self.keep} must be in (0, 1]")


@dataclasses.dataclass
class SliceSet:
    """``images`` uint8 (N, 3, S, S); per slice its boxes (K, 4) float32 and labels (K,).

    ``image_index`` maps each slice to its source image, so splits are made by image.
    """

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    image_index: np.ndarray
    names: list[str]
    classes: list[str]
    n_images: int

    def image_strata(self) -> np.ndarray:
        """Each image's most frequent class (``len(classes)`` when it has none)."""
        n_classes = len(self.classes)
        counts = np.zeros((self.n_images, n_classes + 1), np.int64)
        for img, labels in zip(self.image_index, self.labels, strict=True):
            counts[img, labels.numpy()] += 1
        counts[:, n_classes] = np.where(counts[:, :n_classes].sum(1) == 0, 1, 0)
        return counts.argmax(1)

    def slices_of(self, images: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(self.image_index, images))


def slice_origins(length: int, size: int, stride: int) -> list[int]:
    """Slice starts along one axis covering ``[0, length)``."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def clip_to_window(boxes: np.ndarray, labels: np.ndarray, x0: int, y0: int, size: int,
                   keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes in window coordinates, clipped; those with ``keep`` of their area inside."""
    shifted = boxes.reshape(-1, 4).astype(np.float64) - [x0, y0, x0, y0]
    clipped = np.clip(shifted, 0, size)
    area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    kept = (inside > 0) & (inside >= keep * area * (1 - 1e-6))
    return clipped[kept].astype(np.float32), labels[kept]


def cut_slices(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, spec: SliceSpec
               ) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """(x0, y0, slice, boxes, labels) for every slice of one (3, H, W) image."""
    _, height, width = image.shape
    size, stride = spec.size, spec.size - spec.overlap
    out = []
    for y0 in slice_origins(height, size, stride):
        for x0 in slice_origins(width, size, stride):
            tile = np.zeros((3, size, size), np.uint8)
            part = image[:, y0:y0 + size, x0:x0 + size]
            tile[:, :part.shape[1], :part.shape[2]] = part
            b, lab = clip_to_window(boxes, labels, x0, y0, size, spec.keep)
            out.append((x0, y0, tile, b, lab))
    return out


def load_slices(annotations: Annotations, spec: SliceSpec, report: RunReport) -> SliceSet:
    """Decode, check and slice every image (a bad image or box raises ``InputError``)."""
    tiles, boxes, labels, owner, names = [], [], [], [], []
    for i, item in enumerate(annotations.images):
        rgb, checked = read_image(item)
        report.counts["images"] += 1
        report.counts["objects"] += len(checked)
        for x0, y0, tile, b, lab in cut_slices(rgb, checked, item.labels, spec):
            tiles.append(tile)
            boxes.append(torch.from_numpy(b))
            labels.append(torch.from_numpy(lab))
            owner.append(i)
            names.append(f"{item.path.name}@{x0},{y0}")
    if annotations.crowd_skipped:
        report.counts["crowd_regions_skipped"] += annotations.crowd_skipped
    report.counts["slices"] += len(tiles)
    report.counts["slice_objects"] += sum(len(b) for b in boxes)
    return SliceSet(torch.from_numpy(np.stack(tiles)), boxes, labels,
                    np.array(owner, np.int64), names, annotations.classes,
                    len(annotations.images))
