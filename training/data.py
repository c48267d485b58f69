"""Training data from what :func:`pipeline.store.reader.open_for_training` returns:
scene-wise split, batched reads, class-balanced sampler.

Chips are read a whole batch at a time, de-duplicated, through the store's
:class:`~pipeline.store.reader.ChipReader` (direct shard reads: 6x zarr's speed
at 256 px, see BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.store.reader import ChipReader


@dataclasses.dataclass(frozen=True)
class Split:
    """Chip indices for training and validation, and how they were chosen."""

    train: np.ndarray
    val: np.ndarray
    mode: str  # "scene", "spatial-block" or "none"
    val_scenes: list[int]
    note: str


def split_chips(
    chip_scene: np.ndarray,
    chip_window: np.ndarray,
    valid: np.ndarray,
    val_fraction: float,
    seed: int,
) -> Split:
    """Hold out whole scenes (overlapping chips of one scene would leak across a chip split)."""
    idx = np.flatnonzero(valid)
    scenes = np.unique(chip_scene[idx])
    if val_fraction <= 0:
        return Split(idx, idx[:0], "none", [], "validation disabled (--val-fraction 0)")
    if len(scenes) >= 2:
        n_val = min(max(1, round(val_fraction * len(scenes))), len(scenes) - 1)
        val_scenes = np.sort(np.random.default_rng(seed).permutation(scenes)[:n_val])
        in_val = np.isin(chip_scene[idx], val_scenes)
        return Split(idx[~in_val], idx[in_val], "scene", [int(s) for s in val_scenes],
                     f"{n_val} of {len(scenes)} scenes held out for validation")
    return _block_split(idx, chip_window, val_fraction, int(scenes[0]))


def _block_split(idx: np.ndarray, window: np.ndarray, val_fraction: float, scene: int) -> Split:
    """One scene: hold out its bottom rows; chips straddling the cut are dropped (no overlap)."""
    top = window[idx, 0].astype(np.int64)
    bottom = top + window[idx, 2]
    cut = np.quantile(top, 1.0 - val_fraction, method="higher")
    val = idx[top >= cut]
    train = idx[bottom <= cut]
    if len(train) == 0 or len(val) == 0:
        return Split(idx, idx[:0], "none", [],
                     "one scene only and too few chips for a spatial split: no validation")
    dropped = len(idx) - len(train) - len(val)
    return Split(train, val, "spatial-block", [scene],
                 f"one scene only: rows >= {cut} px held out for validation, "
                 f"{dropped} chips straddling the cut dropped")


class ChipBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Map-style dataset whose ``__getitems__`` reads a whole batch in one call.

    ``targets`` is per chip: proportions (GeoKR), the dominant class (classification,
    the kNN check) or -1 (no label set).
    """

    def __init__(self, reader: ChipReader, targets: np.ndarray) -> None:
        self.reader = reader
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        chips, props = self.__getitems__([index])
        return chips[0], props[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        chips = torch.from_numpy(self.reader.read(idx))
        return chips, torch.from_numpy(self.targets[idx])


def keep_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate function: ``__getitems__`` already returns a (chips, proportions) batch."""
    chips, props = batch
    return chips, props


class WeightedBatchSampler:
    """Class-balanced batches, drawn with replacement by ``sample_weight``, sharded by rank.

    Every rank draws the same global sequence from ``(seed, epoch)`` and keeps every
    ``num_replicas``-th index, so ranks never need to talk and a resumed run can
    skip exactly the batches already seen (``set_position``).
    """

    def __init__(
        self,
        indices: np.ndarray,
        weights: np.ndarray,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        epoch_size: int | None = None,
    ) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        self.p = w / w.sum()
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        size = len(self.indices) if epoch_size is None else epoch_size
        self.n_batches = size // (batch_size * num_replicas)
        if self.n_batches == 0:
            raise ValueError(
                f"{len(self.indices)} training chips do not fill one batch of "
                f"{batch_size} on {num_replicas} process(es)")
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.start = batch

    def __len__(self) -> int:
        return self.n_batches - self.start

    def epoch_batches(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        total = self.n_batches * self.batch_size * self.num_replicas
        draws = rng.choice(len(self.indices), size=total, replace=True, p=self.p)
        mine = self.indices[draws[self.rank :: self.num_replicas]]
        return mine.reshape(self.n_batches, self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for row in self.epoch_batches()[self.start :]:
            yield row.tolist()


def eval_batches(indices: np.ndarray, batch_size: int, num_replicas: int, rank: int
                 ) -> list[list[int]]:
    """This rank's share of the validation chips, in order, in batches."""
    mine = np.asarray(indices, dtype=np.int64)[rank::num_replicas]
    return [mine[i : i + batch_size].tolist() for i in range(0, len(mine), batch_size)]


def channel_stats(reader: ChipReader, indices: np.ndarray, n_max: int, seed: int
                  ) -> tuple[list[float], list[float]]:
    """Per-band mean and std (0..1 scale) of up to ``n_max`` training chips."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(indices, size=min(n_max, len(indices)), replace=False))
    sums = np.zeros(3)
    sq = np.zeros(3)
    count = 0
    for i in range(0, len(pick), 256):
        x = reader.read(pick[i : i + 256]).astype(np.float64) / 255.0
        sums += x.sum((0, 2, 3))
        sq += (x**2).sum((0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std]
