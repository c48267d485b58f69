"""``geokr-train`` on a store tiled and labelled from the real Zion scene in ../shared/data.

The Zion scene is one scene, so this also exercises the single-scene fallback:
a spatial block split with the chips straddling the cut dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from dask.distributed import Client

from pipeline.landcover.run import LabelConfig, run_label
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet
from pipeline.tiling import TileParams, run_tile
from training.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def zion_store(tmp_path_factory: pytest.TempPathFactory, shared_data: Path,
               dask_client: Client) -> Path:
    path = tmp_path_factory.mktemp("zion") / "zion.zarr"
    run_tile(path, [str(shared_data / "zion" / "landsat8_zion_bgrn.tif")], dask_client,
             TileParams(chip_size=64, overlap=0.0), progress=False)
    run_label(LabelConfig(store=path, sources=[str(shared_data / "zion" / "nlcd.tif")],
                          legend="nlcd8", name="nlcd8", workers=0, progress=False))
    return path


def test_trains_on_real_store(zion_store: Path, tmp_path: Path) -> None:
    store = ChipStore.open(zion_store)
    labels = LabelSet.open(store, "nlcd8").view(store.n_chips)
    assert store.n_chips > 100 and labels.valid.sum() > 50
    out = tmp_path / "run"
    res = CliRunner().invoke(main, [
        "--store", str(zion_store), "--out", str(out), "--arch", "mobilenet_v3_small",
        "--batch-size", "16", "--precision", "fp32", "--workers", "1", "--device", "cpu",
        "--max-steps", "6", "--teacher-interval", "3", "--log-every", "2"])
    assert res.exit_code == 0, res.output
    assert "spatial-block split: one scene only" in res.output
    card = json.loads((out / "model_card.json").read_text())
    assert card["classes"] == [list(c) for c in labels.classes]
    assert card["split"]["mode"] == "spatial-block"
    assert card["split"]["n_train"] + card["split"]["n_val"] <= int(labels.valid.sum())
    assert card["training_state"]["step"] == 6
    assert all(np.isfinite(card["metrics"][k]) for k in ("val_ls", "val_lt", "val_teacher_ls"))
