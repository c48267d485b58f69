"""``geokr-eval classify``: scene classification, the paper's Table IV."""

from __future__ import annotations

from pathlib import Path

import click

from training.evaluation.backbones import InitSpec
from training.evaluation.classify import MODES, ClassifyConfig, run_classify
from training.evaluation.cli_common import common_options, fail_on_input_error, train_config


@click.command()
@common_options
@click.option("--mode", type=click.Choice(MODES), default="finetune", show_default=True,
              help="finetune: full fine-tuning; linear/knn: frozen features (quick CPU checks).")
@click.option("--image-size", default=224, show_default=True, type=click.IntRange(32),
              help="Model input size; other sizes are resized and centre-cropped.")
@click.option("--max-per-class", type=click.IntRange(2), default=None,
              help="Use at most this many images per class (sorted by name).")
@click.option("--k", default=20, show_default=True, type=click.IntRange(1),
              help="Neighbours for --mode knn.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1),
              help="Threads decoding images.")
def classify(data: Path, out: Path, arch: str, inits: tuple[InitSpec, ...],
             fractions: tuple[float, ...], repeats: int, epochs: int, lr: float,
             batch_size: int, seed: int, device: str, mode: str, image_size: int,
             max_per_class: int | None, k: int, workers: int) -> None:
    """Scene classification at label fractions (the paper's Table IV).

    DATA is an ImageFolder (DATA/<class>/<image>). Per repeat a stratified 3:1
    train/test split, per fraction a stratified subset of the training part; metric:
    mean per-class top-1 accuracy, mean ± std over repeats.
    Writes results.jsonl (resume state), table.csv, table.md, plot.png and run.json.
    """
    cfg = ClassifyConfig(
        data=data, out=out, arch=arch, inits=inits, fractions=fractions, repeats=repeats,
        mode=mode, train=train_config(epochs, lr, batch_size, device), image_size=image_size,
        max_per_class=max_per_class, seed=seed, k=k, workers=workers)
    fail_on_input_error(lambda: run_classify(cfg))
