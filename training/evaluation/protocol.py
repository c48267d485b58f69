"""The comparison loop shared by classification and segmentation.

Cells run repeat by repeat, fraction by fraction, every initialisation on the same
split and with the same seed; each finished cell is appended to the results file at
once, so Ctrl-C (or a killed job) loses at most the cell in progress.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.report import RunReport, utc_now
from training.evaluation.backbones import InitSpec, build_backbone
from training.evaluation.finetune import FinetuneConfig
from training.evaluation.results import ResultsFile, cell_key, fingerprint
from training.evaluation.tables import write_outputs


@dataclasses.dataclass(frozen=True)
class Cell:
    init: InitSpec
    fraction: float
    fraction_index: int
    repeat: int

    @property
    def label(self) -> str:
        return f"{self.init.name} {self.fraction * 100:g}% r{self.repeat}"


def cell_seed(seed: int, repeat: int, fraction_index: int) -> int:
    """The training seed of a cell: shared by all initialisations, distinct per cell."""
    return int(np.random.SeedSequence([seed, repeat, fraction_index]).generate_state(1)[0])


def make_cells(inits: Sequence[InitSpec], fractions: Sequence[float], repeats: int) -> list[Cell]:
    return [Cell(init, frac, fi, r) for r in range(repeats)
            for fi, frac in enumerate(fractions) for init in inits]


def parse_fractions(text: str) -> tuple[float, ...]:
    """``0.05,0.1,1.0`` → sorted unique fractions in (0, 1]."""
    try:
        fracs = sorted({float(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ValueError(f"--fractions {text!r}: not a comma-separated list of numbers") from None
    if not fracs or fracs[0] <= 0 or fracs[-1] > 1:
        raise ValueError(f"--fractions {text!r}: each fraction must be in (0, 1]")
    return tuple(fracs)


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """Settings every downstream protocol shares: initialisations × fractions × repeats."""

    data: Path
    out: Path
    arch: str
    inits: tuple[InitSpec, ...]
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
    repeats: int = 3
    mode: str = "finetune"
    train: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    seed: int = 0
    test_share: float = 0.25

    def parameters(self) -> dict[str, Any]:
        params = dataclasses.asdict(self)
        params["inits"] = {i.name: str(i.weights) if i.weights else "random" for i in self.inits}
        return params

    def cell_fingerprints(
        self, data_fingerprint: str, ignore: tuple[str, ...] = ()
    ) -> dict[str, str]:
        """Per init: what decides its cells' results (not device, output or bookkeeping)."""
        skip = ("out", "inits", "fractions", "repeats", *ignore)
        common = {k: v for k, v in self.parameters().items() if k not in skip}
        if "train" in common:
            common["train"] = {k: v for k, v in common["train"].items()
                               if k not in ("device", "eval_batch_size")}
        common["data"] = data_fingerprint
        return {i.name: fingerprint({**common, "weights": i.fingerprint()}) for i in self.inits}


def check_setup(
    mode: str, modes: Sequence[str], inits: Sequence[InitSpec], arch: str, seed: int
) -> None:
    """Fail on a bad mode, duplicate names or a bad weights file before reading any data."""
    if mode not in modes:
        raise ValueError(f"--mode must be one of {tuple(modes)}")
    names = [i.name for i in inits]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate --init names: {names}")
    for spec in inits:
        build_backbone(arch, spec, seed)


def run_protocol(
    out: Path, report: RunReport, inits: Sequence[InitSpec], fractions: Sequence[float],
    repeats: int, fingerprints: dict[str, str], evaluate: Callable[[Cell], dict[str, Any]],
    metric: str,
) -> str:
    """Run (or resume) every (init, fraction, repeat) cell, then write the outputs."""
    results = ResultsFile(out / "results.jsonl")
    run_cells(results, make_cells(inits, fractions, repeats), fingerprints, evaluate, report)
    return finish_run(out, report, results, fingerprints, inits, fractions, metric)


def run_cells(
    results: ResultsFile, cells: Sequence[Cell], fingerprints: dict[str, str],
    evaluate: Callable[[Cell], dict[str, Any]], report: RunReport,
) -> None:
    """Evaluate every cell not yet in ``results``; Ctrl-C stops after recording."""
    bar = tqdm(total=len(cells), desc=report.stage, unit="cell")
    try:
        for cell in cells:
            fp = fingerprints[cell.init.name]
            if results.done(cell_key(cell.init.name, cell.fraction, cell.repeat, fp)):
                report.counts["cells_resumed"] += 1
                bar.update()
                continue
            t0 = time.monotonic()
            record = evaluate(cell)
            record.update(init=cell.init.name, fraction=cell.fraction, repeat=cell.repeat,
                          fingerprint=fp, seconds=round(time.monotonic() - t0, 3),
                          finished=utc_now())
            results.add(record)
            report.counts["cells_done"] += 1
            bar.set_postfix_str(f"{cell.label}: {record['score']:.4f}")
            bar.update()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        bar.close()


def finish_run(
    out: Path, report: RunReport, results: ResultsFile, fingerprints: dict[str, str],
    inits: Sequence[InitSpec], fractions: Sequence[float], metric: str,
) -> str:
    """Write the tables, the plot and the run record; return the printable table."""
    report.finish()
    names = [i.name for i in inits]
    table = write_outputs(out, results.current(fingerprints), names, fractions, metric)
    run_file = out / "run.json"
    runs: list[Any] = []
    if run_file.exists():
        try:
            runs = json.loads(run_file.read_text()).get("runs", [])
        except (json.JSONDecodeError, AttributeError):
            runs = []
    runs.append({**report.to_dict(), "fingerprints": fingerprints})
    run_file.write_text(json.dumps({"runs": runs}, indent=2, default=str) + "\n")
    return table
