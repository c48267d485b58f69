"""Training throughput: the real store data path against the same loop fed from memory.

One run measures, on one device:
  * random batch reads from the store (chips/s): one ``__getitem__`` per chip,
    the trainer's batched reader in-process, and the DataLoader with workers;
  * the full GeoKR training step (augment, student forward/backward, teacher
    forward, Adam) fed by the store's DataLoader, and fed by batches already in
    memory; the ratio store/memory is the figure (goal >= 0.9 on a GPU).

CPU here:   python benchmarks/bench_train.py --build-store /tmp/bench.zarr \
                --source ../shared/data/zion/landsat8_zion_bgrn.tif --chip-size 64 \
                --arch resnet18 --batch-size 32 --precision fp32 --device cpu --workers 1
One GPU:    python benchmarks/bench_train.py --build-store /tmp/bench.zarr --source SCENE \
                --chip-size 256 --arch resnet50 --arch vgg16 --batch-size 128 \
                --precision bf16 --device cuda --workers 8

On a machine without rasterio, first write the scene as ``.npy`` here with
``--source SCENE.tif --export-npy scene.npy`` and pass that file as ``--source``.
``--build-store`` fills a store with random chip windows cut from a real scene
(``.tif`` through rasterio, or an ``(H, W, 3)`` uint8 ``.npy``) and a label set
with random proportions: the pixels (and so the compression) are real, the
labels do not matter for speed.  ``--store`` uses an existing labelled store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geokr_testkit.stores import scene_rgb, windows_store, write_label_set  # noqa: E402
from pipeline.store.chips import DEFAULT_SHARD_CHIPS, ChipStore  # noqa: E402
from pipeline.store.reader import ChipReader  # noqa: E402
from pipeline.versions import software_versions  # noqa: E402
from training import distributed as dist  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.loop import Trainer  # noqa: E402


def load_rgb(source: Path) -> np.ndarray:
    """(3, H, W) uint8 from an RGB(+NIR) raster (2-98 % stretch) or an ``.npy`` (H, W, 3)."""
    return np.load(source).transpose(2, 0, 1) if source.suffix == ".npy" else scene_rgb(source)


def build_store(path: Path, rgb: np.ndarray, n_chips: int, size: int, seed: int) -> None:
    """Random windows of ``rgb`` (two pseudo-scenes) and a random 8-class label set."""
    rng = np.random.default_rng(seed)
    store = windows_store(path, rgb, n_chips, size, rng, DEFAULT_SHARD_CHIPS)
    props = rng.dirichlet(np.full(8, 0.5), n_chips).astype(np.float32)
    write_label_set(store, "bench", props, np.ones(n_chips, bool))


def rate(fn: Any, n_items: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_items / statistics.median(times)


def bench_reads(store: Path, batch: int, repeats: int, seed: int) -> dict[str, float]:
    arr = ChipStore.open(store).array("chips")
    n = arr.shape[0]
    rng = np.random.default_rng(seed)
    direct, plain = ChipReader(store), ChipReader(store, direct=False)
    direct.read(rng.integers(0, n, 4))
    plain.read(rng.integers(0, n, 4))

    def per_chip() -> None:
        for i in rng.integers(0, n, batch):
            np.asarray(arr[int(i)])

    return {"zarr_getitem_per_chip": rate(per_chip, batch, repeats),
            "zarr_batched_concurrent": rate(lambda: plain.read(rng.integers(0, n, batch)),
                                            batch, repeats),
            "direct_shards" if direct.uses_shards else "reader":
                rate(lambda: direct.read(rng.integers(0, n, batch)), batch, repeats)}


def bench_loader(trainer: Trainer, steps: int) -> float:
    it = loop_batches(trainer)
    next(it)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * trainer.cfg.batch_size / (time.perf_counter() - t0)


def loop_batches(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        trainer.data.sampler.set_epoch(epoch)
        yield from trainer.data.train_loader
        epoch += 1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(trainer: Trainer, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                steps: int) -> float:
    """The trainer's own step (momentum updates and schedule included): images/s."""
    sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.one_step(*next(batches))
    sync(trainer.device)
    return steps * trainer.cfg.batch_size / (time.perf_counter() - t0)


