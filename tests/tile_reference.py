"""The per-chip tiling of earlier versions, kept as the slow reference the fast path must equal.

One chip at a time: :func:`pipeline.filters.drop_reason`, one ``transform_bounds``
per chip, chips written in memory with :class:`pipeline.store.chips.ChipWriter`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from pipeline.filters import FilterParams, drop_reason, gray
from pipeline.radiometry import Stretch
from pipeline.scenes import SceneInfo
from pipeline.sensors import all_profiles
from pipeline.store.chips import ChipBatch, ChipStore
from pipeline.tiling import ScenePlan, TileParams, prepare_scene
from pipeline.windows import gdal_transform, strip_window


def read_strip(info: SceneInfo, stretch: Stretch, windows: list[Any]) -> tuple[Any, ...]:
    """The strip as a tile task sees it: stretched RGB with nodata zeroed, and validity."""
    strip = strip_window(windows)
    with rasterio.open(info.path) as src:
        data = src.read(info.sensor.rgb, window=strip)
        valid = info.nodata.valid(src, info.sensor.rgb, strip, data)
    rgb = stretch.apply(data)
    rgb[:, ~valid] = 0
    return strip, rgb, valid


def chip_decisions(
    rgb: np.ndarray, valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int,
    params: FilterParams,
) -> list[tuple[str | None, float, float]]:
    luminance = gray(rgb)
    return [
        drop_reason(rgb[:, r : r + size, c : c + size], valid[r : r + size, c : c + size],
                    params, luminance[r : r + size, c : c + size])
        for r, c in zip(rows, cols, strict=True)
    ]


def cut_part(plan: ScenePlan, windows: list[Any], params: TileParams) -> tuple[ChipBatch, Counter]:
    info = plan.info
    strip, rgb, valid = read_strip(info, plan.stretch, windows)
    scene_transform = Affine.from_gdal(*info.transform)
    crs = CRS.from_wkt(info.crs_wkt)
    kept: dict[str, list[Any]] = {k: [] for k in ChipBatch.empty(1).arrays()}
    dropped: Counter[str] = Counter()
    size = params.chip_size
    rows = np.array([int(w.row_off - strip.row_off) for w in windows])
    cols = np.array([int(w.col_off - strip.col_off) for w in windows])
    for w, r, c, (reason, cloud, nodata) in zip(
        windows, rows, cols, chip_decisions(rgb, valid, rows, cols, size, params.filters),
        strict=True,
    ):
        if reason:
            dropped[reason] += 1
            continue
        gt = gdal_transform(w, scene_transform)
        west, south = gt[0], gt[3] + gt[5] * size
        east, north = gt[0] + gt[1] * size, gt[3]
        kept["chips"].append(np.ascontiguousarray(rgb[:, r : r + size, c : c + size]))
        kept["chip_scene"].append(-1)
        kept["chip_window"].append((int(w.row_off), int(w.col_off), int(w.height), int(w.width)))
        kept["chip_transform"].append(gt)
        kept["chip_bounds_wgs84"].append(
            transform_bounds(crs, "EPSG:4326", west, south, east, north, densify_pts=21)
        )
        kept["chip_cloud_fraction"].append(cloud)
        kept["chip_nodata_fraction"].append(nodata)
    template = ChipBatch.empty(size).arrays()
    if not kept["chips"]:
        return ChipBatch.empty(size), dropped
    return ChipBatch(**{k: np.asarray(v, template[k].dtype) for k, v in kept.items()}), dropped


def reference_store(path: Path, scenes: list[str], params: TileParams, sensor: Any) -> ChipStore:
    """Chips and vectors of the scenes, the slow way, in one process (no scene table)."""
    store = ChipStore.create(path, params.chip_size, params.shard_chips)
    writer = store.writer()
    for scene_id, scene in enumerate(scenes):
        plan = prepare_scene(scene, sensor, all_profiles(), params)
        assert isinstance(plan, ScenePlan), plan
        for windows in plan.parts:
            batch, _ = cut_part(plan, windows, params)
            batch.chip_scene[:] = scene_id
            writer.append(batch)
    store.commit(writer.flush())
    return store
