"""Chip filters of the method: clouds, low contrast, nodata. All thresholds are parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage.color import rgb2gray
from skimage.exposure import is_low_contrast


@dataclasses.dataclass(frozen=True)
class FilterParams:
    cloud_brightness: int = 230  # 8-bit brightness above which a pixel is cloud
    max_cloud: float = 0.5  # drop a chip whose cloud fraction exceeds this
    max_nodata: float = 0.01  # drop a chip whose nodata fraction exceeds this
    low_contrast_fraction: float = 0.05  # skimage.exposure.is_low_contrast threshold


def nodata_fraction(valid: np.ndarray) -> float:
    return float(1.0 - valid.mean())


def cloud_fraction(rgb: np.ndarray, valid: np.ndarray, threshold: int) -> float:
    """Share of valid pixels whose mean RGB brightness exceeds ``threshold``."""
    n = int(valid.sum())
    if n == 0:
        return 0.0
    bright = rgb.mean(axis=0, dtype=np.float32) > threshold
    return float((bright & valid).sum() / n)


def gray(rgb: np.ndarray) -> np.ndarray:
    """Luminance as skimage computes it inside ``is_low_contrast``; done once per strip."""
    return rgb2gray(np.moveaxis(rgb, 0, -1))


def low_contrast(luminance: np.ndarray, fraction: float) -> bool:
    """``skimage.exposure.is_low_contrast`` on a luminance image in [0, 1], same answer.

    The 1st/99th percentiles are bracketed from a 256-bin histogram (floor is
    monotone, so order statistics commute with it); only chips whose bracket
    straddles the threshold pay for skimage's full sort.
    """
    n = luminance.size
    q = np.clip((luminance.ravel() * 255).astype(np.int64), 0, 255)
    cum = np.cumsum(np.bincount(q, minlength=256))

    def order_stat(k: int) -> int:
        return int(np.searchsorted(cum, k + 1))

    def bracket(pct: float) -> tuple[float, float]:
        pos = (n - 1) * pct / 100
        lo, hi = order_stat(int(np.floor(pos))), order_stat(int(np.ceil(pos)))
        return (lo - 1) / 255, (hi + 2) / 255  # one code of slack for rounding of lum*255

    lo1, hi1 = bracket(1)
    lo99, hi99 = bracket(99)
    span = 2.0  # skimage's dtype_limits of a float image: (-1, 1)
    if (hi99 - lo1) / span < fraction:
        return True
    if (lo99 - hi1) / span >= fraction:
        return False
    return bool(is_low_contrast(luminance, fraction_threshold=fraction))


def drop_reason(
    rgb: np.ndarray, valid: np.ndarray, params: FilterParams, luminance: np.ndarray | None = None
) -> tuple[str | None, float, float]:
    """Why a chip (3, S, S) uint8 is dropped (or None), with its cloud and nodata fractions.

    ``luminance`` (the chip's :func:`gray`) may be passed in when already computed;
    the decision is the same as ``is_low_contrast`` on the RGB chip.
    """
    nodata = nodata_fraction(valid)
    cloud = cloud_fraction(rgb, valid, params.cloud_brightness)
    if nodata > params.max_nodata:
        return "nodata", cloud, nodata
    if cloud > params.max_cloud:
        return "cloud", cloud, nodata
    lum = gray(rgb) if luminance is None else luminance
    if low_contrast(lum, params.low_contrast_fraction):
        return "low_contrast", cloud, nodata
    return None, cloud, nodata