def in_memory(trainer: Trainer, n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches read once, kept (pinned on CUDA) and replayed: a data path of zero cost."""
    src = loop_batches(trainer)
    pin = trainer.device.type == "cuda"
    kept = [tuple(t.pin_memory() if pin else t for t in next(src)) for _ in range(n)]
    i = 0
    while True:
        yield kept[i % n]  # type: ignore[misc]
        i += 1


def bench_arch(args: argparse.Namespace, arch: str, store: Path, out: Path) -> dict[str, Any]:
    cfg = TrainConfig(store=store, out=out / arch, arch=arch, batch_size=args.batch_size,
                      precision=args.precision, workers=args.workers, device=args.device,
                      compile=args.compile, val_fraction=0.0, log_every=10**9,
                      checkpoint_every=10**9)
    cfg.out.mkdir(parents=True, exist_ok=True)
    env = dist.DistEnv()
    device = dist.pick_device(args.device, env)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    trainer = Trainer(cfg, env, device)
    loader_rate = bench_loader(trainer, args.steps)
    memory = in_memory(trainer, 4)
    from_store = loop_batches(trainer)
    timed_steps(trainer, memory, args.warmup)
    timed_steps(trainer, from_store, args.warmup)
    mem_rates, store_rates = [], []
    for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
        mem_rates.append(timed_steps(trainer, memory, args.steps))
        store_rates.append(timed_steps(trainer, from_store, args.steps))
    mem, sto = statistics.median(mem_rates), statistics.median(store_rates)
    return {"arch": arch, "loader_chips_per_s": round(loader_rate, 1),
            "memory_images_per_s": round(mem, 1), "store_images_per_s": round(sto, 1),
            "ratio_store_over_memory": round(sto / mem, 3)}


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import os

    return f"CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def add_run_args(p: argparse.ArgumentParser, steps: int, warmup: int) -> None:
    """The store, precision and timing options both trainer benchmarks share."""
    p.add_argument("--build-store", type=Path, help="Build a benchmark store here.")
    p.add_argument("--source", type=Path, help="Scene (.tif or .npy) for --build-store.")
    p.add_argument("--n-chips", type=int, default=2048)
    p.add_argument("--chip-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice).")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, help="Existing labelled store.")
    p.add_argument("--arch", action="append", help="Repeatable (default resnet50).")
    add_run_args(p, steps=20, warmup=3)
    p.add_argument("--reads-only", action="store_true", help="Measure the data path only.")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    p.add_argument("--export-npy", type=Path,
                   help="Only write --source as an RGB uint8 .npy (for machines without GDAL).")
    args = p.parse_args()
    if args.export_npy:
        np.save(args.export_npy, load_rgb(args.source).transpose(1, 2, 0))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    store = args.store
    if store is None:
        if args.build_store is None or args.source is None:
            p.error("give --store, or --build-store with --source")
        if not args.build_store.exists():
            t0 = time.perf_counter()
            build_store(args.build_store, load_rgb(args.source), args.n_chips, args.chip_size,
                        args.seed)
            print(f"built {args.build_store} in {time.perf_counter() - t0:.1f} s", flush=True)
        store = args.build_store
    result: dict[str, Any] = {
        "device": device_name(args.device), "store": str(store),
        "chip_size": ChipStore.open(store).chip_size, "batch_size": args.batch_size,
        "precision": args.precision, "workers": args.workers, "compile": args.compile,
        "reads_chips_per_s": {k: round(v, 1) for k, v in
                              bench_reads(store, args.batch_size, 5, args.seed).items()},
        "versions": software_versions(), "runs": []}
    print(json.dumps({k: result[k] for k in ("device", "chip_size", "reads_chips_per_s")}),
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in [] if args.reads_only else args.arch or ["resnet50"]:
            run = bench_arch(args, arch, store, Path(tmp))
            result["runs"].append(run)
            print(json.dumps(run), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
