"""Window maths: every pixel covered, last chip flush, transforms exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from pipeline.windows import chip_rows, gdal_transform, offsets, stride_for, strip_window


def test_paper_default_stride_is_205() -> None:
    assert stride_for(256, 0.2) == 205


@pytest.mark.parametrize("overlap", [-0.1, 1.0, 1.5])
def test_bad_overlap_is_refused(overlap: float) -> None:
    with pytest.raises(ValueError, match="overlap"):
        stride_for(256, overlap)


def test_offsets_known_case() -> None:
    # Zion scene height 1428: six regular chips and a flush one at 1172.
    assert offsets(1428, 256, 205) == [0, 205, 410, 615, 820, 1025, 1172]
    assert offsets(256, 256, 205) == [0]
    assert offsets(255, 256, 205) == []


@given(
    length=st.integers(1, 5000),
    size=st.integers(1, 600),
    overlap=st.floats(0, 0.95),
)
def test_offsets_cover_every_pixel_and_end_flush(length: int, size: int, overlap: float) -> None:
    stride = stride_for(size, overlap)
    offs = offsets(length, size, stride)
    if length < size:
        assert offs == []
        return
    assert offs[0] == 0
    assert offs[-1] == length - size
    assert all(0 <= o <= length - size for o in offs)
    assert all(b - a <= stride for a, b in itertools.pairwise(offs))
    assert all(b > a for a, b in itertools.pairwise(offs))
    covered = np.zeros(length, bool)
    for o in offs:
        covered[o : o + size] = True
    assert covered.all()


@given(
    height=st.integers(1, 3000),
    width=st.integers(1, 3000),
    size=st.sampled_from([64, 128, 256]),
    x0=st.floats(-1e6, 1e6),
    y0=st.floats(-1e7, 1e7),
    res=st.floats(0.1, 100),
)
def test_chip_transforms_equal_rasterio(
    height: int, width: int, size: int, x0: float, y0: float, res: float
) -> None:
    scene = Affine(res, 0, x0, 0, -res, y0)
    for row in chip_rows(height, width, size, 0.2):
        for w in row:
            assert gdal_transform(w, scene) == window_transform(w, scene).to_gdal()
            assert w.width == w.height == size
            assert w.row_off + size <= height and w.col_off + size <= width


def test_strip_window_spans_all_chips() -> None:
    row = [Window(0, 10, 4, 4), Window(3, 10, 4, 4), Window(6, 14, 4, 4)]
    assert strip_window(row) == Window(0, 10, 10, 8)
