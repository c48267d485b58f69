"""Chip stores cut straight from a pixel grid, through the public store contract.

Tests and benchmarks of the label stage use these to place chips exactly
where a case needs them (on a UTM zone boundary, half over the ocean, south of
the equator) without the tile stage's cloud and no-data filtering.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geokr_testkit.stores import scene_record
from pipeline.store.chips import ChipBatch, ChipStore, window_rows
from pipeline.store.records import SceneRecord


@dataclasses.dataclass(frozen=True)
class GridScene:
    """A scene's grid; ``path`` names a real raster whose pixels become the chips."""

    crs_wkt: str
    transform: Affine
    width: int
    height: int
    path: str = ""

    @classmethod
    def from_raster(cls, path: str | Path) -> GridScene:
        with rasterio.open(path) as ds:
            return cls(ds.crs.to_wkt(), ds.transform, ds.width, ds.height, str(path))


def chip_windows(scene: GridScene, chip_size: int, stride: int) -> list[Window]:
    return [
        Window(c, r, chip_size, chip_size)
        for r in range(0, scene.height - chip_size + 1, stride)
        for c in range(0, scene.width - chip_size + 1, stride)
    ]


def bounds_wgs84(gts: np.ndarray, crs_wkt: str, chip_size: int) -> np.ndarray:
    """(n, 4) west, south, east, north as the tile stage writes them (``west > east``
    across ±180°); a rotated chip gets the box of its rotated outline."""
    crs = CRS.from_wkt(crs_wkt)
    out = np.empty((len(gts), 4))
    for i, gt in enumerate(gts):
        t = Affine.from_gdal(*gt)
        xs, ys = zip(*(t * (u, v) for u in (0, chip_size) for v in (0, chip_size)), strict=True)
        out[i] = transform_bounds(crs, "EPSG:4326", min(xs), min(ys), max(xs), max(ys),
                                  densify_pts=21)
    return out


def scene_batch(
    scene: GridScene, index: int, chip_size: int, windows: Sequence[Window]
) -> ChipBatch:
    n = len(windows)
    gts = np.array([window_transform(w, scene.transform).to_gdal() for w in windows]).reshape(n, 6)
    return ChipBatch(
        chips=_rgb(scene, windows, chip_size),
        chip_scene=np.full(n, index, np.int32),
        chip_window=window_rows(windows),
        chip_transform=gts,
        chip_bounds_wgs84=bounds_wgs84(gts, scene.crs_wkt, chip_size),
        chip_cloud_fraction=np.zeros(n, np.float32),
        chip_nodata_fraction=np.zeros(n, np.float32),
    )


def _rgb(scene: GridScene, windows: Sequence[Window], chip_size: int) -> np.ndarray:
    """uint8 RGB chips (2-98 % stretch) from the raster, or zeros for a bare grid."""
    out = np.zeros((len(windows), 3, chip_size, chip_size), np.uint8)
    if not scene.path:
        return out
    with rasterio.open(scene.path) as ds:
        # 4+ bands: blue, green, red, NIR stacks (Landsat/Gaofen order); 3 bands: RGB
        bands = [3, 2, 1] if ds.count >= 4 else [1, 2, 3] if ds.count == 3 else [1, 1, 1]
        full = ds.read(bands, masked=True).astype(np.float32)
    lo = np.array([np.percentile(b.compressed(), 2) for b in full])[:, None, None]
    hi = np.array([np.percentile(b.compressed(), 98) for b in full])[:, None, None]
    img = np.clip((full.filled(0) - lo) / np.maximum(hi - lo, 1e-6) * 255, 0, 255)
    for i, w in enumerate(windows):
        r, c = int(w.row_off), int(w.col_off)
        out[i] = img[:, r : r + chip_size, c : c + chip_size].astype(np.uint8)
    return out


def add_grid_scenes(
    store: ChipStore, scenes: Sequence[GridScene], chip_size: int, stride: int | None = None,
    windows: Sequence[Sequence[Window]] | None = None,
) -> ChipStore:
    """Append every chip of ``scenes`` (or the given windows of each) and commit."""
    writer = store.writer()
    records: list[SceneRecord] = []
    for k, scene in enumerate(scenes):
        wins = windows[k] if windows is not None else chip_windows(
            scene, chip_size, stride or chip_size
        )
        index = len(store.scenes) + k
        writer.append(scene_batch(scene, index, chip_size, wins))
        records.append(scene_record(
            index, scene.path or f"grid-{index}", len(wins), f"grid-{index}", scene.crs_wkt,
            (scene.transform.a, -scene.transform.e), sensor="grid",
        ))
    store.commit(writer.flush(), scenes=records)
    return store


def grid_store(
    path: str | Path, scenes: Sequence[GridScene], chip_size: int, stride: int | None = None,
    windows: Sequence[Sequence[Window]] | None = None,
) -> ChipStore:
    """A new store holding the chips of ``scenes``."""
    store = ChipStore.create(path, chip_size, shard_chips=64)
    return add_grid_scenes(store, scenes, chip_size, stride, windows)


def utm_wkt(zone: int, south: bool = False) -> str:
    return CRS.from_epsg((32700 if south else 32600) + zone).to_wkt()
