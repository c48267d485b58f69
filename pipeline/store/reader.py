"""The store as training reads it: opened once, in one call.

:func:`open_for_training` checks the store, picks and checks the label set, reads
the split inputs and the fingerprint, and chooses how chips are read (direct shard
reads where the store has the layout :mod:`pipeline.store.chips` writes, else
concurrent zarr requests).  The :class:`ChipReader` it returns opens its files
lazily once per process, so it travels to data-loader workers as a path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from pipeline.errors import InputError
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet, LabelView, label_names
from pipeline.store.shards import ShardReader, open_shards


class ChipReader:
    """Random batch reads of ``chips``: direct shard reads (``pread`` + Blosc) or, for
    another layout, concurrent zarr requests, never zarr's slow orthogonal selection."""

    def __init__(self, store_path: str | Path, direct: bool = True) -> None:
        self.store_path = str(store_path)
        self.direct = direct
        self._array: zarr.Array | None = None
        self._shards: ShardReader | None = None
        self._pid = -1

    def _open(self) -> None:
        if self._pid == os.getpid():
            return
        self._shards = open_shards(Path(self.store_path)) if self.direct else None
        self._array = None if self._shards else ChipStore.open(self.store_path).array("chips")
        self._pid = os.getpid()

    @property
    def uses_shards(self) -> bool:
        self._open()
        return self._shards is not None

    def read(self, indices: np.ndarray) -> np.ndarray:
        self._open()
        unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        data = self._shards.read(unique) if self._shards else self._read_zarr(unique)
        return data[inverse]

    def _read_zarr(self, unique: np.ndarray) -> np.ndarray:
        assert self._array is not None
        chips = self._array._async_array

        async def fetch() -> list[Any]:
            return await asyncio.gather(*(chips.getitem(slice(i, i + 1)) for i in unique.tolist()))

        return np.concatenate([np.asarray(c) for c in sync(fetch())])

    def __getstate__(self) -> dict[str, Any]:
        return {"store_path": self.store_path, "direct": self.direct, "_array": None,
                "_shards": None, "_pid": -1}


@dataclasses.dataclass(frozen=True)
class TrainingStore:
    """What training needs from one store, read once."""

    path: Path
    chip_size: int
    n_stored: int  # committed chips of the store
    labels: LabelView | None
    chip_scene: np.ndarray  # (n_chips,) the split inputs, up to the usable chips
    chip_window: np.ndarray  # (n_chips, 4) row_off, col_off, height, width
    fingerprint: str
    reader: ChipReader

    @property
    def n_chips(self) -> int:
        """Chips training may use: the label set's commit point, else the store's."""
        return len(self.chip_scene)


def open_for_training(
    path: str | Path, choose: Callable[[list[str]], str | None] = lambda names: None
) -> TrainingStore:
    """Open ``path`` once for training; ``choose(label set names)`` names the set to use
    (or None, for none) and raises :class:`InputError` when it cannot."""
    store = ChipStore.open(path)
    if store.n_chips == 0:
        raise InputError(store.path, "store holds no chips (run geokr-etl tile first)")
    names = label_names(store)
    name = choose(names)
    labels = LabelSet.open(store, name, names).view(store.n_chips) if name else None
    n = labels.n_chips if labels else store.n_chips
    return TrainingStore(
        store.path, store.chip_size, store.n_chips, labels,
        store.read("chip_scene", slice(0, n)), store.read("chip_window", slice(0, n)),
        store_fingerprint(store, labels), ChipReader(store.path),
    )


def store_fingerprint(store: ChipStore, labels: LabelView | None) -> str:
    """Hash of what defines the training data: scenes, chip count, label set and classes."""
    doc: dict[str, Any] = {
        "scenes": [s.key for s in store.scenes],
        "chip_size": store.chip_size,
        "n_chips": store.n_chips if labels is None else labels.n_chips,
    }
    if labels is not None:  # keys as before, so label-set fingerprints stay the same
        doc.update(labels=labels.name, classes=labels.classes,
                   label_parameters=labels.attrs.get("parameters"))
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
