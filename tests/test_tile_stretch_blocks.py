"""The tile task's blocked lookup equals ``Stretch.apply`` on any 16-bit strip."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipeline.radiometry import Stretch
from pipeline.tiling import _stretched


@given(
    low=st.floats(0, 30_000), span=st.floats(1, 30_000), rows=st.integers(1, 150),
    block=st.integers(1, 70), seed=st.integers(0, 2**16),
)
def test_blocked_lookup_equals_apply(
    low: float, span: float, rows: int, block: int, seed: int
) -> None:
    stretch = Stretch((low, low / 2, 7.0), (low + span, low / 2 + span, 7.0 + span), (2.0, 98.0))
    data = np.random.default_rng(seed).integers(0, 65536, (3, rows, 37)).astype(np.uint16)
    np.testing.assert_array_equal(_stretched(stretch, data, block), stretch.apply(data))
    eight = data.astype(np.uint8)
    np.testing.assert_array_equal(_stretched(Stretch.identity(), eight), eight)
