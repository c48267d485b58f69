"""Vectorised land-cover lookup: class areas for many chips of one scene at once.

What is computed is, per chip, nearest-neighbour resampling of the land cover
onto the chip's own pixel grid followed by counting (the definition the tests
check against ``rasterio.warp.reproject``), without ever building per-chip
rasters:

* chip pixel centres are mapped into each covering tile's pixel grid;
* that map is exact pyproj on a 3 x 3 grid of control points per chip, fitted by
  an affine per chip and checked against the control points (a chip is a few
  km, where any map projection is affine to far below a pixel); a chip whose
  fit is off falls back to pyproj at every sample;
* without rotation between the grids (the common case: a chip under one tile
  of its own UTM zone, or of the same projection), rows and columns map
  independently, and areas come exactly from run lengths, at a cost per
  land-cover pixel rather than per chip pixel;
* otherwise (rotation, or several tiles under one chip) classes are sampled at
  chip pixel centres, or at the centres of ``step`` x ``step`` pixel blocks
  weighted by their area when the land cover is much coarser than the chip;
* each tile is read once per batch of chips, only in the window the samples
  touch, and turned into class indices once; a sample takes its class from the
  first tile with data there, so a chip straddling tiles, UTM zones or
  hemispheres gets pixels from all of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.windows import Window

from pipeline.errors import InputError
from pipeline.landcover.legend import UNKNOWN
from pipeline.landcover.tiles import TileRecord

FIT_TOLERANCE_PX = 0.01  # largest affine-fit error at the control points, in tile pixels
SEPARABLE_PX = 0.001  # cross terms below this over a chip: rows and columns map independently
BATCH_CHIPS = 128
MISSING = -3  # int8 class value: no tile has data at this sample (yet)
_CONTROL = np.array([0.0, 0.5, 1.0])



@dataclasses.dataclass
class SceneJob:
    """Chips of one scene (a contiguous run of the store) and the tiles under them."""

    chip_ids: np.ndarray  # (n,) store indices
    transforms: np.ndarray  # (n, 6) GDAL geotransforms in the scene CRS
    crs_wkt: str
    chip_size: int
    tiles: list[TileRecord]
    pair_chip: np.ndarray  # (p,) positions into chip_ids
    pair_tile: np.ndarray  # (p,) positions into tiles
    lut: np.ndarray  # code → class index / NOT_COUNTED / UNKNOWN
    n_classes: int
    oversample: int = 8  # samples per land-cover pixel width, at least
    step: int | None = None  # fixed sampling step in chip pixels (None: from oversample)
    nodata: tuple[int, ...] = ()  # legend no-data codes: another tile may have data there


@dataclasses.dataclass
class SceneCounts:
    """Class areas in chip pixels; ``labeled`` is their sum, of ``area`` per chip."""

    chip_ids: np.ndarray
    counts: np.ndarray  # (n, K) float64
    labeled: np.ndarray  # (n,) float64
    area: float
    tile_chips: Counter[str]
    step: int


def sample_axis(chip_size: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Block centres (chip pixel units) and block widths along one chip axis."""
    starts = np.arange(0, chip_size, step, dtype=np.float64)
    ends = np.minimum(starts + step, chip_size)
    return (starts + ends) / 2.0, ends - starts


def count_scene(job: SceneJob) -> SceneCounts:
    """Class areas for every chip of ``job`` (the dask task of ``geokr-etl label``)."""
    n = len(job.chip_ids)
    counts = np.zeros((n, job.n_classes), np.float64)
    used: Counter[str] = Counter()
    step = job.step or auto_step(job)
    table = class_table(job.lut, job.nodata)
    readers = _Readers()
    try:
        for lo in range(0, n, BATCH_CHIPS):
            hi = min(lo + BATCH_CHIPS, n)
            counts[lo:hi] = _batch_counts(job, lo, hi, step, table, readers, used)
    finally:
        readers.close()
    return SceneCounts(job.chip_ids, counts, counts.sum(1), float(job.chip_size**2), used, step)


def class_table(lut: np.ndarray, nodata: Sequence[int]) -> np.ndarray:
    """code → int8 class index, NOT_COUNTED, UNKNOWN or MISSING (no data: ask the next tile)."""
    table = lut.astype(np.int8)
    for v in nodata:
        if 0 <= v < len(table):
            table[v] = MISSING
    return table


