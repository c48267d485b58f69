"""Shared fixtures: the real sample data lives in ``../shared/data`` beside the repo."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask.distributed import Client, LocalCluster
from hypothesis import settings

# Shared 2-core machines: a per-example deadline would only measure the neighbours' load.
settings.register_profile("geokr", deadline=None)
settings.load_profile("geokr")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GEOKR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.fail(f"real sample data not found at {SHARED_DATA} (set GEOKR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Client]:
    """One real multi-process cluster for the whole session (tasks really get pickled)."""
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine run several times faster on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
