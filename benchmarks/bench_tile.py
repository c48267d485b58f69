"""Tile-stage benchmarks; every figure is a ratio against a baseline measured in the same run.

1. Tile throughput (1 worker) against merely reading and decoding the same scene.
2. Tile throughput with 2 workers against 1.
3. Where the time goes: each step of the stage in one process, without dask.
4. Random batches of 128 chips: the store's layout (one chip per inner chunk, 256-chip
   shards) read by the trainer's direct shard reader and through zarr, against 64-chip
   chunks read with zarr's orthogonal selection.
5. Peak memory of one worker tiling a 30 000 × 30 000 4-band uint16 scene (``--big``).

Usage: python benchmarks/bench_tile.py [--size 6000] [--big] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import zarr
from affine import Affine
from rasterio.windows import Window
from zarr.core.sync import sync

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.cluster import dask_client  # noqa: E402
from pipeline.errors import InputError  # noqa: E402
from pipeline.scenes import inspect_scene  # noqa: E402
from pipeline.sensors import all_profiles, load_profile  # noqa: E402
from pipeline.shards import open_shards  # noqa: E402
from pipeline.store import ChipStore  # noqa: E402
from pipeline.tiling import ScenePlan, TileParams, prepare_scene, run_tile, tile_part  # noqa: E402


def make_scene(path: Path, size: int, block: int = 1024) -> Path:
    """A Gaofen-2-like scene: 4-band uint16, tiled, deflate, written block by block."""
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32649",
        "transform": Affine(0.8, 0, 700_000.0, 0, -0.8, 2_600_000.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "YES",
    }
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, size, block):
            for c in range(0, size, block):
                h, w = min(block, size - r), min(block, size - c)
                yy, xx = np.mgrid[r : r + h, c : c + w]
                base = (np.sin(xx / 37.0) + np.cos(yy / 53.0) + 2) * 150 + 100
                data = np.stack([base + rng.normal(0, 40, base.shape) + 30 * b for b in range(4)])
                dst.write(data.astype("uint16"), window=Window(c, r, w, h))
    return path


def read_decode_seconds(path: Path) -> float:
    """The floor: read and decode the RGB bands once, in 256-row strips."""
    t0 = time.perf_counter()
    with rasterio.open(path) as src:
        for r in range(0, src.height, 256):
            h = min(256, src.height - r)
            src.read([3, 2, 1], window=Window(0, r, src.width, h))
            src.read_masks([3, 2, 1], window=Window(0, r, src.width, h))
    return time.perf_counter() - t0


def stage_breakdown(path: Path, tmp: Path) -> dict[str, float]:
    """Seconds per step of the tile stage in one process, no dask: where the time goes."""
    params = TileParams()
    t0 = time.perf_counter()
    plan = prepare_scene(str(path), load_profile("gf2-pms"), all_profiles(), params)
    assert isinstance(plan, ScenePlan)
    t1 = time.perf_counter()
    results = [tile_part(plan.info, plan.stretch, part, params) for part in plan.parts]
    t2 = time.perf_counter()
    writer = ChipStore.create(tmp / "breakdown.zarr", params.chip_size).writer()
    for result in results:
        assert not isinstance(result, InputError)
        writer.append(result.batch)
    writer.flush()
    t3 = time.perf_counter()
    return {"stretch sample": t1 - t0, "cut + filter all parts": t2 - t1, "store writes": t3 - t2}


def tile_seconds(path: Path, workers: int, tmp: Path) -> tuple[float, int]:
    store = tmp / f"bench-{workers}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    with dask_client(workers) as client:
        t0 = time.perf_counter()
        report = run_tile(store, [str(path)], client, TileParams(), "gf2-pms", progress=False)
        seconds = time.perf_counter() - t0
    return seconds, report.counts["chips_considered"]


def zarr_per_chip(arr: zarr.Array, idx: np.ndarray) -> np.ndarray:
    """Concurrent per-chip reads of inner chunks through zarr."""
    chips = arr._async_array

    async def fetch() -> list[Any]:
        return await asyncio.gather(*(chips.getitem(slice(i, i + 1)) for i in idx.tolist()))

    return np.concatenate(sync(fetch()))


def random_batch_reads(
    tmp: Path, n_chips: int = 4096, batches: int = 25, rounds: int = 3
) -> dict[str, float]:
    """Chips/s of random batches of 128, median of rounds that alternate between readers."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    base = ((np.sin(xx / 9.0) + np.cos(yy / 13.0) + 2) * 50).astype(np.uint8)
    data = np.stack(
        [np.stack([base + rng.integers(0, 40, base.shape, dtype=np.uint8)] * 3) for _ in range(64)]
    )
    arrays = {}
    for key, chunks, shards in (
        ("sharded", (1, 3, 256, 256), (256, 3, 256, 256)),
        ("chunk64", (64, 3, 256, 256), None),
    ):
        group = zarr.open_group(str(tmp / f"layout-{key}.zarr"), mode="w")
        arr = group.create_array(
            "chips",
            shape=(n_chips, 3, 256, 256),
            dtype="uint8",
            compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
            chunks=chunks,
            shards=shards,
        )
        for i in range(0, n_chips, 256):
            arr[i : i + 256] = np.concatenate([data] * 4)
        arrays[key] = zarr.open_array(str(tmp / f"layout-{key}.zarr" / "chips"), mode="r")
    direct = open_shards(tmp / "layout-sharded.zarr")
    assert direct is not None
    readers: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "store layout, trainer's direct shard reads": direct.read,
        "store layout, zarr per-chip concurrent reads": lambda i: zarr_per_chip(
            arrays["sharded"], i
        ),
        "64-chip chunks, zarr orthogonal selection": lambda i: np.asarray(
            arrays["chunk64"].oindex[i]
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(rounds):
        for name, read in readers.items():
            t0 = time.perf_counter()
            for _ in range(batches):
                read(np.sort(rng.choice(n_chips, 128, replace=False)))
            rates[name].append(batches * 128 / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def worker_peak_memory(path: Path) -> float:
    """Peak RSS (MB) of a fresh process doing exactly what one worker does, part by part."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(REPO)!r})
from pipeline.tiling import TileParams, prepare_scene, tile_part
from pipeline.sensors import all_profiles, load_profile
p = TileParams()
plan = prepare_scene({str(path)!r}, load_profile("gf2-pms"), all_profiles(), p)
n = 0
for i in list(range(0, len(plan.parts), max(1, len(plan.parts) // 12))) + [len(plan.parts) - 1]:
    r = tile_part(plan.info, plan.stretch, plan.parts[i], p)
    n += len(r.batch)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, n)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=6000, help="scene side for throughput, px")
    parser.add_argument("--big", action="store_true", help="also the 30 000² memory figure")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        scene = make_scene(tmp / "GF2_bench_20200101.tif", args.size)
        inspect_scene(str(scene), None, all_profiles())
        read_s = read_decode_seconds(scene)
        one_s, n = tile_seconds(scene, 1, tmp)
        two_s, _ = tile_seconds(scene, 2, tmp)
        print(f"scene {args.size}² px, {n} chip windows")
        print(f"read+decode only: {n / read_s:8.1f} chips/s")
        print(
            f"tile, 1 worker:   {n / one_s:8.1f} chips/s  ratio to read+decode {read_s / one_s:.2f}"
        )
        print(
            f"tile, 2 workers:  {n / two_s:8.1f} chips/s  ratio to 1 worker    {one_s / two_s:.2f}"
        )
        steps = stage_breakdown(scene, tmp)
        print(
            f"one process, no dask: read+decode {read_s:.2f} s, "
            + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items())
        )
        reads = random_batch_reads(tmp)
        baseline = reads["64-chip chunks, zarr orthogonal selection"]
        for name, rate in reads.items():
            print(f"random batches of 128, {name}: {rate:8.1f} chips/s ({rate / baseline:.1f}x)")
        if args.big:
            big = make_scene(tmp / "GF2_big_20200101.tif", 30_000, block=2048)
            print(
                f"30000² scene written ({big.stat().st_size / 1e9:.1f} GB on disk, "
                f"{30_000 * 30_000 * 8 / 1e9:.1f} GB decoded)"
            )
            print(f"peak RSS of one worker on it: {worker_peak_memory(big):.0f} MB")


if __name__ == "__main__":
    main()
