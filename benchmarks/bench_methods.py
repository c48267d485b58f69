"""Training-step throughput of every pre-training method, relative to GeoKR, in one run.

Same store, model, batch and precision for every method; each method's full step
(augmentation, forward and backward, momentum updates, optimiser) is timed fed from
batches already in memory (the compute cost) and fed from the store's DataLoader (the
real data path); the figures are images/s (chips, not views), each method's ratio to
GeoKR, and each method's store/memory ratio (goal >= 0.9 on a GPU).  The two-view
methods run about twice the forward passes per chip (SimCLR and BYOL one 2N batch,
MoCo N queries plus N keys without gradient); that is what the ratio shows.

CPU here:   python benchmarks/bench_methods.py --build-store /tmp/bench-m.zarr \\
                --source ../shared/data/zion/landsat8_zion_bgrn.tif --chip-size 64 \\
                --arch resnet18 --batch-size 32 --precision fp32 --device cpu --workers 1
One GPU:    see benchmarks/gpu_methods.sh (ResNet50, 256 px, batch 128, bf16).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_train import (  # noqa: E402
    add_run_args,
    build_store,
    device_name,
    in_memory,
    load_rgb,
    loop_batches,
    timed_steps,
)

from pipeline.versions import software_versions  # noqa: E402
from training import distributed as dist  # noqa: E402
from training.config import METHODS, TrainConfig  # noqa: E402
from training.loop import Trainer  # noqa: E402


def method_trainer(args: argparse.Namespace, method: str, store: Path, out: Path) -> Trainer:
    cfg = TrainConfig(store=store, out=out / method, method=method, labels="bench",
                      arch=args.arch, batch_size=args.batch_size, precision=args.precision,
                      workers=args.workers, device=args.device, compile=args.compile,
                      val_fraction=0.0, log_every=10**9, checkpoint_every=10**9,
                      warmup_epochs=0.0, queue_size=args.batch_size * 64)
    cfg.out.mkdir(parents=True, exist_ok=True)
    env = dist.DistEnv()
    return Trainer(cfg, env, dist.pick_device(args.device, env))


def bench(args: argparse.Namespace, store: Path, out: Path) -> list[dict[str, Any]]:
    trainers = {m: method_trainer(args, m, store, out) for m in args.method or METHODS}
    feeds = {m: (in_memory(t, 4), loop_batches(t)) for m, t in trainers.items()}
    for m, t in trainers.items():
        timed_steps(t, feeds[m][0], args.warmup)
        timed_steps(t, feeds[m][1], args.warmup)
    mem: dict[str, list[float]] = {m: [] for m in trainers}
    sto: dict[str, list[float]] = {m: [] for m in trainers}
    for _ in range(args.rounds):  # interleaved, so machine noise hits every method alike
        for m, t in trainers.items():
            mem[m].append(timed_steps(t, feeds[m][0], args.steps))
            sto[m].append(timed_steps(t, feeds[m][1], args.steps))
    base = statistics.median(mem.get("geokr") or next(iter(mem.values())))
    rows = []
    for m in trainers:
        mm, ss = statistics.median(mem[m]), statistics.median(sto[m])
        rows.append({"method": m, "memory_images_per_s": round(mm, 1),
                     "store_images_per_s": round(ss, 1),
                     "ratio_to_geokr_memory": round(mm / base, 3),
                     "ratio_store_over_memory": round(ss / mm, 3)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, help="Existing store with a label set 'bench'.")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--method", action="append", choices=METHODS, help="Repeatable (all).")
    add_run_args(p, steps=10, warmup=2)
    p.add_argument("--json", type=Path, help="Also write the results here.")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    store = args.store
    if store is None:
        if args.build_store is None or args.source is None:
            p.error("give --store, or --build-store with --source")
        if not args.build_store.exists():
            build_store(args.build_store, load_rgb(args.source), args.n_chips, args.chip_size,
                        args.seed)
        store = args.build_store
    result: dict[str, Any] = {
        "device": device_name(args.device), "arch": args.arch, "batch_size": args.batch_size,
        "precision": args.precision, "workers": args.workers, "store": str(store),
        "versions": software_versions()}
    with tempfile.TemporaryDirectory() as tmp:
        result["runs"] = bench(args, store, Path(tmp))
    for row in result["runs"]:
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
