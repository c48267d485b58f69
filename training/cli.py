"""``geokr-train``: GeoKR mean-teacher pre-training from a chip store, one GPU to many.

Multi-GPU and multi-node runs are launched by ``torchrun`` (or ``srun`` with
MASTER_ADDR/MASTER_PORT exported); this command never spawns processes itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.clierrors import error_policy
from training.config import PRECISIONS, TrainConfig
from training.distributed import detect

D = TrainConfig.__dataclass_fields__


def default(name: str) -> Any:
    return D[name].default


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--store", type=click.Path(path_type=Path), required=True,
              help="Chip store written by geokr-etl tile/label.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run directory: checkpoints, backbones, model card, metrics.")
@click.option("--labels", default=None, help="Label set name (labels/<NAME>); "
              "optional when the store holds exactly one.")
@click.option("--arch", default=default("arch"), help="Any torchvision classification model.")
@click.option("--epochs", type=int, default=default("epochs"))
@click.option("--batch-size", type=int, default=default("batch_size"),
              help="Per process; the global batch is this times the number of processes.")
@click.option("--lr", type=float, default=default("lr"), help="Adam learning rate.")
@click.option("--lr-decay", type=float, default=default("lr_decay"),
              help="Learning rate factor applied after every epoch.")
@click.option("--teacher-interval", type=int, default=default("teacher_interval"),
              help="Update the teacher every this many global steps.")
@click.option("--alpha", type=float, default=default("alpha"), help="Teacher EMA factor.")
@click.option("--gamma1", type=float, default=default("gamma1"), help="Weight of Ls.")
@click.option("--gamma2", type=float, default=default("gamma2"), help="Weight of Lt.")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Start the backbone from this weights file (e.g. ImageNet).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=default("precision"))
@click.option("--workers", type=int, default=default("workers"),
              help="Data loader processes per training process.")
@click.option("--resume", is_flag=True,
              help="Continue from the newest checkpoint in --out (fresh start if none).")
@click.option("--max-steps", type=int, default=None, help="Stop after this global step.")
@click.option("--checkpoint-every", type=int, default=default("checkpoint_every"),
              help="Also checkpoint every this many steps (and at every epoch end).")
@click.option("--keep-checkpoints", type=int, default=default("keep_checkpoints"))
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the student.")
@click.option("--device", default=default("device"), help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=default("seed"))
@click.option("--val-fraction", type=float, default=default("val_fraction"),
              help="Fraction of scenes held out for validation (0 disables).")
@click.option("--log-every", type=int, default=default("log_every"),
              help="Steps between metric rows (each costs one device sync).")
@click.option("--norm", type=click.Choice(["store", "imagenet"]), default=default("norm"),
              help="Normalisation statistics: measured on training chips, or ImageNet's.")
@click.option("--epoch-size", type=int, default=None,
              help="Chips drawn per epoch (default: the number of training chips).")
@error_policy("the last checkpoint is kept; rerun with --resume to continue")
def main(compile_: bool, **kwargs: Any) -> None:
    """Pre-train a backbone with GeoKR (Li et al. 2021) on land-cover proportions."""
    try:
        cfg = TrainConfig(compile=compile_, **kwargs)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    from training.loop import train

    metrics = train(cfg)
    if detect().is_main:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        click.echo(f"done: {cfg.out} ({shown})", err=True)
