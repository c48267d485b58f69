"""Finding scenes and checking that each one can be tiled with exact georeferencing."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import math
import re
import threading
from collections import OrderedDict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioIOError

from pipeline.errors import InputError
from pipeline.nodata import NodataChoice, NodataRule
from pipeline.sensors import SUPPORTED_DTYPES, SensorProfile, infer_profile

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".jp2", ".img", ".ntf", ".nitf"}
_FINGERPRINT_BYTES = 1 << 16
_METRES_PER_DEGREE = 111_320.0


def expand_scenes(patterns: list[str]) -> tuple[list[str], list[str]]:
    """Scene paths (files, folders, globs) in a stable order, and patterns that matched nothing."""
    found: list[str] = []
    missing: list[str] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir():
            hits = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES)
        elif p.exists():
            hits = [pattern]
        else:
            hits = sorted(glob.glob(pattern, recursive=True))
        if not hits:
            missing.append(pattern)
        found.extend(str(Path(h).resolve()) for h in hits)
    return list(dict.fromkeys(found)), missing


def missing_reason(pattern: str) -> str:
    """Why a ``--scenes`` pattern gave no scene."""
    p = Path(pattern)
    if p.is_dir():
        suffixes = ", ".join(sorted(RASTER_SUFFIXES))
        return f"folder holds no rasters (searched recursively for {suffixes})"
    return "no such file, folder or glob match"


def fingerprint(path: str) -> str:
    """Size plus the first and last 64 KiB: cheap on terabytes, changes when the file does."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as f:
        h.update(f.read(_FINGERPRINT_BYTES))
        if size > 2 * _FINGERPRINT_BYTES:
            f.seek(-_FINGERPRINT_BYTES, 2)
            h.update(f.read())
    return f"sha256-headtail:{h.hexdigest()}"


_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"L[COTEM]\d{7}((?:19|20)\d{2})(\d{3})"), "yj"),  # pre-collection Landsat
)


def acquisition_date(path: str, tags: dict[str, str]) -> str | None:
    """From metadata tags when present, else from the product's file name."""
    for key in ("ACQUISITION_DATE", "DATE_ACQUIRED", "ACQUISITIONDATE", "SENSING_TIME"):
        if key in tags and tags[key][:10]:
            return tags[key][:10]
    name = Path(path).name
    for pattern, kind in _DATE_PATTERNS:
        m = pattern.search(name)
        if not m:
            continue
        try:
            if kind == "ymd":
                return datetime(int(m[1]), int(m[2]), int(m[3])).date().isoformat()
            return (date(int(m[1]), 1, 1) + timedelta(days=int(m[2]) - 1)).isoformat()
        except ValueError:
            continue
    return None


_HANDLES = threading.local()
_MAX_HANDLES = 4


def open_cached(path: str) -> rasterio.DatasetReader:
    """A dataset kept open per worker thread: reopening would drop GDAL's block cache,
    and neighbouring chip strips share blocks. Handles are not shared between threads."""
    cache: OrderedDict[str, rasterio.DatasetReader] = _HANDLES.__dict__.setdefault(
        "cache", OrderedDict()
    )
    if path in cache:
        cache.move_to_end(path)
        return cache[path]
    cache[path] = rasterio.open(path)
    while len(cache) > _MAX_HANDLES:
        cache.popitem(last=False)[1].close()
    return cache[path]


@dataclasses.dataclass(frozen=True)
class SceneInfo:
    """What tiling needs to know about one scene, checked once on open."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str
    transform: tuple[float, ...]  # GDAL order
    resolution: tuple[float, float]
    sensor: SensorProfile
    acquired: str | None
    fingerprint: str
    nodata: NodataRule = dataclasses.field(default_factory=NodataRule)

    def to_record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "crs_wkt": self.crs_wkt,
            "sensor": self.sensor.name,
            "resolution": list(self.resolution),
            "width": self.width,
            "height": self.height,
            "transform": list(self.transform),
            "acquired": self.acquired,
            "fingerprint": self.fingerprint,
            "nodata": self.nodata.to_dict(),
        }


def resolution_in_metres(src: rasterio.DatasetReader) -> float:
    res = abs(src.transform.e)
    if src.crs.is_geographic:
        return res * _METRES_PER_DEGREE
    return res * float(src.crs.linear_units_factor[1])


def inspect_scene(
    path: str,
    sensor: SensorProfile | None,
    profiles: list[SensorProfile],
    known_fingerprint: str | None = None,
    nodata: NodataChoice | None = None,
) -> SceneInfo:
    """Open and check one scene; any problem is an :class:`InputError` naming it.

    ``known_fingerprint`` spares re-reading the file when the caller already has it;
    ``nodata`` is the run's ``--nodata`` (None: the file's tag, else the profile's).
    """
    if not Path(path).exists():
        raise InputError(path, "file does not exist")
    if Path(path).is_dir():
        raise InputError(path, "is a folder, not a raster")
    try:
        with rasterio.open(path) as src:
            info = _check(path, src, sensor, profiles, known_fingerprint or fingerprint(path))
            rule = NodataRule.resolve(src, info.sensor.rgb, info.sensor.nodata, nodata)
            return dataclasses.replace(info, nodata=rule)
    except RasterioIOError as e:
        raise InputError(path, f"unreadable or not a raster ({_first_line(e)})") from None


def _check(
    path: str,
    src: rasterio.DatasetReader,
    sensor: SensorProfile | None,
    profiles: list[SensorProfile],
    content_fingerprint: str,
) -> SceneInfo:
    t = src.transform
    if t.is_identity and (src.gcps[0] or src.rpcs is not None):
        kind = "GCPs" if src.gcps[0] else "RPCs"
        raise InputError(
            path, f"georeferenced by {kind} only (no geotransform); "
            f"orthorectify it first (gdalwarp{' -rpc' if kind == 'RPCs' else ''})",
        )
    if src.crs is None:
        raise InputError(path, "no CRS")
    if t.is_identity:
        raise InputError(path, "no geotransform")
    if t.b != 0 or t.d != 0:
        raise InputError(path, "rotated geotransform; warp it to a north-up grid first")
    dtype = src.dtypes[0]
    if dtype not in SUPPORTED_DTYPES or len(set(src.dtypes)) != 1:
        raise InputError(
            path,
            f"unsupported dtype {','.join(sorted(set(src.dtypes)))} "
            f"({', '.join(SUPPORTED_DTYPES)}, one for every band)",
        )
    res_m = resolution_in_metres(src)
    profile = sensor or infer_profile(path, src.count, dtype, res_m, profiles)
    if src.count < max(profile.rgb):
        raise InputError(
            path, f"{src.count} bands, sensor {profile.name} needs band {max(profile.rgb)}"
        )
    if src.count not in profile.band_counts:
        counts = " or ".join(map(str, profile.band_counts))
        raise InputError(path, f"{src.count} bands, sensor {profile.name} has {counts}")
    if not profile.accepts(dtype):
        raise InputError(path, f"dtype {dtype}, sensor {profile.name} expects {profile.dtype}")
    if not all(math.isfinite(v) for v in t.to_gdal()):
        raise InputError(path, "non-finite geotransform")
    return SceneInfo(
        path=path,
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=dtype,
        crs_wkt=src.crs.to_wkt(),
        transform=tuple(t.to_gdal()),
        resolution=(abs(t.a), abs(t.e)),
        sensor=profile,
        acquired=acquisition_date(path, src.tags()),
        fingerprint=content_fingerprint,
    )


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
