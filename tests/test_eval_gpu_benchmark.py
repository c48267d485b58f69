"""The GPU benchmark script's plumbing, run on CPU at a toy size (no timing asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import REPO


def test_benchmark_writes_the_comparison_table(shared_data: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_ucmerced",
                                                  REPO / "benchmarks" / "gpu_ucmerced.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = tmp_path / "ucm"
    for cls in ("beach", "forest"):
        (data / cls).mkdir(parents=True)
        for src in sorted((shared_data / "ucmerced" / cls).glob("*.jpg"))[:4]:
            (data / cls / src.name).symlink_to(src)
    out = tmp_path / "bench.md"
    code = bench.main(["--out", str(out), "--data", str(data), "--arch", "resnet18",
                       "--epochs", "1", "--repeats", "1", "--fractions", "0.05,1.0",
                       "--image-size", "32", "--batch-size", "4", "--device", "cpu",
                       "--workers", "1"])
    assert code == 0
    lines = out.read_text().splitlines()
    assert "resnet18 from random initialisation, 1 epochs" in lines[0]
    assert lines[4].startswith("| 5% |") and "| 1 | 0.4247 |" in lines[4]
    assert lines[5].startswith("| 100% |") and "| 1 | 0.9105 |" in lines[5]
    assert (tmp_path / "bench_run" / "results.jsonl").is_file()
