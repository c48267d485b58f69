"""The paper's table layout (rows: initialisations, columns: label fractions) and plot."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Summary:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}"


Table = dict[tuple[str, float], Summary]


def summarise(records: Sequence[dict[str, Any]], inits: Sequence[str],
              fractions: Sequence[float]) -> Table:
    """Mean and sample standard deviation over repeats of each (init, fraction) cell."""
    table: Table = {}
    for init in inits:
        for frac in fractions:
            vals = [r["score"] for r in records
                    if r["init"] == init and round(r["fraction"], 6) == round(frac, 6)]
            if vals:
                std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                table[(init, frac)] = Summary(float(np.mean(vals)), std, len(vals))
    return table


def fraction_label(frac: float) -> str:
    return f"{frac * 100:g}%"


def _rows(table: Table, inits: Sequence[str], fractions: Sequence[float]) -> list[list[str]]:
    return [[init] + [str(table[(init, f)]) if (init, f) in table else "–" for f in fractions]
            for init in inits]


def text_table(table: Table, inits: Sequence[str], fractions: Sequence[float],
               metric: str) -> str:
    header = [metric] + [fraction_label(f) for f in fractions]
    rows = [header, *_rows(table, inits, fractions)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def markdown_table(table: Table, inits: Sequence[str], fractions: Sequence[float],
                   metric: str) -> str:
    header = [metric] + [fraction_label(f) for f in fractions]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(table, inits, fractions)]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, table: Table, inits: Sequence[str], fractions: Sequence[float]) -> None:
    """Long form, one row per cell, for anyone re-plotting or comparing runs."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["init", "fraction", "mean", "std", "repeats"])
        for init in inits:
            for frac in fractions:
                if (init, frac) in table:
                    s = table[(init, frac)]
                    writer.writerow([init, frac, f"{s.mean:.6f}", f"{s.std:.6f}", s.n])


def plot(path: Path, table: Table, inits: Sequence[str], fractions: Sequence[float],
         metric: str) -> None:
    """Score against label fraction, one line per initialisation, ± std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for init in inits:
        pts = [(f, table[(init, f)]) for f in fractions if (init, f) in table]
        if pts:
            ax.errorbar([p[0] * 100 for p in pts], [p[1].mean for p in pts],
                        yerr=[p[1].std for p in pts], marker="o", capsize=3, label=init)
    ax.set_xscale("log")
    ax.set_xticks([f * 100 for f in fractions], [fraction_label(f) for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("labelled training data")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out: Path, records: Sequence[dict[str, Any]], inits: Sequence[str],
                  fractions: Sequence[float], metric: str) -> str:
    """table.csv, table.md and plot.png in ``out``; returns the printable table."""
    table = summarise(records, inits, fractions)
    write_csv(out / "table.csv", table, inits, fractions)
    (out / "table.md").write_text(markdown_table(table, inits, fractions, metric))
    plot(out / "plot.png", table, inits, fractions, metric)
    return text_table(table, inits, fractions, metric)
