"""Software versions recorded with everything the project writes."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

_PACKAGES = (
    "geokr",
    "numpy",
    "rasterio",
    "zarr",
    "dask",
    "distributed",
    "shapely",
    "pyproj",
    "scikit-image",
    "torch",
    "torchvision",
)


def software_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import rasterio

        out["gdal"] = rasterio.__gdal_version__
    except ImportError:
        pass
    return out
