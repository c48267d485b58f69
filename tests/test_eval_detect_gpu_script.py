"""The GPU detection script's whole path, run on CPU with --smoke (no timing asserted).

The detection set is generated: objects pasted at known boxes on real UC Merced scenes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torchvision

from tests.conftest import REPO


def test_smoke_run_generates_the_set_and_writes_both_tables(shared_data: Path,
                                                            tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_detect",
                                                  REPO / "benchmarks" / "gpu_detect.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(5)
    weights = tmp_path / "pre" / "backbone.pth"
    weights.parent.mkdir()
    torch.save({k: v for k, v in torchvision.models.resnet18().state_dict().items()
                if not k.startswith("fc.")}, weights)
    out = tmp_path / "smoke.md"
    code = bench.main(["--generate", "--smoke", "--ucmerced", str(shared_data / "ucmerced"),
                       "--init", f"pre={weights}", "--out", str(out), "--device", "cpu"])
    assert code == 0
    text = out.read_text()
    assert text.startswith("Detection set: generated from UC Merced (10 images, 64 px)")
    assert "CenterNet on resnet18, 2 epochs" in text
    assert "| mAP@0.5 | 100% |" in text and "| mAP@[.5:.95] | 100% |" in text
    rows = [line.split("|")[1].strip() for line in text.splitlines()
            if line.startswith(("| random", "| pre"))]
    assert rows == ["random", "pre", "random", "pre"]
    work = tmp_path / "smoke_run"
    assert (work / "synthetic" / "annotations.json").is_file()
    assert len((work / "results.jsonl").read_text().splitlines()) == 2
