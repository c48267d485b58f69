"""WGS84 bounds of many boxes at once, equal to ``rasterio.warp.transform_bounds`` per box.

GDAL's ``OCTTransformBounds`` densifies each edge with ``densify_pts`` points,
transforms the ring and takes its extremes.  The same rings for every box go
through one ``rasterio.warp.transform`` call; boxes where GDAL takes another
path (across the antimeridian, near a pole, anything non-finite) are handed to
``transform_bounds`` itself.  Tests hold both equal bit for bit.
"""

from __future__ import annotations

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform, transform_bounds

WGS84 = CRS.from_epsg(4326)
DENSIFY_PTS = 21
_POLAR_LAT = 89.0


def bounds_wgs84(crs: CRS, boxes: np.ndarray, densify_pts: int = DENSIFY_PTS) -> np.ndarray:
    """(n, 4) west, south, east, north in ``crs`` → (n, 4) in WGS84 (lon/lat)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0, 4))
    west, south, east, north = (boxes[:, i : i + 1] for i in range(4))
    side = densify_pts + 1
    step = np.arange(side, dtype=np.float64)
    dx, dy = (east - west) / side, (north - south) / side
    ones = np.ones(side)
    xs = np.concatenate([west * ones, west + step * dx, east * ones, east - step * dx], axis=1)
    ys = np.concatenate([north - step * dy, south * ones, south + step * dy, north * ones], axis=1)
    lon, lat = transform(crs, WGS84, xs.ravel(), ys.ravel())
    lon = np.asarray(lon).reshape(xs.shape)
    lat = np.asarray(lat).reshape(xs.shape)
    out = np.stack([lon.min(1), lat.min(1), lon.max(1), lat.max(1)], axis=1)
    odd = (
        ~np.isfinite(out).all(axis=1)
        | (out[:, 2] - out[:, 0] > 180.0)
        | (np.abs(out[:, [1, 3]]) > _POLAR_LAT).any(axis=1)
    )
    for i in np.flatnonzero(odd):
        out[i] = transform_bounds(crs, WGS84, *boxes[i], densify_pts=densify_pts)
    return out
