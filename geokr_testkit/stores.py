"""Tiny chip stores with a label set, through the store contract, for trainer tests.

Chip colours are a mixture of per-class colours weighted by the chip's proportion
vector (plus texture noise), so a small network can learn the proportions and a
loss that goes down is a real signal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline.store.chips import ChipBatch, ChipStore
from pipeline.store.labels import LabelSet, sample_weights
from pipeline.store.records import SceneRecord

CLASS_COLOURS = np.array(
    [[30, 60, 200], [40, 160, 40], [200, 190, 120], [180, 60, 60], [120, 120, 120]],
    dtype=np.float32,
)


def scene_record(
    scene_id: int, path: str, n_chips: int, fingerprint: str, crs_wkt: str,
    resolution: tuple[float, float], sensor: str = "test",
) -> SceneRecord:
    """The scene record of a store built without the tile stage (no offset, no run)."""
    return SceneRecord(scene_id, path, n_chips, fingerprint, extra={
        "crs_wkt": crs_wkt, "sensor": sensor, "resolution": list(resolution), "acquired": None,
    })


def scene_entry(scene_id: int, n_chips: int, size: int) -> SceneRecord:
    record = scene_record(scene_id, f"/data/scene_{scene_id}.tif", n_chips,
                          f"scene-{scene_id}-{size}", "EPSG:32612", (30.0, 30.0))
    return dataclasses.replace(record, extra={**record.extra, "stretch": None})


def make_chips(
    proportions: np.ndarray, chip_size: int, rng: np.random.Generator
) -> np.ndarray:
    k = proportions.shape[1]
    colour = proportions @ CLASS_COLOURS[:k]  # (n, 3)
    noise = rng.normal(0.0, 20.0, (len(proportions), 3, chip_size, chip_size))
    chips = colour[:, :, None, None] + noise
    return np.clip(chips, 0, 255).astype(np.uint8)


def make_batch(
    scene_of_chip: np.ndarray, proportions: np.ndarray, chip_size: int, rng: np.random.Generator
) -> ChipBatch:
    n = len(scene_of_chip)
    per_row = 6
    pos = np.zeros(n, dtype=np.int64)
    for s in np.unique(scene_of_chip):
        m = scene_of_chip == s
        pos[m] = np.arange(m.sum())
    rows = (pos // per_row) * chip_size
    cols = (pos % per_row) * chip_size
    window = np.stack([rows, cols, np.full(n, chip_size), np.full(n, chip_size)], 1)
    transform = np.stack(
        [500000.0 + cols * 30.0, np.full(n, 30.0), np.zeros(n),
         4100000.0 - rows * 30.0, np.zeros(n), np.full(n, -30.0)], 1)
    bounds = np.tile(np.array([-113.0, 37.0, -112.9, 37.1]), (n, 1))
    return ChipBatch(
        chips=make_chips(proportions, chip_size, rng),
        chip_scene=scene_of_chip.astype(np.int32),
        chip_window=window.astype(np.int32),
        chip_transform=transform.astype(np.float64),
        chip_bounds_wgs84=bounds,
        chip_cloud_fraction=np.zeros(n, np.float32),
        chip_nodata_fraction=np.zeros(n, np.float32),
    )


def write_label_set(
    store: ChipStore,
    name: str,
    proportions: np.ndarray,
    valid: np.ndarray,
    n_labelled: int | None = None,
    dominant: np.ndarray | None = None,
) -> None:
    """Write ``labels/<name>`` through the label stage's own writer (class-balanced weights)."""
    n, k = proportions.shape
    props = np.where(valid[:, None], proportions, 0).astype(np.float32)
    if dominant is None:
        dominant = props.argmax(1)
    dominant = np.where(valid, dominant, -1).astype(np.int16)
    header = {
        "product": "test",
        "legend": "test",
        "classes": [[10 * (i + 1), f"class{i}"] for i in range(k)],
        "parameters": {},
        "versions": {},
    }
    labels = LabelSet.open_or_create(store, name, header)
    labels.resize(n)
    labels.write_rows(0, {
        "proportions": props,
        "labeled_fraction": valid.astype(np.float32),
        "valid": valid.astype(bool),
        "dominant": dominant,
        "sample_weight": sample_weights(dominant, valid, k),
    })
    labels.commit(n if n_labelled is None else n_labelled, {})


