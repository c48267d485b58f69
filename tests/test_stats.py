"""Table II / Table III arithmetic against hand computations, and the stats outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geokr_testkit.grid import GridScene, grid_store, utm_wkt
from pipeline.cli.stats import stats
from pipeline.errors import InputError
from pipeline.stats import markdown, table2, table3, write_table
from pipeline.store.labels import LabelView

CLASSES = [(10, "cultivated land"), (20, "forest"), (60, "water bodies")]


def view(name: str, classes: list[tuple[int, str]], p: np.ndarray, v: np.ndarray,
         dominant: np.ndarray) -> LabelView:
    return LabelView(name, classes, p, v, np.ones(len(v)), dominant, len(v), {})


def arrays(name: str, props: list[list[float]], valid: list[bool]) -> LabelView:
    p = np.array(props, np.float32)
    v = np.array(valid)
    dominant = np.where(p.sum(1) > 0, p.argmax(1), -1).astype(np.int16)
    return view(name, CLASSES, p, v, dominant)


A = arrays("a", [[0.6, 0.4, 0], [0.2, 0.8, 0], [0, 0.3, 0.7], [0.1, 0.1, 0.8], [0, 0, 0]],
           [True, True, True, True, False])
B = arrays("b", [[0.4, 0.6, 0], [0.2, 0.8, 0], [0, 0.45, 0.55], [0.1, 0.1, 0.8], [0.5, 0.5, 0]],
           [True, True, True, False, True])


def test_table2_counts_valid_chips_by_dominant_class() -> None:
    head, rows = table2(A)
    assert head == ["code", "class", "chips", "share %"]
    assert [r[2] for r in rows[:3]] == [1, 1, 2]
    assert [r[3] for r in rows[:3]] == [25.0, 25.0, 50.0]
    assert rows[3][2] == 4 and rows[4][2] == 1  # total valid, invalid


def test_table3_against_hand_computation() -> None:
    (head, rows), changed = table3(A, B)
    # chips valid in both: 0, 1, 2
    pa = np.array([[0.6, 0.4, 0], [0.2, 0.8, 0], [0, 0.3, 0.7]])
    pb = np.array([[0.4, 0.6, 0], [0.2, 0.8, 0], [0, 0.45, 0.55]])
    mae = np.abs(pa - pb).mean(0)
    assert [r[4] for r in rows] == pytest.approx(mae, abs=1e-4)
    assert [r[2] for r in rows] == pytest.approx(pa.mean(0), abs=1e-4)
    assert rows[0][5] == pytest.approx(100 * 0.2 / 0.8, abs=0.01)
    assert changed == pytest.approx(1 / 3)  # chip 0: cultivated → forest
    assert head[2:4] == ["mean a", "mean b"]


def test_table3_needs_same_classes_and_common_valid_chips() -> None:
    other = view("c", CLASSES[:2], A.proportions[:, :2], A.valid, A.dominant)
    with pytest.raises(InputError, match="different class sets"):
        table3(A, other)
    none = view("d", CLASSES, A.proportions, np.zeros(5, bool), A.dominant)
    with pytest.raises(InputError, match="no chip is valid in both"):
        table3(A, none)


def test_written_tables(tmp_path: Path) -> None:
    files = write_table(table2(A), tmp_path, "t2")
    with files[0].open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["code", "class", "chips", "share %"] and rows[3][2] == "2"
    md = files[1].read_text()
    assert md == markdown(table2(A)) and md.startswith("| code | class |")


def test_stats_without_label_sets_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    grid_store(path, [GridScene(utm_wkt(12), Affine(30, 0, 3e5, 0, -30, 4e6), 64, 64)], 64)
    result = CliRunner().invoke(stats, ["--store", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: store has no label set (run geokr-etl " \
                                    "label first)"
