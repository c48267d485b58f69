"""The Zion land-cover case: Landsat 8 scene with NLCD reprojected onto its grid.

The two rasters cover the same ground on different grids and CRSs, so the mask is
warped (nearest neighbour, never interpolating class codes) onto the scene's pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from training.evaluation.segdata import IGNORE, stretch_to_8bit

SCENE = "landsat8_zion_bgrn.tif"
LANDCOVER = "nlcd.tif"
NLCD_CLASSES = {1: "water", 2: "developed", 3: "barren", 4: "forest", 5: "shrubland",
                6: "herbaceous", 7: "cultivated", 8: "wetlands"}


def prepare_zion(zion_dir: Path, out: Path) -> tuple[Path, Path]:
    """Write out/images/zion.tif (8-bit RGB) and out/masks/zion.tif (NLCD codes, 255 nodata)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    scene_path, lc_path = zion_dir / SCENE, zion_dir / LANDCOVER
    for p in (scene_path, lc_path):
        if not p.is_file():
            raise InputError(p, "missing (expected the Zion scene and nlcd.tif side by side)")
    with rasterio.open(scene_path) as src:
        bgr = src.read([3, 2, 1])  # bands are blue, green, red, NIR
        profile, nodata = src.profile, src.nodata
    valid = (bgr != nodata).all(axis=0) if nodata is not None else np.ones(bgr.shape[1:], bool)
    rgb = stretch_to_8bit(bgr, valid)
    mask = np.full(rgb.shape[1:], IGNORE, np.uint8)
    with rasterio.open(lc_path) as src:
        reproject(rasterio.band(src, 1), mask, dst_transform=profile["transform"],
                  dst_crs=profile["crs"], dst_nodata=IGNORE, resampling=Resampling.nearest)
    mask[~valid] = IGNORE
    mask[~np.isin(mask, list(NLCD_CLASSES))] = IGNORE
    base = {"driver": "GTiff", "height": rgb.shape[1], "width": rgb.shape[2],
            "crs": profile["crs"], "transform": profile["transform"], "dtype": "uint8",
            "compress": "deflate"}
    paths = out / "images" / "zion.tif", out / "masks" / "zion.tif"
    for path, data, extra in ((paths[0], rgb, {"count": 3, "nodata": None}),
                              (paths[1], mask[None], {"count": 1, "nodata": IGNORE})):
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", **base, **extra) as dst:
            dst.write(data)
    (out / "classes.json").write_text(json.dumps({str(k): v for k, v in NLCD_CLASSES.items()}))
    return paths
