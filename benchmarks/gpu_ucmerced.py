"""Validate the evaluation harness against a published table, on one GPU.

Reproduces the random-initialisation ResNet50 row of Table IV of Li et al. (GeoKR):
UC Merced, full fine-tuning for 200 epochs, mean class accuracy at 5/10/20/50/100 %
of the training part. Runs the same code as ``geokr-eval classify --mode finetune``:
the whole data set is decoded once into a uint8 tensor in GPU memory, augmented on the
GPU, and trained channels-last under bf16 autocast.

    python benchmarks/gpu_ucmerced.py --out gpu_ucmerced.md            # the paper's setting
    python benchmarks/gpu_ucmerced.py --out t.md --epochs 50 --repeats 1 --fractions 0.05,1.0

Every finished cell is appended to ``<work>/results.jsonl`` at once; a rerun with the
same settings resumes, and SIGTERM (e.g. ``timeout``) still writes the table of the
cells done.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.evaluation.backbones import InitSpec  # noqa: E402
from training.evaluation.classify import ClassifyConfig, run_classify  # noqa: E402
from training.evaluation.finetune import FinetuneConfig  # noqa: E402
from training.evaluation.protocol import parse_fractions  # noqa: E402
from training.evaluation.results import ResultsFile  # noqa: E402
from training.evaluation.tables import fraction_label, summarise  # noqa: E402

PAPER_RANDOM_RESNET50 = {0.05: 0.4247, 0.1: 0.5238, 0.2: 0.6362, 0.5: 0.7689, 1.0: 0.9105}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Markdown result table to write.")
    p.add_argument("--work", type=Path, default=None,
                   help="Harness outputs and resume state (default: <out stem>_run/).")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ucmerced")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fractions", default="0.05,0.1,0.2,0.5,1.0")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--max-per-class", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=16, help="Threads decoding JPEGs.")
    return p.parse_args(argv)


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the harness records what is done and writes the table


def comparison(records: list[dict[str, object]], fractions: tuple[float, ...]) -> str:
    table = summarise(records, ["random"], fractions)
    lines = ["| fraction | harness (mean ± std) | repeats | paper | difference | "
             "seconds per cell |", "|---|---|---|---|---|---|"]
    for f in fractions:
        cell = table.get(("random", f))
        secs = [float(str(r["seconds"])) for r in records if r["fraction"] == f]
        paper = PAPER_RANDOM_RESNET50.get(f)
        diff = f"{cell.mean - paper:+.4f}" if cell and paper is not None else "–"
        lines.append(f"| {fraction_label(f)} | {cell or '–'} | {cell.n if cell else 0} | "
                     f"{paper if paper is not None else '–'} | {diff} | "
                     f"{sum(secs) / len(secs):.1f} |" if secs else
                     f"| {fraction_label(f)} | – | 0 | {paper or '–'} | – | – |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    work = args.work or args.out.with_name(args.out.stem + "_run")
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    cfg = ClassifyConfig(
        data=args.data, out=work, arch=args.arch, inits=(InitSpec("random"),),
        fractions=parse_fractions(args.fractions), repeats=args.repeats, mode="finetune",
        train=FinetuneConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                          device=args.device),
        image_size=args.image_size, max_per_class=args.max_per_class, seed=args.seed,
        workers=args.workers)
    t0 = time.monotonic()
    table, report = run_classify(cfg)
    wall = time.monotonic() - t0
    records = ResultsFile(work / "results.jsonl").current(cfg.fingerprints())
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    text = (f"UC Merced, {args.arch} from random initialisation, {args.epochs} epochs, "
            f"batch {args.batch_size}, Adam lr {args.lr}, {args.image_size} px, "
            f"{args.repeats} repeat(s), seed {args.seed}; device {device}, torch "
            f"{torch.__version__}; wall {wall:.0f} s"
            f"{' (interrupted)' if report.interrupted else ''}.\n\n"
            + comparison(records, cfg.fractions) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(table)
    print(text)
    return 130 if report.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
