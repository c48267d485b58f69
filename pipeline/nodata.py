"""Which pixels of a scene are nodata: one rule for the stretch sample, the mask and the filter.

GDAL semantics: a pixel is nodata when every RGB band holds the nodata value.
The value comes from the run (``--nodata VALUE|none``), else the file's own
nodata tag, else the sensor profile's ``nodata:`` (Gaofen L1 and Landsat
products fill with zeros and often carry no tag). A mask band or alpha band of
the file is honoured as well, and in a float scene a non-finite value (NaN,
±inf) in any band makes the pixel nodata: it has no place in a stretch.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

#: ``--nodata none``: no value is nodata, whatever the file's tag or the profile say.
NO_VALUE = "none"


@dataclasses.dataclass(frozen=True)
class NodataChoice:
    """The run's ``--nodata``: a value, or ``None`` for "no nodata value at all"."""

    value: float | None

    @classmethod
    def parse(cls, text: str) -> NodataChoice:
        if text.strip().lower() == NO_VALUE:
            return cls(None)
        try:
            return cls(float(text))
        except ValueError:
            raise ValueError(f"{text!r} is not a number, nan or {NO_VALUE}") from None

    def __str__(self) -> str:
        return NO_VALUE if self.value is None else f"{self.value:g}"


def format_value(value: float | None) -> str | float | None:
    """JSON-safe: NaN is written as the string "nan"."""
    if value is None or not math.isnan(value):
        return value
    return "nan"


@dataclasses.dataclass(frozen=True)
class NodataRule:
    """How one scene's nodata pixels are found, resolved once when the scene is opened."""

    value: float | None = None  # a pixel whose RGB bands all hold it is nodata
    mask_band: bool = False  # the file has a mask band or an alpha band
    source: str = "none"  # run, file, sensor or none: recorded in the scene table

    @classmethod
    def resolve(
        cls,
        src: rasterio.DatasetReader,
        bands: tuple[int, ...],
        profile_value: float | None,
        choice: NodataChoice | None,
    ) -> NodataRule:
        flags = [set(src.mask_flag_enums[b - 1]) for b in bands]
        mask_band = any(f & {MaskFlags.per_dataset, MaskFlags.alpha} for f in flags)
        if choice is not None:
            return cls(choice.value, mask_band, "run" if choice.value is not None else "none")
        if src.nodata is not None:
            return cls(float(src.nodata), mask_band, "file")
        if profile_value is not None:
            return cls(profile_value, mask_band, "sensor")
        return cls(None, mask_band, "none")

    def valid(
        self,
        src: rasterio.DatasetReader,
        bands: tuple[int, ...],
        window: Window,
        data: np.ndarray,
        strict: bool = False,
    ) -> np.ndarray:
        """(H, W) bool of valid pixels of ``data`` (the bands read in ``window``).

        ``strict``: nodata in any band already makes the pixel invalid (the
        stretch sample: a fill value must never pull a percentile).
        """
        ok = self.valid_values(data, strict)
        if self.mask_band:
            masks = src.read_masks(bands, window=window)
            ok &= (masks.min(axis=0) if strict else masks.max(axis=0)) > 0
        return ok

    def valid_values(self, data: np.ndarray, strict: bool = False) -> np.ndarray:
        ok = np.ones(data.shape[1:], bool)
        if data.dtype.kind == "f":
            ok &= np.isfinite(data).all(axis=0)
        fill = _in_dtype(self.value, data.dtype)
        if fill is not None:
            is_fill = data == fill
            ok &= ~(is_fill.any(axis=0) if strict else is_fill.all(axis=0))
        return ok

    def to_dict(self) -> dict[str, object]:
        return {"value": format_value(self.value), "source": self.source}


def _in_dtype(value: float | None, dtype: np.dtype) -> np.generic | None:
    """``value`` as a scalar of ``dtype``; None when no pixel of that dtype can hold it."""
    if value is None or math.isnan(value):
        return None  # NaN is caught by the finiteness test
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if not value.is_integer() or not info.min <= value <= info.max:
            return None
    return dtype.type(value)
