"""Shared fixtures: the real sample data lives in ``../shared/data`` beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GEOKR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.fail(f"real sample data not found at {SHARED_DATA} (set GEOKR_SHARED_DATA)")
    return SHARED_DATA
