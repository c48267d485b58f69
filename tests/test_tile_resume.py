"""A tile job really killed (SIGKILL, whole process group) and rerun gives the same store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from geokr_testkit.rasters import textured, write_raster
from pipeline.store.chips import ChipStore, chip_specs

N_GENERATED = 16


def _tile_cmd(store: Path, scenes: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "tile",
        "--store",
        str(store),
        "--sensor",
        "bgrn",
        "--workers",
        "1",
        "--commit-interval",
        "0",
        "--no-progress",
        *[arg for s in scenes for arg in ("--scenes", s)],
    ]


def _committed(store: Path) -> int:
    try:
        doc = json.loads((store / "zarr.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(doc.get("attributes", {}).get("geokr", {}).get("n_chips", 0))


def _snapshot(path: Path) -> tuple[dict[str, np.ndarray], list[dict[str, object]]]:
    store = ChipStore.open(path)
    arrays = {name: store.read(name) for name in chip_specs(store.chip_size)}
    scenes = [{k: v for k, v in s.items() if k != "run"} for s in store.scenes]
    return arrays, scenes


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_chips(tmp_path: Path, shared_data: Path) -> None:
    scenes = [str(shared_data / "zion" / "landsat8_zion_bgrn.tif")] + [
        str(write_raster(tmp_path / "in" / f"scene{i:02d}.tif", textured(4, 700, 600, seed=i)))
        for i in range(N_GENERATED)
    ]
    reference = tmp_path / "reference.zarr"
    subprocess.run(_tile_cmd(reference, scenes), check=True, capture_output=True)
    total = _committed(reference)

    resumed = tmp_path / "resumed.zarr"
    proc = subprocess.Popen(
        _tile_cmd(resumed, scenes),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _committed(resumed) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _committed(resumed)
    assert 0 < at_kill < total, "the kill must land in the middle of the run"

    rerun = subprocess.run(_tile_cmd(resumed, scenes), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "scenes_already_in_store" in rerun.stdout

    ref_arrays, ref_scenes = _snapshot(reference)
    got_arrays, got_scenes = _snapshot(resumed)
    assert got_scenes == ref_scenes
    for name, expected in ref_arrays.items():
        assert np.array_equal(got_arrays[name], expected), name
