"""The slow, obviously-right definition: GDAL nearest-neighbour warp per chip.

Used by the tests as the ground truth for :mod:`pipeline.landcover.lookup` and
by ``geokr-etl stats`` to draw a chip's land-cover map (Fig. 5).  Each tile is
read only in the window under the chip, so even a 36000 px WorldCover tile
costs a few kilobytes per chip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from pipeline.landcover.legend import NOT_COUNTED
from pipeline.landcover.lookup import no_data_codes
from pipeline.landcover.tiles import TileRecord

MISSING = -1


def chip_codes(
    tiles: Sequence[TileRecord], gt: Sequence[float], crs_wkt: str, size: int,
    legend_nodata: Sequence[int] = (),
) -> np.ndarray:
    """(size, size) land-cover codes on the chip grid; MISSING where no tile has data."""
    dst_t = Affine.from_gdal(*gt)
    dst_crs = CRS.from_wkt(crs_wkt)
    xs, ys = zip(*(dst_t * (u, v) for u in (0, size) for v in (0, size)), strict=True)
    bounds = (min(xs), min(ys), max(xs), max(ys))  # all four corners: chips may be rotated
    out = np.full((size, size), MISSING, np.int32)
    for tile in tiles:
        part = _warp_tile(tile, bounds, dst_t, dst_crs, size)
        if part is None:
            continue
        for v in no_data_codes(tile, legend_nodata):
            part[part == v] = MISSING
        fill = (out == MISSING) & (part != MISSING)
        out[fill] = part[fill]
    return out


def _warp_tile(
    tile: TileRecord, bounds: tuple[float, float, float, float], dst_t: Affine, dst_crs: CRS,
    size: int,
) -> np.ndarray | None:
    src_crs = CRS.from_wkt(tile.crs_wkt)
    src_t = Affine.from_gdal(*tile.transform)
    tb = transform_bounds(dst_crs, src_crs, *bounds, densify_pts=21)
    win = from_bounds(*tb, transform=src_t).round_offsets().round_lengths()
    win = Window(win.col_off - 2, win.row_off - 2, win.width + 4, win.height + 4)
    full = Window(0, 0, tile.width, tile.height)
    try:
        win = win.intersection(full)
    except rasterio.errors.WindowError:
        return None
    if win.width <= 0 or win.height <= 0:
        return None
    with rasterio.open(tile.path) as ds:
        src = ds.read(1, window=win).astype(np.int32)
    dst = np.full((size, size), MISSING, np.int32)
    reproject(
        src, dst, src_transform=ds.window_transform(win), src_crs=src_crs,
        dst_transform=dst_t, dst_crs=dst_crs, resampling=Resampling.nearest,
        src_nodata=MISSING, dst_nodata=MISSING, tolerance=0.0,  # exact transform per pixel
    )
    return dst


def reference_counts(codes: np.ndarray, lut: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) pixel counts per class of one chip's code raster."""
    table = np.concatenate([[NOT_COUNTED], lut]).astype(np.int64)
    cls = table[codes.ravel() + 1]
    return np.bincount(cls[cls >= 0], minlength=n_classes).astype(np.float64)


def reference_labels(
    tiles: Sequence[TileRecord], gts: np.ndarray, crs_wkts: Sequence[str], size: int,
    lut: np.ndarray, n_classes: int, legend_nodata: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(proportions (n, K), labeled fraction (n,)) of chips by the slow definition."""
    props = np.zeros((len(gts), n_classes))
    frac = np.zeros(len(gts))
    for i, (gt, wkt) in enumerate(zip(gts, crs_wkts, strict=True)):
        counts = reference_counts(chip_codes(tiles, gt, wkt, size, legend_nodata), lut, n_classes)
        total = counts.sum()
        frac[i] = total / size**2
        props[i] = counts / total if total else 0.0
    return props, frac
