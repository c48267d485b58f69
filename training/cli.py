"""``geokr-train``: pre-training from a chip store, one GPU to many, by one of five methods.

GeoKR (the default) and its classification ablation learn from a label set; SimCLR,
MoCo v2 and BYOL need none.  Options left unset take the chosen method's published
default (:mod:`training.config`).

Multi-GPU and multi-node runs are launched by ``torchrun`` (or ``srun`` with
MASTER_ADDR/MASTER_PORT exported); this command never spawns processes itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.clierrors import error_policy
from pipeline.errors import InputError
from training.config import METHODS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from training.distributed import detect

D = TrainConfig.__dataclass_fields__


METHOD_DEFAULT = "per --method (see README)"


def default(name: str) -> Any:
    return D[name].default


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--store", type=click.Path(path_type=Path), required=True,
              help="Chip store written by geokr-etl tile/label.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run directory: checkpoints, backbones, model card, metrics.")
@click.option("--method", type=click.Choice(METHODS), default=default("method"),
              help="geokr and classification need a label set; simclr, mocov2, byol do not.")
@click.option("--labels", default=None, help="Label set name (labels/<NAME>); "
              "optional for geokr/classification when the store holds exactly one. For "
              "simclr/mocov2/byol it restricts training to its valid chips and adds a kNN "
              "check on held-out chips' dominant class.")
@click.option("--arch", default=default("arch"), help="Any torchvision classification model.")
@click.option("--epochs", type=int, default=default("epochs"))
@click.option("--batch-size", type=int, default=default("batch_size"),
              help="Per process; the global batch is this times the number of processes.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
              show_default=METHOD_DEFAULT)
@click.option("--lr", type=float, default=None, show_default=METHOD_DEFAULT,
              help="Learning rate (per 256 images of global batch with --lr-scaling linear).")
@click.option("--lr-scaling", type=click.Choice(["none", "linear"]), default=None,
              show_default=METHOD_DEFAULT)
@click.option("--lr-decay", type=float, default=default("lr_decay"),
              help="Learning rate factor applied after every epoch (--schedule exp).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              show_default=METHOD_DEFAULT, help="exp: per epoch; cosine: per step, to 0.")
@click.option("--warmup-epochs", type=float, default=None, show_default=METHOD_DEFAULT,
              help="Linear warm-up (--schedule cosine).")
@click.option("--weight-decay", type=float, default=None, show_default=METHOD_DEFAULT)
@click.option("--momentum", type=float, default=default("momentum"), help="SGD/LARS momentum.")
@click.option("--teacher-interval", type=int, default=default("teacher_interval"),
              help="Update the teacher every this many global steps.")
@click.option("--alpha", type=float, default=default("alpha"), help="Teacher EMA factor.")
@click.option("--gamma1", type=float, default=default("gamma1"), help="Weight of Ls.")
@click.option("--gamma2", type=float, default=default("gamma2"),
              help="Weight of Lt; 0 = proportions only, no teacher (Table X 'representation').")
@click.option("--temperature", type=float, default=None, show_default=METHOD_DEFAULT,
              help="NT-Xent / InfoNCE temperature (simclr, mocov2).")
@click.option("--proj-hidden", type=int, default=None, show_default=METHOD_DEFAULT,
              help="Projection head hidden width (0: the encoder's feature width).")
@click.option("--proj-dim", type=int, default=None, show_default=METHOD_DEFAULT,
              help="Projection head output width.")
@click.option("--pred-hidden", type=int, default=None, show_default=METHOD_DEFAULT,
              help="BYOL predictor hidden width.")
@click.option("--queue-size", type=int, default=default("queue_size"),
              help="MoCo queue length (a multiple of the global batch).")
@click.option("--ema", type=float, default=None, show_default=METHOD_DEFAULT,
              help="Momentum of the key (mocov2) or target (byol, start of its cosine) net.")
@click.option("--ema-end", type=float, default=None, show_default=METHOD_DEFAULT,
              help="BYOL target momentum at the end of the run.")
@click.option("--crop-scale", type=float, default=None, show_default=METHOD_DEFAULT,
              help="Smallest area fraction of the random resized crop (two-view methods).")
@click.option("--jitter", default=None, show_default=METHOD_DEFAULT,
              help="Colour jitter brightness,contrast,saturation,hue (two-view methods).")
@click.option("--jitter-p", type=float, default=default("jitter_p"))
@click.option("--grayscale-p", type=float, default=default("grayscale_p"))
@click.option("--blur-p", default=None, show_default=METHOD_DEFAULT,
              help="Gaussian blur probability of view 1,view 2.")
@click.option("--blur-sigma", default=default("blur_sigma"), help="Blur sigma range min,max.")
@click.option("--solarize-p", default=None, show_default=METHOD_DEFAULT,
              help="Solarisation probability of view 1,view 2.")
@click.option("--knn-k", type=int, default=default("knn_k"),
              help="Neighbours of the kNN check (SSL methods with --labels).")
@click.option("--knn-t", type=float, default=default("knn_t"), help="kNN vote temperature.")
@click.option("--knn-bank", type=int, default=default("knn_bank"),
              help="Training chips in the kNN bank (and most held-out chips checked).")
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
    """Pre-train a backbone: GeoKR (Li et al. 2021) on land-cover proportions, its
    ablations, or the SimCLR / MoCo v2 / BYOL baselines on the same chips."""
    try:
        cfg = TrainConfig(compile=compile_, **kwargs)
    except ValueError as exc:
        raise InputError("arguments", str(exc)) from None
    from training.loop import train

    metrics = train(cfg)
    if detect().is_main:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        click.echo(f"done: {cfg.out} ({shown})", err=True)


if __name__ == "__main__":
    main()