def _batch_counts(
    job: SceneJob, lo: int, hi: int, step: int, table: np.ndarray, readers: _Readers,
    used: Counter[str],
) -> np.ndarray:
    """(m, K) class areas of chips ``[lo, hi)``.

    A chip under one tile without rotation is counted exactly from run lengths;
    the others (several tiles, rotation, exact transforms) through samples that
    take their class from the first tile with data.
    """
    m, size = hi - lo, job.chip_size
    sel = (job.pair_chip >= lo) & (job.pair_chip < hi)
    pc, pt = job.pair_chip[sel] - lo, job.pair_tile[sel]
    multi = np.bincount(pc, minlength=m) > 1
    pos, _ = sample_axis(size, step)
    counts = np.zeros((m, job.n_classes), np.float64)
    samples: np.ndarray | None = None  # only chips that need sampling use it
    sampled = np.zeros(m, bool)
    for t in np.unique(pt):
        local = pc[pt == t]
        tile = job.tiles[int(t)]
        grid = TileGrid.fit(job.transforms[local + lo], job.crs_wkt, tile, size, pos)
        win = grid.window(tile)
        if win is None:
            continue
        padded = _read_classes(readers.get(tile.path), tile, win, table, job.nodata)
        used[tile.path] += len(local)
        runs = grid.separable & ~multi[local]
        if runs.any():
            counts[local[runs]] = grid.run_counts(padded, win, runs, job.n_classes)
        rest = np.flatnonzero(~runs)
        if rest.size:
            if samples is None:
                samples = np.full((m, len(pos), len(pos)), MISSING, np.int8)
            vals = grid.sample(padded, win, rest)
            cur = samples[local[rest]]
            samples[local[rest]] = np.where(cur == MISSING, vals, cur)
            sampled[local[rest]] = True
    if samples is not None:
        idx = np.flatnonzero(sampled)
        counts[idx] = count_classes(samples[idx], job.n_classes, size, step)
    return counts