def build_store(
    path: Path,
    n_scenes: int = 2,
    chips_per_scene: int = 24,
    chip_size: int = 32,
    n_classes: int = 4,
    seed: int = 0,
    invalid_every: int = 7,
    label_name: str = "test",
) -> ChipStore:
    """A committed store of ``n_scenes`` scenes and one label set named ``label_name``."""
    rng = np.random.default_rng(seed)
    n = n_scenes * chips_per_scene
    scene_of_chip = np.repeat(np.arange(n_scenes), chips_per_scene)
    proportions = rng.dirichlet(np.full(n_classes, 0.5), n).astype(np.float32)
    store = ChipStore.create(path, chip_size, shard_chips=16)
    writer = store.writer()
    writer.append(make_batch(scene_of_chip, proportions, chip_size, rng))
    end = writer.flush()
    store.commit(end, scenes=[scene_entry(s, chips_per_scene, chip_size) for s in range(n_scenes)])
    valid = np.ones(n, bool)
    if invalid_every:
        valid[::invalid_every] = False
    write_label_set(store, label_name, proportions, valid)
    return store


def scene_rgb(tif: Path) -> np.ndarray:
    """(3, H, W) uint8 from a real RGB(+NIR) scene: 2-98 % stretch, BGRN read as RGB."""
    import rasterio

    with rasterio.open(tif) as ds:
        bands = [3, 2, 1] if ds.count >= 4 else [1, 2, 3]
        data = ds.read(bands, masked=True).astype(np.float64)
    out = np.zeros(data.shape, np.uint8)
    for b in range(3):
        lo, hi = np.percentile(data[b].compressed(), [2, 98])
        out[b] = np.clip((data[b].filled(lo) - lo) / max(hi - lo, 1e-9) * 255, 0, 255)
    return out


def windows_store(path: Path, rgb: np.ndarray, n_chips: int, chip_size: int,
                  rng: np.random.Generator, shard_chips: int = 16) -> ChipStore:
    """A store of ``n_chips`` random windows of one (3, H, W) image as two pseudo-scenes
    (left and right half): no georeference, no label set, and no rasterio needed (the
    benchmarks build it from an ``.npy`` where rasterio is not installed)."""
    _, h, w = rgb.shape
    rows = rng.integers(0, h - chip_size + 1, n_chips)
    cols = rng.integers(0, w - chip_size + 1, n_chips)
    scene = (cols > (w - chip_size) // 2).astype(np.int32)
    full = np.full(n_chips, chip_size)
    batch = ChipBatch(
        chips=np.stack([rgb[:, r:r + chip_size, c:c + chip_size] for r, c in zip(rows, cols,
                                                                                   strict=True)]),
        chip_scene=scene, chip_window=np.stack([rows, cols, full, full], 1).astype(np.int32),
        chip_transform=np.zeros((n_chips, 6)), chip_bounds_wgs84=np.zeros((n_chips, 4)),
        chip_cloud_fraction=np.zeros(n_chips, np.float32),
        chip_nodata_fraction=np.zeros(n_chips, np.float32),
    )
    store = ChipStore.create(path, chip_size, shard_chips)
    writer = store.writer()
    writer.append(batch)
    store.commit(writer.flush(),
                 scenes=[scene_entry(s, int((scene == s).sum()), chip_size) for s in (0, 1)])
    return store


def build_scene_store(path: Path, tif: Path, n_chips: int = 64, chip_size: int = 32,
                      seed: int = 0) -> ChipStore:
    """Random windows of one real scene and no label set: what the self-supervised
    methods must train on."""
    return windows_store(path, scene_rgb(tif), n_chips, chip_size, np.random.default_rng(seed))
