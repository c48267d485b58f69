"""``geokr-eval classify`` end to end on a small stratified UC Merced subset (real data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import CliRunner

from training.evaluation.cli import main
from training.evaluation.images import decode_square

CLASSES = ("agricultural", "beach", "forest")


@pytest.fixture
def ucm_subset(shared_data: Path, tmp_path: Path) -> Path:
    """3 classes × 8 real images, linked (not copied) from the shared data."""
    root = tmp_path / "ucm"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for src in sorted((shared_data / "ucmerced" / cls).glob("*.jpg"))[:8]:
            (root / cls / src.name).symlink_to(src)
    return root


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "run" / "teacher_backbone.pth"
    path.parent.mkdir()
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, path)
    return path


def _run(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout (the table) and stderr (progress, error lines)."""
    result = CliRunner().invoke(main, ["classify", "--arch", "resnet18", "--device", "cpu",
                                       *args])
    return result.exit_code, result.stdout, result.stderr


def _classify(*args: str) -> tuple[int, str]:
    code, out, err = _run(*args)
    return code, out + err if code else out


def test_off_size_image_is_resized_and_cropped(shared_data: Path) -> None:
    img = decode_square(shared_data / "ucmerced" / "airplane" / "airplane55.jpg", 64)  # 253×256
    assert img.shape == (3, 64, 64) and img.dtype.name == "uint8"


def test_linear_probe_table_and_resume(ucm_subset: Path, exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--data", str(ucm_subset), "--out", str(out), "--init", "random",
            "--init", f"geokr={exported}", "--mode", "linear", "--image-size", "64",
            "--fractions", "0.5,1.0", "--repeats", "2"]
    code, output = _classify(*args)
    assert code == 0, output
    rows = {line.split()[0]: line for line in output.splitlines() if line.strip()}
    assert "mean class accuracy" in output and "random" in rows and "geokr" in rows
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 2
    assert {r["n_test"] for r in records} == {6} and {r["n_train"] for r in records} == {9, 18}
    assert all(0.0 <= r["score"] <= 1.0 and len(r["per_class"]) == 3 for r in records)
    assert len((out / "table.csv").read_text().splitlines()) == 1 + 4
    assert (out / "plot.png").stat().st_size > 0
    run = json.loads((out / "run.json").read_text())["runs"][0]
    assert run["parameters"]["classes"] == list(CLASSES) and "torch" in run["versions"]
    code, again = _classify(*args)
    assert code == 0 and again == output
    assert json.loads((out / "run.json").read_text())["runs"][1]["counts"]["cells_resumed"] == 8


def test_finetune_and_knn_modes_run(ucm_subset: Path, tmp_path: Path) -> None:
    for mode, extra in (("finetune", ["--epochs", "1", "--batch-size", "8"]), ("knn", [])):
        code, output = _classify("--data", str(ucm_subset), "--out", str(tmp_path / mode),
                                 "--mode", mode, "--image-size", "32", "--max-per-class", "4",
                                 "--fractions", "1.0", "--repeats", "1", *extra)
        assert code == 0, output
        record = json.loads((tmp_path / mode / "results.jsonl").read_text())
        assert record["n_train"] == 9 and record["n_test"] == 3


def test_bad_image_is_reported_and_the_run_goes_on(ucm_subset: Path, tmp_path: Path) -> None:
    (ucm_subset / "beach" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    code, output, err = _run("--data", str(ucm_subset), "--out", str(tmp_path / "o"),
                             "--mode", "knn", "--image-size", "32", "--fractions", "1.0",
                             "--repeats", "1")
    assert code == 0, output
    assert "broken.jpg: cannot decode image" in err
    counts = json.loads((tmp_path / "o" / "run.json").read_text())["runs"][0]["counts"]
    assert counts["images_failed"] == 1 and counts["images"] == 24


def test_mismatched_weights_fail_with_one_line(ucm_subset: Path, exported: Path,
                                               tmp_path: Path) -> None:
    code, _, err = _run("--data", str(ucm_subset), "--out", str(tmp_path / "o"),
                        "--arch", "resnet34", "--init", f"geokr={exported}")
    assert code != 0
    assert f"{exported}: does not match torchvision resnet34" in err
    (exported.parent / "model_card.json").write_text(json.dumps({"arch": "resnet18"}))
    code, _, err = _run("--data", str(ucm_subset), "--out", str(tmp_path / "o"),
                        "--arch", "resnet34", "--init", f"geokr={exported}")
    assert code != 0
    assert "model_card.json: weights are resnet18, --arch is resnet34" in err
