"""The resumable results file: an interrupted evaluation continues where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.report import RunReport
from training.evaluation.backbones import InitSpec
from training.evaluation.protocol import Cell, finish_run, make_cells, run_cells
from training.evaluation.results import ResultsFile

INITS = (InitSpec("random"), InitSpec("geokr", Path("w.pth")))
FRACTIONS = (0.1, 1.0)
FPS = {"random": "aaaa", "geokr": "bbbb"}


class Evaluator:
    """Scores each cell by a known formula; can stop the run after n cells like Ctrl-C."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.seen: list[str] = []
        self.stop_after = stop_after

    def __call__(self, cell: Cell) -> dict[str, Any]:
        if self.stop_after is not None and len(self.seen) == self.stop_after:
            raise KeyboardInterrupt
        self.seen.append(cell.label)
        return {"score": cell.fraction + (0.5 if cell.init.name == "geokr" else 0) + cell.repeat}


def _run(path: Path, evaluator: Evaluator, fps: dict[str, str] = FPS) -> RunReport:
    report = RunReport(stage="test", parameters={})
    run_cells(ResultsFile(path), make_cells(INITS, FRACTIONS, 2), fps, evaluator, report)
    return report


def test_interrupted_run_resumes_without_redoing_cells(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    first = Evaluator(stop_after=3)
    assert _run(path, first).interrupted
    assert len(path.read_text().splitlines()) == 3
    second = Evaluator()
    report = _run(path, second)
    assert not report.interrupted
    assert report.counts["cells_resumed"] == 3 and report.counts["cells_done"] == 5
    assert not set(first.seen) & set(second.seen)
    assert len(set(first.seen + second.seen)) == 8
    assert _run(path, Evaluator(stop_after=0)).counts["cells_resumed"] == 8  # nothing left


def test_cell_order_runs_every_init_on_a_split_before_the_next(tmp_path: Path) -> None:
    ev = Evaluator()
    _run(tmp_path / "r.jsonl", ev)
    assert ev.seen[:4] == ["random 10% r0", "geokr 10% r0", "random 100% r0", "geokr 100% r0"]


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _run(path, Evaluator(stop_after=2))
    with open(path, "a") as f:
        f.write('{"init": "random", "fract')  # killed mid-write
    assert len(ResultsFile(path).records) == 2
    assert _run(path, Evaluator()).counts["cells_done"] == 6


def test_changed_configuration_is_not_mixed_in(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _run(path, Evaluator())
    changed = {"random": "cccc", "geokr": "bbbb"}  # e.g. other epochs for one row
    report = _run(path, Evaluator(), fps=changed)
    assert report.counts["cells_done"] == 4 and report.counts["cells_resumed"] == 4
    assert len(ResultsFile(path).current(changed)) == 8


def test_finish_run_writes_table_plot_and_run_record(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    report = _run(path, Evaluator())
    table = finish_run(tmp_path, report, ResultsFile(path), FPS, INITS, FRACTIONS, "score")
    # repeats score f and f + 1 → mean f + 0.5, sample std 0.7071
    assert table.splitlines()[1].split() == ["random", "0.6000", "±", "0.7071", "1.5000", "±",
                                             "0.7071"]
    md = (tmp_path / "table.md").read_text().splitlines()
    assert md[0] == "| score | 10% | 100% |"
    assert md[3] == "| geokr | 1.1000 ± 0.7071 | 2.0000 ± 0.7071 |"
    assert (tmp_path / "table.csv").read_text().splitlines()[1] == "random,0.1,0.600000,0.707107,2"
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert '"versions"' in (tmp_path / "run.json").read_text()