@dataclasses.dataclass
class TileGrid:
    """How the pixels of some chips fall into one tile's pixel grid."""

    coef: np.ndarray  # (m, 2, 3) affine chip pixel (u, v) → tile (col, row)
    size: int  # chip size in pixels
    pos: np.ndarray  # (nb,) sample positions along each chip axis (sampled path)
    exact: dict[int, tuple[np.ndarray, np.ndarray]]  # chips whose affine fit is off

    @classmethod
    def fit(
        cls, transforms: np.ndarray, crs_wkt: str, tile: TileRecord, size: int, pos: np.ndarray
    ) -> TileGrid:
        coef, bad = fit_pixel_affine(transforms, crs_wkt, tile, float(size))
        exact = {
            int(i): _exact_pixels(transforms[i], crs_wkt, tile, pos) for i in np.flatnonzero(bad)
        }
        return cls(coef, size, pos, exact)

    @property
    def separable(self) -> np.ndarray:
        """Chips whose rows and columns map independently (no rotation between grids)."""
        cross = np.maximum(np.abs(self.coef[:, 0, 2]), np.abs(self.coef[:, 1, 1])) * self.size
        ok = cross < SEPARABLE_PX
        ok[list(self.exact)] = False
        return ok

    def window(self, tile: TileRecord) -> Window | None:
        """Tile pixels any chip pixel centre touches, clipped to the tile; None if none."""
        ends = np.array([0.5, self.size - 0.5])
        u, v = (a.ravel() for a in np.meshgrid(ends, ends))
        c = self.coef
        cols = [(c[:, 0, :1] + c[:, 0, 1:2] * u + c[:, 0, 2:3] * v).ravel()]
        rows = [(c[:, 1, :1] + c[:, 1, 1:2] * u + c[:, 1, 2:3] * v).ravel()]
        for ec, er in self.exact.values():
            cols.append(ec.ravel())
            rows.append(er.ravel())
        allc, allr = np.concatenate(cols), np.concatenate(rows)
        ok = np.isfinite(allc) & np.isfinite(allr)
        if not ok.any():
            return None
        c0 = max(0, int(np.floor(allc[ok].min())))
        c1 = min(tile.width, int(np.floor(allc[ok].max())) + 1)
        r0 = max(0, int(np.floor(allr[ok].min())))
        r1 = min(tile.height, int(np.floor(allr[ok].max())) + 1)
        return Window(c0, r0, c1 - c0, r1 - r0) if c1 > c0 and r1 > r0 else None

    def _shifted(self, which: np.ndarray, win: Window) -> np.ndarray:
        c = self.coef[which].copy()
        c[:, 0, 0] += 1 - win.col_off  # into padded-window pixels (border cell 0)
        c[:, 1, 0] += 1 - win.row_off
        return c

    def run_counts(
        self, padded: np.ndarray, win: Window, which: np.ndarray, n_classes: int
    ) -> np.ndarray:
        """Exact nearest-neighbour class areas of separable chips, from run lengths.

        Each chip pixel column maps to one tile column (and rows likewise), so
        the area of tile pixel (i, j) on the chip is ``rows_i * cols_j``: the
        work is per tile pixel under the chip, not per chip pixel.
        """
        c = self._shifted(which, win)
        h, w = int(win.height), int(win.width)
        p = np.arange(self.size) + 0.5
        mid = self.size / 2.0
        ci = _cell(c[:, 0, :1] + c[:, 0, 1:2] * p + c[:, 0, 2:3] * mid, w)
        ri = _cell(c[:, 1, :1] + c[:, 1, 2:3] * p + c[:, 1, 1:2] * mid, h)
        width = w + 2
        nc, clo = _run_lengths(ci)
        nr, rlo = _run_lengths(ri)
        if nr.shape[1] * nc.shape[1] * 2 > self.size**2:  # little to gain: index every pixel
            vals = padded.ravel().take(ri[:, :, None] * width + ci[:, None, :])
            return count_classes(vals, n_classes, self.size, 1)
        cc = np.minimum(clo[:, None] + np.arange(nc.shape[1]), w + 1)
        rr = np.minimum(rlo[:, None] + np.arange(nr.shape[1]), h + 1)
        vals = padded.ravel().take(rr[:, :, None] * width + cc[:, None, :])
        weights = nr[:, :, None] * nc[:, None, :]
        return _weighted_counts(vals, weights.astype(np.float64), n_classes)

    def sample(self, padded: np.ndarray, win: Window, which: np.ndarray) -> np.ndarray:
        """Class at every sample of the chips ``which`` (any rotation; exact fallbacks)."""
        r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
        c = self._shifted(which, win)
        p, pf = self.pos, self.pos.astype(np.float32)
        colf = (c[:, 0, :1] + c[:, 0, 2:3] * p).astype(np.float32)[:, :, None] + (
            c[:, 0, 1:2].astype(np.float32) * pf
        )[:, None, :]
        rowf = (c[:, 1, :1] + c[:, 1, 2:3] * p).astype(np.float32)[:, :, None] + (
            c[:, 1, 1:2].astype(np.float32) * pf
        )[:, None, :]
        for j, i in enumerate(which):
            if int(i) in self.exact:
                ec, er = self.exact[int(i)]
                colf[j], rowf[j] = ec - c0 + 1, er - r0 + 1
        idx = _cell(rowf, h)
        idx *= w + 2
        idx += _cell(colf, w)
        return padded.ravel().take(idx)


