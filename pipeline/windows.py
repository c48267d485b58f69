"""Chip window maths: pure functions, no I/O.

The last chip of each row and column sits flush with the scene edge, so the
whole scene is covered and no chip reads past it (the reference code of the
method pads and mis-georeferences its edge chips instead).
"""

from __future__ import annotations

from affine import Affine
from rasterio.windows import Window


def stride_for(size: int, overlap: float) -> int:
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return max(1, round(size * (1 - overlap)))


def offsets(length: int, size: int, stride: int) -> list[int]:
    """Start offsets along one axis; empty when the axis is shorter than a chip."""
    if length < size:
        return []
    out = list(range(0, length - size + 1, stride))
    if out[-1] != length - size:
        out.append(length - size)
    return out


def chip_rows(height: int, width: int, size: int, overlap: float) -> list[list[Window]]:
    """Chip windows grouped by chip row, in row-major order."""
    stride = stride_for(size, overlap)
    cols = offsets(width, size, stride)
    return [[Window(c, r, size, size) for c in cols] for r in offsets(height, size, stride)]


def gdal_transform(window: Window, scene_transform: Affine) -> tuple[float, ...]:
    """The chip's GDAL geotransform (x0, xres, xskew, y0, yskew, yres)."""
    shift = Affine.translation(float(window.col_off), float(window.row_off))
    return tuple((scene_transform @ shift).to_gdal())


def strip_window(row: list[Window]) -> Window:
    """The smallest window holding every chip of a run of chips."""
    r0 = min(int(w.row_off) for w in row)
    c0 = min(int(w.col_off) for w in row)
    r1 = max(int(w.row_off + w.height) for w in row)
    c1 = max(int(w.col_off + w.width) for w in row)
    return Window(c0, r0, c1 - c0, r1 - r0)
