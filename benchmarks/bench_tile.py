"""Tile-stage benchmarks; every figure is a ratio against a baseline measured in the same run.

1. Tile throughput with 1 worker against a bare single-thread strip read + decode of the
   same scene: generated Gaofen-2-like scenes (4-band uint16, deflate and LZW) and the
   real Landsat 8 Zion scene; steady state (cluster already up) and end to end (the CLI's
   wall time, start-up included).
2. The driver's own CPU time per chip during a run.
3. Tile throughput with 2 workers against 1 (``--workers-max N`` for more).
4. ``consolidate`` (encoded chunks moved as bytes) against the previous method (decode
   every chip through zarr and encode it again), chips/s.
5. Random batches of 128 chips: the store's layout read by the trainer's direct shard
   reader and through zarr, against 64-chip chunks read with zarr's orthogonal selection.
6. Peak memory of one worker tiling a 30 000 × 30 000 4-band uint16 scene (``--big``).

Usage: python benchmarks/bench_tile.py [--size 6000] [--workers-max 2] [--big]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.config
import numpy as np
import rasterio
import zarr
from affine import Affine
from dask.distributed import Client, LocalCluster
from rasterio.windows import Window
from zarr.core.sync import sync

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.cluster import worker_environ  # noqa: E402
from pipeline.hpc.consolidate import consolidate, consolidate_report  # noqa: E402
from pipeline.hpc.parts import Part, part_store_path  # noqa: E402
from pipeline.store.chips import ChipBatch, ChipStore, chip_specs  # noqa: E402
from pipeline.store.records import RunRecord, SceneRecord  # noqa: E402
from pipeline.store.shards import open_shards  # noqa: E402
from pipeline.tiling import TileParams, run_tile  # noqa: E402

SHARED = Path(os.environ.get("GEOKR_SHARED_DATA", REPO.parent / "shared" / "data"))


def make_scene(path: Path, size: int, block: int = 1024, compress: str = "deflate") -> Path:
    """A Gaofen-2-like scene: 4-band uint16, 0.8 m, 512² tiles, written block by block."""
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
        "compress": compress,
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


def read_decode_seconds(path: Path, rgb: list[int]) -> tuple[float, float]:
    """The floor: read and decode the RGB bands (and masks) once, in 256-row strips;
    wall and CPU seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    with rasterio.open(path) as src:
        for r in range(0, src.height, 256):
            h = min(256, src.height - r)
            src.read(rgb, window=Window(0, r, src.width, h))
            src.read_masks(rgb, window=Window(0, r, src.width, h))
    return time.perf_counter() - t0, time.process_time() - c0


def workers_cpu(client: Client) -> float:
    return sum(client.run(time.process_time).values())


@contextmanager
def process_cluster(workers: int) -> Iterator[Client]:
    """Worker processes, as a cluster's are (the CLI runs a lone worker as a thread)."""
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}) as c,
        Client(c) as client,
    ):
        yield client


def tile_run(path: Path, client: Client, tmp: Path, sensor: str) -> dict[str, Any]:
    """Steady state: seconds of one run on a started cluster, and the driver's CPU seconds
    (its main thread: the run's own logic; the process: plus the embedded scheduler)."""
    store = tmp / "bench.zarr"
    shutil.rmtree(store, ignore_errors=True)
    wcpu0 = workers_cpu(client)
    t0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
    wall0 = time.time()
    report = run_tile(store, [str(path)], client, TileParams(), sensor, progress=False)
    assert threading.current_thread() is threading.main_thread()
    where = worker_profile(client.profile(start=wall0))
    return {
        "where": ", ".join(f"{name} {share:.0%}" for name, share in where[:7]),
        "seconds": time.perf_counter() - t0,
        "workers_cpu": workers_cpu(client) - wcpu0,
        "driver_main_cpu": time.thread_time() - main0,
        "driver_process_cpu": time.process_time() - cpu0,
        "windows": report.counts["chips_considered"],
        "chips": report.counts["chips_written"],
    }


def worker_profile(tree: dict[str, Any]) -> list[tuple[str, float]]:
    """Shares of the workers' sampled time by function (its own time, callees excluded)."""
    own: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        children = node.get("children", {})
        name = node.get("description", {}).get("name") or node.get("identifier", "?")
        own[name] = own.get(name, 0) + node["count"] - sum(c["count"] for c in children.values())
        for child in children.values():
            walk(child)

    walk(tree)
    total = max(1, tree["count"])
    return sorted(((k, v / total) for k, v in own.items()), key=lambda kv: -kv[1])


