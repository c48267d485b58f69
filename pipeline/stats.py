"""Dataset statistics of label sets: the paper's Table II, Table III, Fig. 3 and Fig. 5.

Table II counts valid chips by dominant class.  Table III compares two label
sets of the same chips (e.g. GlobeLand30 2010 vs 2020): how much the labels
move between editions is the paper's estimate of label noise.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipeline.errors import InputError
from pipeline.landcover.legend import Legend
from pipeline.landcover.reference import MISSING, chip_codes
from pipeline.landcover.tiles import TileIndex, build_index, expand_sources
from pipeline.store.chips import ChipStore
from pipeline.store.labels import LabelSet, LabelView, label_names

Table = tuple[list[str], list[list[object]]]


def table2(a: LabelView) -> Table:
    """Chips and share per dominant class, over valid chips (paper Table II)."""
    ok = a.valid & (a.dominant >= 0)
    counts = np.bincount(a.dominant[ok].astype(np.int64), minlength=len(a.classes))
    total = max(int(counts.sum()), 1)
    rows: list[list[object]] = [
        [code, name, int(n), round(100.0 * n / total, 2)]
        for (code, name), n in zip(a.classes, counts, strict=True)
    ]
    rows.append(["", "total (valid)", int(counts.sum()), 100.0 if counts.sum() else 0.0])
    rows.append(["", "invalid", int((~ok).sum()), ""])
    return ["code", "class", "chips", "share %"], rows


def table3(a: LabelView, b: LabelView) -> tuple[Table, float]:
    """Per class mean proportions, MAE and MAPE; and the share of chips whose dominant changed.

    Only chips valid in both sets count.  MAPE is ``100 * sum|a - b| / sum a``
    (the per-chip ratio is undefined wherever a class is absent).
    """
    if a.classes != b.classes:
        raise InputError(f"{a.name} vs {b.name}", "label sets have different class sets")
    n = min(len(a.valid), len(b.valid))
    ok = a.valid[:n] & b.valid[:n]
    if not ok.any():
        raise InputError(f"{a.name} vs {b.name}", "no chip is valid in both label sets")
    pa, pb = a.proportions[:n][ok].astype(np.float64), b.proportions[:n][ok].astype(np.float64)
    mae = np.abs(pa - pb).mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mape = np.where(pa.sum(0) > 0, 100 * np.abs(pa - pb).sum(0) / pa.sum(0), np.nan)
    rows: list[list[object]] = [
        [code, name, round(float(ma), 4), round(float(mb), 4), round(float(e), 4),
         round(float(p), 2) if np.isfinite(p) else "n/a"]
        for (code, name), ma, mb, e, p in zip(
            a.classes, pa.mean(0), pb.mean(0), mae, mape, strict=True
        )
    ]
    changed = float((a.dominant[:n][ok] != b.dominant[:n][ok]).mean())
    head = ["code", "class", f"mean {a.name}", f"mean {b.name}", "MAE", "MAPE %"]
    return (head, rows), changed


def markdown(table: Table) -> str:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text(table: Table) -> str:
    head, rows = table
    cells = [head, *[[str(v) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells)


def write_table(table: Table, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(table[0])
        w.writerows(table[1])
    md_path.write_text(markdown(table))
    return [csv_path, md_path]


def class_colors(classes: Sequence[tuple[int, str]]) -> list[tuple[float, float, float]]:
    gl30 = Legend.load("globeland30").colors()
    return [tuple(v / 255 for v in gl30[c]) for c, _ in classes]  # type: ignore[misc]


def bar_chart(a: LabelView, path: Path) -> Path:
    """Fig. 3: chips per dominant class, in the GlobeLand30 palette."""
    _, rows = table2(a)
    k = len(a.classes)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    ax.bar(range(k), [int(r[2]) for r in rows[:k]], color=class_colors(a.classes),  # type: ignore[call-overload]
           edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(k), [n for _, n in a.classes], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("chips (dominant class)")
    ax.set_title(f"label set {a.name}: valid chips per dominant class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def sample_chips(a: LabelView, n: int, seed: int = 0) -> list[int]:
    """Up to ``n`` valid chips, one per dominant class first (as in Fig. 5)."""
    rng = np.random.default_rng(seed)
    ok = np.flatnonzero(a.valid & (a.dominant >= 0))
    picks: list[int] = []
    for k in range(len(a.classes)):
        members = ok[a.dominant[ok] == k]
        if members.size and len(picks) < n:
            picks.append(int(rng.choice(members)))
    rest = np.setdiff1d(ok, picks)
    if len(picks) < n and rest.size:
        picks += [int(i) for i in rng.choice(rest, min(n - len(picks), rest.size), replace=False)]
    return sorted(picks)


def label_index(labels: LabelSet) -> TileIndex:
    """The tiles the label set was made from (the store's cached index is read, never written)."""
    from pipeline.landcover.run import index_path

    paths = expand_sources(labels.header["parameters"]["sources"])
    return build_index(paths, cache=index_path(labels.store.path, paths), write_cache=False)


def sample_figure(
    store: ChipStore, labels: LabelSet, a: LabelView, path: Path, n: int = 6
) -> Path | None:
    """Fig. 5: chips beside their land-cover map (product palette) and label vector."""
    chips = sample_chips(a, n)
    if not chips:
        return None
    try:
        doc = labels.header["legend"]
        legend = Legend.load(doc.get("source") or doc["name"])
        index = label_index(labels)
    except InputError as e:
        print(f"note: no Fig. 5 for {labels.name}: {e}")
        return None
    gts = store.read("chip_transform", slice(0, labels.n_chips))
    bounds = store.read("chip_bounds_wgs84", slice(0, labels.n_chips))
    scene_of = store.read("chip_scene", slice(0, labels.n_chips))
    scenes = store.scenes
    fig, axes = plt.subplots(len(chips), 3, figsize=(9, 2.6 * len(chips)), dpi=100,
                             squeeze=False)
    for row, i in zip(axes, chips, strict=True):
        _, pt = index.query(bounds[i : i + 1])
        tiles = [index.records[int(t)] for t in pt]
        codes = chip_codes(tiles, gts[i], scenes[int(scene_of[i])]["crs_wkt"], store.chip_size,
                           legend.nodata)
        row[0].imshow(np.transpose(store.read("chips", i), (1, 2, 0)))
        row[0].set_title(f"chip {i}", fontsize=8)
        row[1].imshow(_colour(codes, legend), interpolation="nearest")
        row[1].set_title(f"{legend.product} on the chip grid", fontsize=8)
        row[2].barh(range(len(a.classes)), a.proportions[i], color=class_colors(a.classes))
        row[2].set_yticks(range(len(a.classes)), [nm for _, nm in a.classes], fontsize=6)
        row[2].set_xlim(0, 1)
        row[2].invert_yaxis()
        row[2].set_title("proportions", fontsize=8)
        for ax in row[:2]:
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _colour(codes: np.ndarray, legend: Legend) -> np.ndarray:
    """RGB image of land-cover codes; white where no tile has data."""
    lut = np.full((max(int(codes.max()), max(legend.colors())) + 2, 3), 255, np.uint8)
    for code, rgb in legend.colors().items():
        lut[code] = rgb
    return lut[np.where(codes == MISSING, len(lut) - 1, codes)]


def run_stats(
    store_path: Path, out: Path, names: Sequence[str] = (), samples: int = 6
) -> list[Path]:
    """Tables and figures for the label sets of a store; returns the files written."""
    store = ChipStore.open(store_path)
    names = list(names) or label_names(store)
    if not names:
        raise InputError(store_path, "store has no label set (run geokr-etl label first)")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    arrays = []
    for name in names:
        labels = LabelSet.open(store, name)
        if labels.n_chips < store.n_chips:
            print(f"note: label set {name} covers {labels.n_chips} of {store.n_chips} chips "
                  "(stale: run geokr-etl label again)")
        a = labels.view(store.n_chips, require_valid=False)
        arrays.append(a)
        t2 = table2(a)
        print(f"Table II — {name} ({labels.header['product']})\n{text(t2)}\n")
        written += write_table(t2, out, f"table2_{name}")
        written.append(bar_chart(a, out / f"fig3_{name}.png"))
        fig5 = sample_figure(store, labels, a, out / f"fig5_{name}.png", samples)
        written += [fig5] if fig5 else []
    if len(arrays) == 2:
        t3, changed = table3(arrays[0], arrays[1])
        print(f"Table III — {arrays[0].name} vs {arrays[1].name}\n{text(t3)}")
        print(f"dominant class changed on {100 * changed:.2f} % of chips valid in both\n")
        written += write_table(t3, out, f"table3_{arrays[0].name}_vs_{arrays[1].name}")
        note = out / f"table3_{arrays[0].name}_vs_{arrays[1].name}.md"
        with note.open("a") as f:
            f.write(f"\nDominant class changed on {100 * changed:.2f} % of chips valid in both.\n")
    return written
