"""The paper's Table VII protocol on one GPU: CenterNet, random vs a pre-trained backbone.

Runs the same code as ``geokr-eval detect`` (slices as uint8 in GPU memory, targets
encoded on the GPU, channels-last under bf16 autocast) on a detection folder: a real
one (Levir, or any COCO-layout set) or a set this script generates from UC Merced with
pasted objects of known boxes.

    # the generated set, random init vs a GeoKR (or ImageNet) ResNet50
    python benchmarks/gpu_detect.py --generate --init geokr=run/teacher_backbone.pth \\
        --out gpu_detect.md
    # Levir (images beside their .txt files), the paper's schedule
    python benchmarks/gpu_detect.py --data LEVIR/ --init geokr=run/teacher_backbone.pth \\
        --epochs 1000 --lr 0.005 --out levir.md
    # the plumbing on a CPU in a minute
    python benchmarks/gpu_detect.py --generate --smoke --out /tmp/smoke.md

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
from training.evaluation.detection.fit import Schedule  # noqa: E402
from training.evaluation.detection.model import CenterNetConfig  # noqa: E402
from training.evaluation.detection.run import DetectConfig, run_detect  # noqa: E402
from training.evaluation.detection.slicing import SliceSpec  # noqa: E402
from training.evaluation.detection.synthetic import make_synthetic  # noqa: E402
from training.evaluation.finetune import FinetuneConfig  # noqa: E402
from training.evaluation.protocol import parse_fractions  # noqa: E402

SMOKE = {"arch": "resnet18", "images": 10, "image_size": 64, "slice_size": 64, "epochs": 2,
         "val_every": 1, "repeats": 1, "fractions": "1.0", "batch_size": 8,
         "neck_channels": 16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Markdown result table to write.")
    p.add_argument("--work", type=Path, default=None,
                   help="Harness outputs and resume state (default: <out stem>_run/).")
    p.add_argument("--data", type=Path, default=None,
                   help="Detection folder (COCO or Levir layout); with --generate, where "
                        "the generated set goes (default: <work>/synthetic).")
    p.add_argument("--generate", action="store_true",
                   help="Build the set from UC Merced scenes with pasted objects first.")
    p.add_argument("--ucmerced", type=Path, default=REPO.parent / "shared" / "data" / "ucmerced")
    p.add_argument("--images", type=int, default=2100, help="Generated images.")
    p.add_argument("--image-size", type=int, default=256, help="Generated image size.")
    p.add_argument("--init", action="append", default=[],
                   help="NAME=WEIGHTS of a pre-trained backbone (random is always run).")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--epochs", type=int, default=140)
    p.add_argument("--val-every", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fractions", default="0.005,0.01,0.05,0.1,0.5,1.0")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lr-step", type=int, default=200)
    p.add_argument("--lr-decay", type=float, default=0.95)
    p.add_argument("--slice-size", type=int, default=256)
    p.add_argument("--neck-channels", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true",
                   help="Tiny settings that check the whole path on a CPU in about a minute.")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the harness records what is done and writes the table


def config(args: argparse.Namespace, data: Path, work: Path) -> DetectConfig:
    inits = (InitSpec("random"), *(InitSpec.parse(text) for text in args.init))
    return DetectConfig(
        data=data, out=work, arch=args.arch, inits=inits,
        fractions=parse_fractions(args.fractions), repeats=args.repeats,
        train=FinetuneConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                          device=args.device),
        seed=args.seed, slices=SliceSpec(size=args.slice_size),
        net=CenterNetConfig(neck_channels=args.neck_channels),
        schedule=Schedule(lr_step=args.lr_step, lr_decay=args.lr_decay,
                          val_every=args.val_every))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    work = args.work or args.out.with_name(args.out.stem + "_run")
    data = args.data or work / "synthetic"
    if args.generate and not (data / "annotations.json").is_file():
        make_synthetic(args.ucmerced, data, n_images=args.images, image_size=args.image_size,
                       seed=args.seed)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    cfg = config(args, data, work)
    t0 = time.monotonic()
    table, report = run_detect(cfg)
    wall = time.monotonic() - t0
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    source = (f"generated from UC Merced ({args.images} images, {args.image_size} px)"
              if args.generate else str(data))
    text = (f"Detection set: {source}. CenterNet on {args.arch}, {args.epochs} epochs "
            f"(validation every {args.val_every}), batch {args.batch_size}, Adam lr "
            f"{args.lr} × {args.lr_decay} every {args.lr_step} epochs, {args.slice_size} px "
            f"slices, {args.repeats} repeat(s), seed {args.seed}; device {device}, torch "
            f"{torch.__version__}; wall {wall:.0f} s"
            f"{' (interrupted)' if report.interrupted else ''}.\n\n"
            + (work / "table.md").read_text() + "\n" + (work / "table_coco.md").read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(table)
    print(text)
    return 130 if report.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
