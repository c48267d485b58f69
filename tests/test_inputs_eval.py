"""Degenerate evaluation data: refused with one line and exit 2 before anything is written;
a NaN never reaches results.jsonl. Real UC Merced images; segmentation pairs generated
(PNG images, GeoTIFF masks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from pipeline.errors import NonFiniteError
from training.evaluation.cli import main
from training.evaluation.results import ResultsFile
from training.evaluation.splits import min_class_size, split_problem


def _folder(shared_data: Path, root: Path, per_class: dict[str, int]) -> Path:
    for cls, n in per_class.items():
        (root / cls).mkdir(parents=True)
        for src in sorted((shared_data / "ucmerced" / cls).glob("*.jpg"))[:n]:
            (root / cls / src.name).symlink_to(src)
    return root


def _classify(data: Path, out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [
        "classify", "--data", str(data), "--out", str(out), "--arch", "resnet18",
        "--device", "cpu", "--mode", "knn", "--image-size", "32", "--fractions", "1.0",
        "--repeats", "1"])
    return result.exit_code, result.stderr


def test_min_class_size_follows_the_split() -> None:
    assert min_class_size(0.25) == 3  # round(2 * 0.25) == 0: two images give no test image
    assert min_class_size(0.5) == 2
    assert split_problem(np.array([0, 0, 0, 1, 1, 1]), ["a", "b"]) is None


@pytest.mark.parametrize(("per_class", "reason"), [
    ({"beach": 8}, "holds 1 class(es) (beach); a comparison needs at least 2"),
    ({"beach": 8, "forest": 1}, "class forest (1) too small: a 75%/25% train/test split "
                                "needs at least 3 images per class"),
    ({"beach": 2, "forest": 2}, "class beach (2), forest (2) too small"),
])
def test_degenerate_classification_data_is_refused(
    shared_data: Path, tmp_path: Path, per_class: dict[str, int], reason: str
) -> None:
    data = _folder(shared_data, tmp_path / "data", per_class)
    code, err = _classify(data, tmp_path / "out")
    assert code == 2, err
    assert f"error: {data}: {reason}" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_refused_rerun_leaves_earlier_results_alone(shared_data: Path, tmp_path: Path) -> None:
    data = _folder(shared_data, tmp_path / "data", {"beach": 4, "forest": 4})
    out = tmp_path / "out"
    code, err = _classify(data, out)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for image in list((data / "forest").iterdir())[1:]:
        image.unlink()
    code, err = _classify(data, out)
    assert code == 2 and "class forest (1) too small" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert "NaN" not in (out / "results.jsonl").read_text()


def _pair(root: Path, name: str, codes: np.ndarray) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    h, w = codes.shape
    rgb = np.random.default_rng(0).integers(0, 255, (3, h, w), dtype=np.uint8)
    with rasterio.open(root / "images" / f"{name}.png", "w", driver="PNG", width=w, height=h,
                       count=3, dtype="uint8") as dst:
        dst.write(rgb)
    with rasterio.open(root / "masks" / f"{name}.tif", "w", driver="GTiff", width=w, height=h,
                       count=1, dtype="uint8", crs="EPSG:32612",
                       transform=from_origin(0, 10 * h, 10, 10)) as dst:
        dst.write(codes[None])


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize(("halves", "reason"), [
    ((10, 10), "masks hold 1 class(es) (10); mIoU needs at least 2"),
    ((10, 20), "2 tiles, none of their dominant classes has the 3 tiles"),
])
def test_degenerate_segmentation_data_is_refused(
    tmp_path: Path, halves: tuple[int, int], reason: str
) -> None:
    codes = np.full((32, 64), halves[0], np.uint8)
    codes[:, 32:] = halves[1]
    _pair(tmp_path / "data", "a", codes)
    result = CliRunner().invoke(main, [
        "segment", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
        "--arch", "resnet18", "--tile-size", "32", "--device", "cpu", "--epochs", "1"])
    assert result.exit_code == 2, result.stderr
    assert f"error: {tmp_path / 'data'}: {reason}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_nan_score_is_never_written(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "results.jsonl")
    results.add({"init": "random", "fraction": 1.0, "repeat": 0, "fingerprint": "x",
                 "score": 0.5})
    before = (tmp_path / "results.jsonl").read_bytes()
    with pytest.raises(NonFiniteError, match="scored nan; not recorded"):
        results.add({"init": "random", "fraction": 0.5, "repeat": 0, "fingerprint": "x",
                     "score": float("nan")})
    assert (tmp_path / "results.jsonl").read_bytes() == before
    assert json.loads(before)["score"] == 0.5
