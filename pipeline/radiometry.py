"""16-bit or float to 8-bit: one percentile stretch per scene, computed once and recorded.

A per-chip stretch would make the same ground look different in neighbouring
chips; a fixed bit-depth scaling leaves most Gaofen scenes nearly black.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from pipeline.nodata import NodataRule

SAMPLE_GRID = 8
SAMPLE_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Stretch:
    """Per-band linear stretch; ``low is None`` means 8-bit pass-through."""

    low: tuple[float, ...] | None
    high: tuple[float, ...] | None
    percentiles: tuple[float, float]

    @classmethod
    def identity(cls) -> Stretch:
        return cls(None, None, (0.0, 100.0))

    def apply(self, data: np.ndarray) -> np.ndarray:
        """(bands, H, W) → uint8; 16-bit data goes through a lookup table (same values).

        Non-finite values of a float scene become 0; they are nodata and masked anyway.
        """
        if self.low is None or self.high is None:
            return data.astype(np.uint8, copy=False)
        if data.dtype == np.uint16:
            luts = self.lookup_tables()
            return np.stack([luts[b][data[b]] for b in range(len(data))])
        return self._scale(data)

    def _scale(self, data: np.ndarray) -> np.ndarray:
        assert self.low is not None and self.high is not None
        lo = np.asarray(self.low, np.float32).reshape(-1, *([1] * (data.ndim - 1)))
        hi = np.asarray(self.high, np.float32).reshape(lo.shape)
        scaled = (data.astype(np.float32) - lo) * (255.0 / np.maximum(hi - lo, 1e-6))
        if data.dtype.kind == "f":
            scaled = np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - few scenes in flight per worker
    def lookup_tables(self) -> np.ndarray:
        codes = np.broadcast_to(np.arange(65536, dtype=np.uint16), (len(self.low or ()), 65536))
        return self._scale(codes)

    def to_dict(self) -> dict[str, Any]:
        if self.low is None:
            return {"method": "none"}
        return {
            "method": "percentile",
            "percentiles": list(self.percentiles),
            "low": list(self.low),
            "high": list(self.high or ()),
        }


def sample_windows(height: int, width: int) -> list[Window]:
    """A regular grid of small windows: touches few blocks even on 30 000² scenes."""
    size_r, size_c = min(SAMPLE_SIZE, height), min(SAMPLE_SIZE, width)
    rows = np.unique(np.linspace(0, height - size_r, SAMPLE_GRID).astype(int))
    cols = np.unique(np.linspace(0, width - size_c, SAMPLE_GRID).astype(int))
    return [Window(int(c), int(r), size_c, size_r) for r in rows for c in cols]


def sample_pixels(
    src: rasterio.DatasetReader, bands: tuple[int, ...], nodata: NodataRule | None = None
) -> np.ndarray:
    """Sample pixels valid in every band as (n, bands), by the scene's nodata rule."""
    rule = nodata or NodataRule.resolve(src, bands, None, None)
    chunks = []
    for w in sample_windows(src.height, src.width):
        data = src.read(bands, window=w)
        chunks.append(data[:, rule.valid(src, bands, w, data, strict=True)].T)
    return np.concatenate(chunks) if chunks else np.zeros((0, len(bands)))


def compute_stretch(
    src: rasterio.DatasetReader,
    bands: tuple[int, ...],
    percentiles: tuple[float, float],
    nodata: NodataRule | None = None,
) -> Stretch | None:
    """The scene's stretch, or None when the sample holds no valid pixel.

    Without ``nodata`` the file's own tag and mask decide, as GDAL would.
    """
    pixels = sample_pixels(src, bands, nodata)
    if len(pixels) == 0:
        return None
    if src.dtypes[0] == "uint8":
        return Stretch.identity()
    lo = np.percentile(pixels, percentiles[0], axis=0)
    hi = np.percentile(pixels, percentiles[1], axis=0)
    return Stretch(tuple(map(float, lo)), tuple(map(float, hi)), percentiles)
