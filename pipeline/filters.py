"""Chip filters of the method: clouds, low contrast, nodata. All thresholds are parameters.

:func:`drop_reason` states the rule for one chip; :func:`strip_stats` gives the
same decisions and fractions for every chip of a strip at once (tests hold the
two equal), which is what tiling runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

REASONS = ("", "nodata", "cloud", "low_contrast")  # codes of ChipStats.reason
_LUMA = (2125, 7154, 721)  # skimage rgb2gray weights × 10 000


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
    from skimage.color import rgb2gray

    return rgb2gray(np.moveaxis(rgb, 0, -1))


def low_contrast(luminance: np.ndarray, fraction: float) -> bool:
    """``skimage.exposure.is_low_contrast`` on a luminance image in [0, 1], same answer.

    The 1st/99th percentiles are bracketed from a 256-bin histogram (floor is
    monotone, so order statistics commute with it); only chips whose bracket
    straddles the threshold pay for skimage's full sort.
    """
    q = np.clip((luminance.ravel() * 255).astype(np.int64), 0, 255)
    hist = np.bincount(q, minlength=256)[None]
    answer = int(_bracketed_low_contrast(hist, luminance.size, fraction)[0])
    return _exact_low_contrast(luminance, fraction) if answer < 0 else bool(answer)


def _exact_low_contrast(luminance: np.ndarray, fraction: float) -> bool:
    from skimage.exposure import is_low_contrast

    return bool(is_low_contrast(luminance, fraction_threshold=fraction))


def _bracketed_low_contrast(hist: np.ndarray, n: int, fraction: float) -> np.ndarray:
    """Per row of 256-bin luminance histograms: 1 low contrast, 0 not, -1 undecided.

    Valid for any histogram of codes ``q`` with ``q/255 <= lum < (q+1)/255`` up to
    rounding: the slack of one code on each side covers it.
    """
    cum = np.cumsum(hist, axis=1)

    def order_stat(k: int) -> np.ndarray:  # np.searchsorted(cum, k + 1) per row
        return (cum < k + 1).sum(axis=1)

    def bracket(pct: float) -> tuple[np.ndarray, np.ndarray]:
        pos = (n - 1) * pct / 100
        lo, hi = order_stat(int(np.floor(pos))), order_stat(int(np.ceil(pos)))
        return (lo - 1) / 255, (hi + 2) / 255

    lo1, hi1 = bracket(1)
    lo99, hi99 = bracket(99)
    span = 2.0  # skimage's dtype_limits of a float image: (-1, 1)
    low = (hi99 - lo1) / span < fraction
    high = (lo99 - hi1) / span >= fraction
    return np.where(low, 1, np.where(high, 0, -1))


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


@dataclasses.dataclass(frozen=True)
class ChipStats:
    """Decisions and fractions of the chips of one strip (index = chip)."""

    reason: np.ndarray  # int8 index into REASONS; 0 = kept
    cloud: np.ndarray  # float64
    nodata: np.ndarray  # float64

    @property
    def kept(self) -> np.ndarray:
        return self.reason == 0


def strip_stats(
    rgb: np.ndarray,
    valid: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    size: int,
    params: FilterParams,
) -> ChipStats:
    """:func:`drop_reason` for every chip ``rgb[:, r:r+size, c:c+size]`` of a strip.

    The strip is cut into cells at every chip edge; per-cell counts (valid, cloud)
    and 256-bin luminance histograms are summed per chip through 2-D prefix sums,
    so each pixel is visited a few times whatever the overlap.  Low contrast is
    decided from the histograms except for the rare chips whose percentile bracket
    straddles the threshold, which get skimage's exact rule.
    """
    grid = _CellGrid(rows, cols, size, valid.shape)
    cells = grid.scan(rgb, None if valid.all() else valid, params.cloud_brightness)
    n_valid = grid.chip_sums(cells.valid)
    n_cloud = grid.chip_sums(cells.bright)
    nodata = 1.0 - n_valid / float(size * size)
    cloud = np.divide(n_cloud, n_valid, out=np.zeros(len(rows)), where=n_valid > 0)
    reason = np.zeros(len(rows), np.int8)
    reason[nodata > params.max_nodata] = 1
    reason[(reason == 0) & (cloud > params.max_cloud)] = 2
    todo = np.flatnonzero(reason == 0)
    if len(todo):
        n_r, n_c = cells.bright.shape
        hist = grid.chip_sums(cells.histograms.reshape(n_r, n_c, 256))[todo]
        answer = _bracketed_low_contrast(hist, size * size, params.low_contrast_fraction)
        if (answer < 0).any():
            lum = gray(rgb)  # the strip's, exactly as the per-chip rule sees it
            for pos in np.flatnonzero(answer < 0):
                r, c = rows[todo[pos]], cols[todo[pos]]
                chip = lum[r : r + size, c : c + size]
                answer[pos] = _exact_low_contrast(chip, params.low_contrast_fraction)
        reason[todo[answer == 1]] = 3
    return ChipStats(reason, cloud, nodata)


@dataclasses.dataclass(frozen=True)
class _Cells:
    valid: np.ndarray  # (row cells, col cells)
    bright: np.ndarray  # (row cells, col cells)
    histograms: np.ndarray  # (row cells, col cells × 256)


class _CellGrid:
    """The cells a strip falls into when cut at every chip edge, rows and columns."""

    def __init__(
        self, rows: np.ndarray, cols: np.ndarray, size: int, shape: tuple[int, ...]
    ) -> None:
        self.row_edges = np.unique(np.concatenate([rows, rows + size, [0, shape[0]]]))
        self.col_edges = np.unique(np.concatenate([cols, cols + size, [0, shape[1]]]))
        self.r0 = np.searchsorted(self.row_edges, rows)
        self.r1 = np.searchsorted(self.row_edges, rows + size)
        self.c0 = np.searchsorted(self.col_edges, cols)
        self.c1 = np.searchsorted(self.col_edges, cols + size)

    def scan(
        self, rgb: np.ndarray, valid: np.ndarray | None, threshold: int, block_rows: int = 16
    ) -> _Cells:
        """Per cell: valid pixels, cloud pixels (mean brightness > ``threshold``, in exact
        integers) and 256-bin histograms of ``floor(255 × luminance)``, also in exact
        integers (skimage's weights × 10 000), so within one code of skimage's float
        luminance, which the brackets allow for.  One pass, a few rows at a time, so the
        temporaries stay in cache.  ``valid=None``: every pixel is valid."""
        n_r, n_c = len(self.row_edges) - 1, len(self.col_edges) - 1
        width = rgb.shape[2]
        col_key = (np.repeat(np.arange(n_c), np.diff(self.col_edges)) * 256).astype(np.int32)
        hist = np.zeros((n_r, n_c * 256), np.int64)
        bright = np.zeros((n_r, width), np.int64)
        counted = np.zeros((n_r, width), np.int64)
        key = np.empty((block_rows, width), np.int32)
        term = np.empty_like(key)
        total = np.empty((block_rows, width), np.uint16)
        for i in range(n_r):
            r0, r1 = int(self.row_edges[i]), int(self.row_edges[i + 1])
            for a in range(r0, r1, block_rows):
                b = min(a + block_rows, r1)
                k, t, tot = key[: b - a], term[: b - a], total[: b - a]
                np.multiply(rgb[0, a:b], _LUMA[0], out=k, dtype=np.int32)
                for band in (1, 2):
                    np.multiply(rgb[band, a:b], _LUMA[band], out=t, dtype=np.int32)
                    k += t
                k //= 10_000
                k += col_key
                hist[i] += np.bincount(k.ravel(), minlength=n_c * 256)
                np.add(rgb[0, a:b], rgb[1, a:b], out=tot, dtype=np.uint16)
                tot += rgb[2, a:b]
                cloud = tot > 3 * threshold  # zeroed nodata pixels are never bright ...
                if valid is not None:
                    cloud &= valid[a:b]  # ... unless the threshold is negative
                    counted[i] += valid[a:b].sum(axis=0)
                bright[i] += cloud.sum(axis=0)
        if valid is None:
            counted[:] = np.diff(self.row_edges)[:, None]
        starts = self.col_edges[:-1]
        return _Cells(
            np.add.reduceat(counted, starts, axis=1),
            np.add.reduceat(bright, starts, axis=1),
            hist,
        )

    def chip_sums(self, cells: np.ndarray) -> np.ndarray:
        """Sum of the cells under each chip, from 2-D prefix sums."""
        total = np.zeros((cells.shape[0] + 1, cells.shape[1] + 1, *cells.shape[2:]), np.int64)
        total[1:, 1:] = cells.cumsum(axis=0).cumsum(axis=1)
        return (total[self.r1, self.c1] - total[self.r0, self.c1]
                - total[self.r1, self.c0] + total[self.r0, self.c0])
