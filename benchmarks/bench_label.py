"""Label-stage benchmark: chips labelled per second, against the paper's Algorithm 1 done
naively (per chip: find the tile, open it, read the window under the chip, count), on the
same store in the same run.

Two stores cut from the real Zion scene footprint, labelled with the real NLCD 2011 raster:

A. Landsat-like: 64 px chips at 30 m (stride 8 px), land-cover pixel ≈ chip pixel;
B. Gaofen-like: 64 px chips at 4 m, ~8 x 8 land-cover pixels per chip.

The production path runs in this process (no dask: the per-core figure) and on a local
dask cluster of ``--workers`` processes (timed on a second label set, once the cluster
is up and its workers have imported everything; start-up and first run are reported
apart).  The naive loop runs on ``--naive-chips`` random chips.

Usage: python benchmarks/bench_label.py [--workers 2] [--naive-chips 600] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geokr_testkit.grid import GridScene, grid_store  # noqa: E402
from pipeline.cluster import dask_client  # noqa: E402
from pipeline.landcover.legend import Legend, class_set  # noqa: E402
from pipeline.landcover.run import LabelConfig, run_label  # noqa: E402
from pipeline.landcover.tiles import TileRecord, describe_tile  # noqa: E402
from pipeline.store.chips import ChipStore  # noqa: E402
from pipeline.store.labels import LabelSet  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SCENE = DATA / "zion" / "landsat8_zion_bgrn.tif"
NLCD = DATA / "zion" / "nlcd2011.tif"


def stores(root: Path) -> dict[str, Path]:
    zion = GridScene.from_raster(SCENE)
    bare = GridScene(zion.crs_wkt, zion.transform, zion.width, zion.height)  # no pixels needed
    t = zion.transform
    fine = GridScene(zion.crs_wkt, Affine(4.0, 0, t.c, 0, -4.0, t.f),
                     int(zion.width * 30 / 4), int(zion.height * 30 / 4))
    out = {"A_landsat_64px_30m": root / "a.zarr", "B_gaofen_64px_4m": root / "b.zarr"}
    grid_store(out["A_landsat_64px_30m"], [bare], 64, stride=8)
    grid_store(out["B_gaofen_64px_4m"], [fine], 64, stride=64)
    return out


def naive_algorithm_1(store: ChipStore, tiles: list[TileRecord], legend: Legend,
                      codes: list[int], chips: np.ndarray) -> np.ndarray:
    """Per chip: find the covering tile, open it, read the window under the chip, count."""
    lut = legend.lut(codes)
    out = np.zeros((len(chips), len(codes)))
    gts = store.read("chip_transform")
    bounds = store.read("chip_bounds_wgs84")
    wkts = [store.scenes[s]["crs_wkt"] for s in store.read("chip_scene")]
    size = store.chip_size
    for n, i in enumerate(chips):
        w, s, e, nn = bounds[i]
        tile = next((t for t in tiles if _contains(t, (w + e) / 2, (s + nn) / 2)), None)
        if tile is None:
            continue
        with rasterio.open(tile.path) as ds:
            gt = gts[i]
            x0, y0 = gt[0], gt[3]
            x1, y1 = x0 + gt[1] * size, y0 + gt[5] * size
            tb = transform_bounds(wkts[i], ds.crs, min(x0, x1), min(y0, y1), max(x0, x1),
                                  max(y0, y1))
            win = from_bounds(*tb, transform=ds.transform).round_offsets().round_lengths()
            data = ds.read(1, window=win.intersection(Window(0, 0, ds.width, ds.height)))
        cls = lut[data.ravel()]
        counts = np.bincount(cls[cls >= 0], minlength=len(codes))
        out[n] = counts / max(counts.sum(), 1)
    return out


def _contains(tile: TileRecord, lon: float, lat: float) -> bool:
    lons = [p[0] for p in tile.footprint]
    lats = [p[1] for p in tile.footprint]
    return min(lons) <= lon <= max(lons) and min(lats) <= lat <= max(lats)


def time_production(path: Path, name: str, workers: int | None,
                    scheduler: str | None = None) -> tuple[float, int]:
    t0 = time.perf_counter()
    report = run_label(LabelConfig(path, [str(NLCD)], legend="nlcd", classes="all", name=name,
                                   workers=workers, scheduler=scheduler, progress=False))
    return time.perf_counter() - t0, int(report.counts["chips_labelled"])


def bench(path: Path, workers: int, naive_chips: int) -> dict[str, Any]:
    store = ChipStore.open(path)
    n = store.n_chips
    t1, done1 = time_production(path, "one_core", 0)
    t0 = time.perf_counter()
    with dask_client(workers) as client:
        startup = time.perf_counter() - t0
        address = client.scheduler_info()["address"]
        t_cold, _ = time_production(path, "dask_cold", None, address)  # workers import, cache
        t2, done2 = time_production(path, "dask", None, address)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, min(naive_chips, n), replace=False))
    legend = Legend.load("nlcd")
    codes = [c for c, _ in class_set("all")]
    t0 = time.perf_counter()
    naive = naive_algorithm_1(store, [describe_tile(NLCD)], legend, codes, sample)
    tn = time.perf_counter() - t0
    ours = LabelSet.open(ChipStore.open(path), "one_core").read("proportions")[sample]
    one, many, slow = done1 / t1, done2 / t2, len(sample) / tn
    return {
        "chips": n, "chip_size": store.chip_size,
        "production_1_process_chips_per_s": round(one, 1),
        f"production_dask_{workers}_workers_chips_per_s": round(many, 1),
        "dask_cluster_startup_s": round(startup, 2),
        "dask_first_run_s": round(t_cold, 2),
        "naive_algorithm_1_chips_per_s": round(slow, 1),
        "ratio_per_core": round(one / slow, 1),
        f"ratio_dask_{workers}_workers_vs_naive_1_core": round(many / slow, 1),
        "naive_vs_exact_mean_abs_diff": round(float(np.abs(naive - ours).mean()), 4),
        "naive_vs_exact_max_abs_diff": round(float(np.abs(naive - ours).max()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--naive-chips", type=int, default=600)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, "
                                          f"{len(__import__('os').sched_getaffinity(0))} cores"}
    with tempfile.TemporaryDirectory() as tmp:
        for case, path in stores(Path(tmp)).items():
            results[case] = bench(path, args.workers, args.naive_chips)
            print(case, json.dumps(results[case], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()


