"""``geokr-eval detect``: object detection with CenterNet, the paper's Table VII."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from training.evaluation.backbones import InitSpec
from training.evaluation.cli_common import common_options, fail_on_input_error, train_config
from training.evaluation.detection.data import LEVIR_CLASSES
from training.evaluation.detection.fit import OPTIMIZERS, Schedule
from training.evaluation.detection.model import CenterNetConfig
from training.evaluation.detection.run import PAPER_FRACTIONS, DetectConfig, run_detect
from training.evaluation.detection.slicing import DEFAULT_KEEP, SliceSpec

_NET = CenterNetConfig()
_SCHEDULE = Schedule()


def with_defaults(**defaults: Any) -> Callable[[click.Command], click.Command]:
    """Task-specific defaults for the shared options (detection trains differently)."""
    def apply(command: click.Command) -> click.Command:
        for param in command.params:
            if param.name in defaults:
                param.default = defaults[param.name]
        return command
    return apply


def _names(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise click.BadParameter("expected comma-separated class names")
    return names


def _net_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """CenterNet's hyper-parameters, its paper's defaults."""
    options = [
        click.option("--neck-channels", default=_NET.neck_channels, show_default=True,
                     type=click.IntRange(1), help="Channels of each ×2 up-sampling stage."),
        click.option("--head-channels", default=_NET.head_channels, show_default=True,
                     type=click.IntRange(1)),
        click.option("--min-overlap", default=_NET.min_overlap, show_default=True,
                     type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="IoU kept by the Gaussian radius rule."),
        click.option("--focal-alpha", default=_NET.focal_alpha, show_default=True, type=float),
        click.option("--focal-beta", default=_NET.focal_beta, show_default=True, type=float),
        click.option("--size-weight", default=_NET.size_weight, show_default=True, type=float),
        click.option("--offset-weight", default=_NET.offset_weight, show_default=True,
                     type=float),
        click.option("--top-k", default=_NET.top_k, show_default=True, type=click.IntRange(1),
                     help="Detections kept per slice (also pycocotools' max detections)."),
        click.option("--peak-kernel", default=_NET.peak_kernel, show_default=True,
                     type=click.IntRange(1), help="Max-pool window of peak finding (odd)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@with_defaults(fractions=",".join(f"{f:g}" for f in PAPER_FRACTIONS), epochs=140, lr=5e-4,
               batch_size=32)
@click.command()
@common_options
@_net_options
@click.option("--slice-size", default=256, show_default=True, type=click.IntRange(32),
              help="Images are cut into square slices of this size (the paper: 256).")
@click.option("--slice-overlap", default=0, show_default=True, type=click.IntRange(0))
@click.option("--keep", default=DEFAULT_KEEP, show_default=True,
              type=click.FloatRange(0, 1, min_open=True),
              help="Keep a cut box in a slice when this share of its area is inside.")
@click.option("--levir-classes", default=",".join(LEVIR_CLASSES), show_default=True,
              callback=_names, help="Class names of Levir codes 1, 2, 3, ...")
@click.option("--val-every", default=_SCHEDULE.val_every, show_default=True,
              type=click.IntRange(1), help="Validate (and maybe select) every N epochs.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=_SCHEDULE.optimizer,
              show_default=True)
@click.option("--momentum", default=_SCHEDULE.momentum, show_default=True, type=float,
              help="SGD momentum.")
@click.option("--weight-decay", default=_SCHEDULE.weight_decay, show_default=True, type=float)
@click.option("--lr-step", default=_SCHEDULE.lr_step, show_default=True,
              type=click.IntRange(1), help="Epochs between learning-rate decays.")
@click.option("--lr-decay", default=_SCHEDULE.lr_decay, show_default=True, type=float,
              help="Learning-rate factor at each step (the paper: 0.95 every 200 epochs).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random flips and 90° rotations of the training slices.")
def detect(data: Path, out: Path, arch: str, inits: tuple[InitSpec, ...],
           fractions: tuple[float, ...], repeats: int, epochs: int, lr: float, batch_size: int,
           seed: int, device: str, neck_channels: int, head_channels: int, min_overlap: float,
           focal_alpha: float, focal_beta: float, size_weight: float, offset_weight: float,
           top_k: int, peak_kernel: int, slice_size: int, slice_overlap: int, keep: float,
           levir_classes: tuple[str, ...], val_every: int, optimizer: str, momentum: float,
           weight_decay: float, lr_step: int, lr_decay: float, augment: bool) -> None:
    """Object detection at label fractions, mAP@0.5 (the paper's Table VII).

    DATA is COCO (annotations.json + images/) or the Levir layout (each image beside a
    same-stem .txt of "CLASS XMIN YMIN XMAX YMAX" lines). Images are cut into slices;
    per repeat a 3:1:1 train/validation/test split by image, per fraction a nested
    subset of the training images; the checkpoint best on validation is tested.
    Writes results.jsonl (resume state), table.md/table.csv (mAP@0.5),
    table_coco.md/table_coco.csv (mAP@[.5:.95]), plot.png and run.json.
    """
    try:
        net = CenterNetConfig(
            neck_channels=neck_channels, head_channels=head_channels, min_overlap=min_overlap,
            focal_alpha=focal_alpha, focal_beta=focal_beta, size_weight=size_weight,
            offset_weight=offset_weight, top_k=top_k, peak_kernel=peak_kernel)
        schedule = Schedule(optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                            lr_step=lr_step, lr_decay=lr_decay, val_every=val_every,
                            augment=augment)
        cfg = DetectConfig(
            data=data, out=out, arch=arch, inits=inits, fractions=fractions, repeats=repeats,
            train=train_config(epochs, lr, batch_size, device), seed=seed,
            slices=SliceSpec(slice_size, slice_overlap, keep), levir_classes=levir_classes,
            net=net, schedule=schedule)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    fail_on_input_error(lambda: run_detect(cfg))