def _run_lengths(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per chip, pixels per cell from its first cell on: (m, span) counts and (m,) first cell."""
    lo = cells.min(axis=1)
    rel = cells - lo[:, None]
    span = int(rel.max()) + 1
    flat = (np.arange(len(cells))[:, None] * span + rel).ravel()
    counts = np.bincount(flat, minlength=len(cells) * span).reshape(len(cells), span)
    return counts, lo


def _weighted_counts(vals: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    m = vals.shape[0]
    width = n_classes + 3
    offsets = (np.arange(m, dtype=np.int32) * width + 3)[:, None, None]
    flat = np.add(vals, offsets, dtype=np.int32).ravel()
    out = np.bincount(flat, weights=weights.ravel(), minlength=m * width)
    return out.reshape(m, width)[:, 3:]


def _cell(x: np.ndarray, n: int) -> np.ndarray:
    """Padded-window cell of shifted coordinates: 0 and n + 1 are the border."""
    x = np.nan_to_num(x, nan=-1.0)
    np.clip(x, 0, n + 1, out=x)
    return x.astype(np.int32)


def fit_pixel_affine(
    transforms: np.ndarray, crs_wkt: str, tile: TileRecord, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per chip, the affine (2, 3) from chip pixel (u, v) to tile pixel (col, row).

    Returns the coefficients and a mask of chips whose fit misses a control point
    by more than FIT_TOLERANCE_PX (those need exact per-sample transforms).
    """
    u, v = (a.ravel() for a in np.meshgrid(_CONTROL * size, _CONTROL * size))
    col, row = _to_tile_pixels(transforms, crs_wkt, tile, u[None, :], v[None, :])
    design = np.stack([np.ones_like(u), u, v], axis=1)  # (9, 3)
    pinv = np.linalg.pinv(design)  # (3, 9)
    coef = np.stack([col @ pinv.T, row @ pinv.T], axis=1)  # (m, 2, 3)
    fitted = coef @ design.T  # (m, 2, 9)
    err = np.abs(fitted - np.stack([col, row], axis=1)).max(axis=(1, 2))
    return coef, ~(err <= FIT_TOLERANCE_PX)


def _to_tile_pixels(
    transforms: np.ndarray, crs_wkt: str, tile: TileRecord, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    gt = transforms
    x = gt[:, 0, None] + gt[:, 1, None] * u + gt[:, 2, None] * v
    y = gt[:, 3, None] + gt[:, 4, None] * u + gt[:, 5, None] * v
    tx, ty = transformer(crs_wkt, tile.crs_wkt).transform(x, y)
    inv = ~Affine.from_gdal(*tile.transform)
    col = inv.a * np.asarray(tx) + inv.b * np.asarray(ty) + inv.c
    row = inv.d * np.asarray(tx) + inv.e * np.asarray(ty) + inv.f
    return np.asarray(col, np.float64), np.asarray(row, np.float64)


def _exact_pixels(
    gt: np.ndarray, crs_wkt: str, tile: TileRecord, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(pos, pos)
    col, row = _to_tile_pixels(gt[None, :], crs_wkt, tile, u.ravel()[None], v.ravel()[None])
    shape = (len(pos), len(pos))
    return col.reshape(shape), row.reshape(shape)


_TRANSFORMERS: dict[tuple[str, str], Transformer] = {}


def transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    """Cached (per process) always-xy transformer between two CRSs."""
    key = (src_wkt, dst_wkt)
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = Transformer.from_crs(
            CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True
        )
    return _TRANSFORMERS[key]


def _read_classes(
    ds: Any, tile: TileRecord, win: Window, table: np.ndarray, legend_nodata: Sequence[int]
) -> np.ndarray:
    """Class indices of the window, with a one-cell MISSING border (see ``_cell``)."""
    codes, missing = land_cover_codes(ds.read(1, window=win), tile, legend_nodata)
    check_codes(codes, missing, table, tile)
    padded = np.full((int(win.height) + 2, int(win.width) + 2), MISSING, np.int8)
    if missing.any():
        inner = table[np.where(missing, 0, codes)]
        inner[missing] = MISSING
    else:
        inner = table[codes]
    padded[1:-1, 1:-1] = inner
    return padded


def land_cover_codes(
    values: np.ndarray, tile: TileRecord, legend_nodata: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Integer class codes of a land-cover window and its no-data mask.

    No data is the tile's own nodata value (negative ones such as -1, -9999 or
    -32768 included), the legend's no-data codes, and NaN. Float rasters are
    accepted when every other value is a whole number (codes stored as float);
    otherwise one line names the file and a value.
    """
    if values.dtype.kind not in "uif":
        raise InputError(tile.path, f"land cover must be integer class codes, not {values.dtype}")
    missing = np.zeros(values.shape, bool)
    if values.dtype.kind == "f":
        missing |= np.isnan(values)
    if tile.nodata is not None and math.isfinite(tile.nodata):
        missing |= values == tile.nodata
    codes = values
    if values.dtype.kind == "f":
        data = values[~missing]
        bad = ~np.isfinite(data) | (data != np.round(data)) | (np.abs(data) > 2**31)
        if bad.any():
            raise InputError(
                tile.path, f"float land cover holds a value that is not a class code "
                f"({float(data[bad][0]):g}); codes must be whole numbers",
            )
        codes = np.where(missing, 0, values).astype(np.int64)
    for v in legend_nodata:
        if v < 0:  # the others are MISSING in the class table already (class_table)
            missing |= codes == v
    return codes, missing


def no_data_codes(tile: TileRecord, legend_nodata: Sequence[int]) -> list[int]:
    """The tile's own no-data value and the legend's no-data codes."""
    codes = list(legend_nodata)
    if tile.nodata is not None and math.isfinite(tile.nodata):
        codes.append(int(tile.nodata))
    return sorted(set(codes))


def check_codes(
    codes: np.ndarray, missing: np.ndarray, table: np.ndarray, tile: TileRecord
) -> None:
    """Codes the legend does not know (negative ones included) are an error listing them.

    No-data pixels never count as unknown codes; the legend's own no-data codes are
    MISSING, not UNKNOWN, in ``table``.
    """
    if codes.dtype.kind == "u":  # the common case: no copy of the window
        found = np.flatnonzero(np.bincount(codes.ravel()))
        if tile.nodata is not None and math.isfinite(tile.nodata):
            found = found[found != tile.nodata]
        negative = found[:0]
    else:
        present = codes[~missing]
        below = present < 0
        found = np.flatnonzero(np.bincount(present[~below].astype(np.int64)))
        negative = np.unique(present[below])
    big = found[found >= len(table)]
    small = found[found < len(table)]
    unknown = np.concatenate([negative, small[table[small] == UNKNOWN], big])
    if unknown.size:
        listed = ", ".join(str(int(c)) for c in unknown[:20])
        raise InputError(tile.path, f"codes not in the legend: {listed}")


def count_classes(classes: np.ndarray, n_classes: int, chip_size: int, step: int) -> np.ndarray:
    """(m, K) class areas in chip pixels from sampled class indices."""
    m = classes.shape[0]
    width = n_classes + 3  # columns 0..2 collect MISSING, UNKNOWN and NOT_COUNTED
    offsets = (np.arange(m, dtype=np.int32) * width + 3)[:, None, None]
    flat = np.add(classes, offsets, dtype=np.int32).ravel()
    out: np.ndarray
    if step == 1:
        out = np.bincount(flat, minlength=m * width).astype(np.float64)
    else:
        _, w = sample_axis(chip_size, step)
        weight = np.broadcast_to(w[:, None] * w[None, :], classes.shape).ravel()
        out = np.bincount(flat, weights=weight, minlength=m * width)
    return out.reshape(m, width)[:, 3:]


def auto_step(job: SceneJob) -> int:
    """Sampling step for rotated or multi-tile chips.

    At least ``oversample`` samples across each land-cover pixel, and at least
    64 across the chip: a class boundary is then misplaced by at most half a
    step, i.e. 1/128 of the chip per boundary.
    """
    finest = math.inf
    for t in np.unique(job.pair_tile):
        chips = job.pair_chip[job.pair_tile == t][:64]
        coef, _ = fit_pixel_affine(
            job.transforms[chips], job.crs_wkt, job.tiles[int(t)], float(job.chip_size)
        )
        det = np.abs(coef[:, 0, 1] * coef[:, 1, 2] - coef[:, 0, 2] * coef[:, 1, 1])
        det = det[np.isfinite(det) & (det > 0)]
        if det.size:
            finest = min(finest, float(1.0 / np.sqrt(det.max())))  # chip px per tile px
    if not math.isfinite(finest):
        return 1
    return max(1, min(job.chip_size // 64, int(finest // job.oversample)))


class _Readers:
    """Open each tile once per task."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        if path not in self._open:
            self._open[path] = rasterio.open(path)
        return self._open[path]

    def close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()


def split_runs(chip_scene: np.ndarray, start: int, max_chips: int) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` runs of one scene each, at most ``max_chips`` long."""
    cuts = np.flatnonzero(np.diff(chip_scene)) + 1
    edges = [0, *cuts.tolist(), len(chip_scene)]
    runs: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(edges):
        runs.extend((start + lo, start + min(lo + max_chips, b)) for lo in range(a, b, max_chips))
    return runs
