"""Tiny rasters written on the fly, so edge cases need no binary fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

DEFAULT_TRANSFORM = Affine(2.0, 0, 500_000.0, 0, -2.0, 3_000_000.0)


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str | None = "EPSG:32650",
    transform: Affine | None = DEFAULT_TRANSFORM,
    nodata: float | None = None,
    **extra: Any,
) -> Path:
    """Write (bands, H, W) ``data`` as a GeoTIFF; ``transform=None`` writes none."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        **extra,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def textured(
    bands: int, height: int, width: int, dtype: str = "uint16", seed: int = 0
) -> np.ndarray:
    """Smooth gradients plus noise: passes the low-contrast filter, stays below cloud brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    top = 1000 if dtype == "uint16" else 180
    base = (np.sin(xx / 17.0) + np.cos(yy / 23.0) + 2) / 4 * top * 0.8
    out = np.stack([base + rng.normal(0, top * 0.05, base.shape) + 10 * b for b in range(bands)])
    return np.clip(out, 1, top).astype(dtype)
