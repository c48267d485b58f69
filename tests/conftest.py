"""Shared fixtures: the real sample data lives in ``../shared/data`` beside the repo."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def store_opens(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path ``ChipStore.open`` is called with from now on, in order."""
    from pipeline.store.chips import ChipStore

    opened: list[Path] = []
    real = ChipStore.open.__func__  # type: ignore[attr-defined]

    def counting(cls: type[ChipStore], path: str | Path, mode: str = "r") -> ChipStore:
        opened.append(Path(path))
        return real(cls, path, mode)  # type: ignore[no-any-return]

    monkeypatch.setattr(ChipStore, "open", classmethod(counting))
    return opened


@pytest.fixture(scope="session")
def zion_grid_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 px chips of the real Zion scene, cut on its pixel grid (label-stage tests)."""
    from geokr_testkit.grid import GridScene, grid_store

    path = tmp_path_factory.mktemp("zion") / "chips.zarr"
    grid_store(path, [GridScene.from_raster(shared_data / "zion" / "landsat8_zion_bgrn.tif")], 64)
    return path


@pytest.fixture
def zion_chip_store(zion_grid_store: Path, tmp_path: Path) -> Path:
    """A copy of :func:`zion_grid_store` the test may write into."""
    path = tmp_path / "chips.zarr"
    shutil.copytree(zion_grid_store, path)
    return path
