"""``geokr-eval detect`` end to end on a small set built from real UC Merced scenes.

The objects are generated shapes pasted at known boxes on real UC Merced images (no
annotated detection set can be shipped; Levir cannot be redistributed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from training.evaluation.cli import main
from training.evaluation.detection.synthetic import make_synthetic


@pytest.fixture(scope="module")
def synthetic(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic(shared_data / "ucmerced", tmp_path_factory.mktemp("det") / "set",
                          n_images=10, image_size=128, size_range=(12, 24), seed=1)


def _detect(data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [
        "detect", "--data", str(data), "--out", str(out), "--arch", "resnet18",
        "--slice-size", "64", "--neck-channels", "16", "--head-channels", "16",
        "--fractions", "0.5,1.0", "--repeats", "1", "--epochs", "2", "--val-every", "1",
        "--batch-size", "8", "--device", "cpu", *extra])
    return result.exit_code, result.stdout, result.stderr


def test_detect_writes_tables_plot_and_results_and_resumes(synthetic: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, table, err = _detect(synthetic, out)
    assert code == 0, err
    lines = table.splitlines()
    assert lines[0].split() == ["mAP@0.5", "50%", "100%"] and lines[1].startswith("random")
    assert any(line.startswith("mAP@[.5:.95]") for line in lines)
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["fraction"] for r in records] == [0.5, 1.0]
    for r in records:
        assert 0 <= r["map"] <= r["score"] <= 1 and len(r["per_class"]) == 3
        assert r["n_val"] == r["n_test"] == 2  # 3:1:1 of 10 images
        assert r["selected_epoch"] in (1, 2) and [e for e, _ in r["validation"]] == [1, 2]
    assert records[0]["n_train"] < records[1]["n_train"] == 6
    assert records[1]["n_train_slices"] == 4 * 6  # every 128 px image gives 4 slices
    assert (out / "table.md").read_text().startswith("| mAP@0.5 | 50% | 100% |")
    assert (out / "table_coco.md").read_text().startswith("| mAP@[.5:.95] | 50% | 100% |")
    assert len((out / "table.csv").read_text().splitlines()) == 3
    assert (out / "plot.png").stat().st_size > 0
    run = json.loads((out / "run.json").read_text())["runs"][0]
    assert run["parameters"]["classes"] == ["airplane", "ship", "oiltank"]
    assert run["parameters"]["slices"] == {"size": 64, "overlap": 0, "keep": 0.5}
    assert run["counts"]["images"] == 10 and run["counts"]["slices"] == 40
    assert "torch" in run["versions"]

    code, again, err = _detect(synthetic, out)  # resumes: nothing retrained
    assert code == 0 and again == table
    assert (out / "results.jsonl").read_text().count("\n") == 2
    rerun = json.loads((out / "run.json").read_text())["runs"][1]["counts"]
    assert rerun["cells_resumed"] == 2 and "cells_done" not in rerun


def _copy(src: Path, dst: Path) -> Path:
    (dst / "images").mkdir(parents=True)
    for f in (src / "images").iterdir():
        (dst / "images" / f.name).symlink_to(f)
    (dst / "annotations.json").write_text((src / "annotations.json").read_text())
    return dst


@pytest.mark.parametrize("case", ["box outside", "unknown class", "unreadable image"])
def test_bad_input_is_one_line_and_exit_two(synthetic: Path, tmp_path: Path, case: str
                                            ) -> None:
    data = _copy(synthetic, tmp_path / "data")
    coco = json.loads((data / "annotations.json").read_text())
    first = coco["annotations"][0]
    image = next(i for i in coco["images"] if i["id"] == first["image_id"])
    if case == "box outside":
        first["bbox"][0] = 120
        first["bbox"][2] = 20
        want = f"annotation {first['id']}: box "
    elif case == "unknown class":
        first["category_id"] = 9
        want = f"annotation {first['id']}: unknown class (category_id 9)"
    else:
        (data / "images" / image["file_name"]).unlink()
        (data / "images" / image["file_name"]).write_bytes(b"\x89PNG broken")
        want = "cannot decode image"
    (data / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text('{"earlier": "work"}\n')
    code, _, err = _detect(data, out)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and want in errors[0] and "Traceback" not in err
    assert (out / "results.jsonl").read_text() == '{"earlier": "work"}\n'  # left alone