def cli_seconds(path: Path, tmp: Path, sensor: str) -> tuple[float, float]:
    """End to end: ``geokr-etl tile --workers 1`` as a user runs it, start-up included;
    wall and CPU seconds (its lone worker is a thread of the command)."""
    store = tmp / "cli.zarr"
    shutil.rmtree(store, ignore_errors=True)
    argv = [sys.executable, "-m", "pipeline.cli", "tile", "--store", str(store), "--scenes",
            str(path), "--sensor", sensor, "--workers", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0, c0 = time.perf_counter(), _children_cpu()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0, _children_cpu() - c0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scene_figures(name: str, path: Path, sensor: str, rgb: list[int], tmp: Path,
                  workers_max: int) -> None:
    read_s, read_cpu = read_decode_seconds(path, rgb)
    with process_cluster(1) as client:
        one = tile_run(path, client, tmp, sensor)
    end_to_end, end_cpu = cli_seconds(path, tmp, sensor)
    n = one["windows"]
    print(f"{name}: {n:.0f} chip windows, {one['chips']:.0f} kept")
    print(f"  read+decode only, 1 thread: {n / read_s:8.1f} chips/s  ({read_cpu / n * 1e3:.2f} "
          "ms CPU a chip)")
    print(f"  tile, 1 worker, steady:     {n / one['seconds']:8.1f} chips/s  "
          f"ratio {read_s / one['seconds']:.2f}; CPU ratio (read / worker) "
          f"{read_cpu / one['workers_cpu']:.2f} ({one['workers_cpu'] / n * 1e3:.2f} ms worker CPU "
          "a chip)")
    print(f"  tile, 1 worker, end to end: {n / end_to_end:8.1f} chips/s  "
          f"ratio {read_s / end_to_end:.2f}; CPU ratio {read_cpu / end_cpu:.2f}  "
          f"(CLI wall {end_to_end:.2f} s)")
    print(f"  driver CPU per chip window: main thread {one['driver_main_cpu'] / n * 1e3:.3f} ms, "
          f"whole driver process (with the scheduler) {one['driver_process_cpu'] / n * 1e3:.3f} ms")
    print(f"  the worker's sampled time by function (own time; __call__: C code under the task, "
          f"reading and decoding mostly): {one['where']}")
    workers = 2
    while workers <= workers_max:
        with process_cluster(workers) as client:
            many = tile_run(path, client, tmp, sensor)
        print(f"  tile, {workers} workers:            {n / many['seconds']:8.1f} chips/s  "
              f"ratio to 1 worker {one['seconds'] / many['seconds']:.2f}")
        workers *= 2


def part_store(tmp: Path, n: int, size: int = 256, shard: int = 256) -> Path:
    """A finished part store of ``n`` textured chips, as ``tile --part 1/1`` leaves it."""
    store = tmp / "cons.zarr"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    base = ((np.sin(xx / 9.0) + np.cos(yy / 13.0) + 2) * 50).astype(np.uint8)
    part = ChipStore.create(part_store_path(store, Part(1, 1)), size, shard)
    writer = part.writer()
    for lo in range(0, n, shard):
        k = min(shard, n - lo)
        chips = np.stack([np.stack([base + rng.integers(0, 40, base.shape, dtype=np.uint8)] * 3)
                          for _ in range(k)])
        batch = ChipBatch.empty(size)
        writer.append(ChipBatch(chips=chips, **{
            name: np.zeros((k, *a.shape[1:]), a.dtype)
            for name, a in batch.arrays().items() if name != "chips"}))
    part.commit(writer.flush(), scenes=[SceneRecord(0, "/bench.tif", n, "bench", 0, 0)],
                runs=[RunRecord("tile", finished="now")])
    return store


def consolidate_figures(tmp: Path, n: int) -> None:
    store = part_store(tmp, n)
    source = ChipStore.open(part_store_path(store, Part(1, 1)))
    t0 = time.perf_counter()
    with consolidate_report(store) as report:
        consolidate(store, report)
    fast = time.perf_counter() - t0
    # the previous method: every chip decoded through zarr and encoded again
    old = ChipStore.create(tmp / "old.zarr", source.chip_size, 256)
    t0 = time.perf_counter()
    writer = old.writer()
    for lo in range(0, n, 512):
        sel = slice(lo, min(lo + 512, n))
        writer.append(ChipBatch(**{name: source.read(name, sel) for name in chip_specs(256)}))
    old.commit(writer.flush())
    slow = time.perf_counter() - t0
    assert np.array_equal(ChipStore.open(store).read("chips", slice(0, 64)),
                          old.read("chips", slice(0, 64)))
    print(f"consolidate, {n} chips of 256 px: {n / fast:8.1f} chips/s; previous method "
          f"(decode + encode) {n / slow:8.1f} chips/s; ratio {slow / fast:.1f}x")


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
import resource, sys, tempfile
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from pipeline.store.shards import ShardLayout
from pipeline.store.chips import ChipStore
from pipeline.tiling import TileParams, prepare_scene, tile_part
from pipeline.sensors import all_profiles, load_profile
p = TileParams()
tmp = Path(tempfile.mkdtemp())
layout = ShardLayout.of(ChipStore.create(tmp / "s.zarr", p.chip_size).path)
plan = prepare_scene({str(path)!r}, load_profile("gf2-pms"), all_profiles(), p)
for i in list(range(0, len(plan.parts), max(1, len(plan.parts) // 12))) + [len(plan.parts) - 1]:
    tile_part(plan.info, plan.stretch, plan.parts[i], p, layout)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=6000, help="generated scene side, px")
    parser.add_argument("--workers-max", type=int, default=2, help="scale up to this many")
    parser.add_argument("--consolidate-chips", type=int, default=2048)
    parser.add_argument("--big", action="store_true", help="also the 30 000² memory figure")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for compress in ("deflate", "lzw"):
            scene = make_scene(tmp / f"GF2_{compress}_20200101.tif", args.size, compress=compress)
            scene_figures(f"Gaofen-like {args.size}² {compress}", scene, "gf2-pms", [3, 2, 1],
                          tmp, args.workers_max)
            scene.unlink()
        zion = SHARED / "zion" / "landsat8_zion_bgrn.tif"
        if zion.exists():
            scene_figures("real Landsat 8 scene (Zion, 1128×1428)", zion, "bgrn", [3, 2, 1],
                          tmp, args.workers_max)
        consolidate_figures(tmp, args.consolidate_chips)
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
