"""Sensor profiles: data files in ``catalogs/sensors/``, one per sensor.

A user adds a sensor by adding a YAML file; nothing here names a sensor.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.catalog import entries, load_yaml, resolve
from pipeline.errors import InputError

SUPPORTED_DTYPES = ("uint8", "uint16", "float32", "float64")
FLOAT_DTYPES = ("float32", "float64")
RESOLUTION_TOLERANCE = 0.25


def dtype_family(dtype: str) -> str:
    """A float profile fits float32 and float64 scenes alike (both are stretched the same)."""
    return "float" if dtype in FLOAT_DTYPES else dtype


@dataclasses.dataclass(frozen=True)
class SensorProfile:
    name: str
    description: str
    bands: tuple[str, ...]
    band_counts: tuple[int, ...]
    rgb: tuple[int, int, int]
    dtype: str
    bit_depth: int
    resolution_m: float | None
    nodata: float | None = None  # fill value of products that carry no nodata tag

    @classmethod
    def from_file(cls, path: Path) -> SensorProfile:
        doc = load_yaml(path)
        try:
            bands = tuple(str(b) for b in doc["bands"])
            rgb = tuple(int(i) for i in doc["rgb"])
            profile = cls(
                name=str(doc.get("name", path.stem)),
                description=str(doc.get("description", "")),
                bands=bands,
                band_counts=tuple(int(n) for n in doc.get("band_counts", [len(bands)])),
                rgb=(rgb[0], rgb[1], rgb[2]),
                dtype=str(doc["dtype"]),
                bit_depth=int(doc["bit_depth"]),
                resolution_m=_opt_float(doc.get("resolution_m")),
                nodata=_opt_float(doc.get("nodata")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(path, f"invalid sensor profile ({type(e).__name__}: {e})") from None
        if profile.dtype not in SUPPORTED_DTYPES:
            raise InputError(path, f"dtype {profile.dtype} not in {SUPPORTED_DTYPES}")
        if len(rgb) != 3 or min(rgb) < 1 or max(rgb) > min(profile.band_counts):
            raise InputError(path, "rgb must be three 1-based band numbers within the band count")
        return profile

    def matches(self, count: int, dtype: str) -> bool:
        return count in self.band_counts and self.accepts(dtype)

    def accepts(self, dtype: str) -> bool:
        return dtype_family(dtype) == dtype_family(self.dtype)

    def resolution_matches(self, resolution_m: float) -> bool:
        if self.resolution_m is None:
            return False
        return abs(resolution_m - self.resolution_m) <= RESOLUTION_TOLERANCE * self.resolution_m

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def load_profile(name_or_path: str) -> SensorProfile:
    return SensorProfile.from_file(resolve("sensors", name_or_path))


def all_profiles() -> list[SensorProfile]:
    return [SensorProfile.from_file(p) for p in entries("sensors").values()]


def infer_profile(
    path: str, count: int, dtype: str, resolution_m: float, profiles: list[SensorProfile]
) -> SensorProfile:
    """The one profile that fits without doubt, else an error asking for ``--sensor``.

    Profiles with a nominal resolution win when the scene's resolution is
    within 25 % of it; generic profiles (no resolution) are the fallback.
    """
    fitting = [p for p in profiles if p.matches(count, dtype)]
    specific = [p for p in fitting if p.resolution_matches(resolution_m)]
    generic = [p for p in fitting if p.resolution_m is None]
    for candidates in (specific, generic):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            break
    names = ", ".join(p.name for p in (specific or generic or fitting)) or "none"
    raise InputError(
        path,
        f"cannot infer the sensor ({count} bands {dtype} at {resolution_m:.2f} m; "
        f"candidates: {names}); pass --sensor",
    )
