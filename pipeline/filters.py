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
    if is_low_contrast(lum, fraction_threshold=params.low_contrast_fraction):
        return "low_contrast", cloud, nodata
    return None, cloud, nodata
