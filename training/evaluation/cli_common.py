"""Options and error handling shared by the ``geokr-eval`` subcommands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch

from pipeline.clierrors import ExitCode, error_policy
from training.evaluation.backbones import InitSpec
from training.evaluation.finetune import FinetuneConfig
from training.evaluation.protocol import parse_fractions


def _inits(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
           ) -> tuple[InitSpec, ...]:
    try:
        return tuple(InitSpec.parse(v) for v in values) or (InitSpec("random"),)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _fractions(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        return parse_fractions(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _device(value: str) -> str:
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every downstream task shares: the comparison and the training."""
    options = [
        click.option("--data", type=click.Path(exists=True, path_type=Path), required=True,
                     help="Input data (see the subcommand's help for the layouts)."),
        click.option("--out", type=click.Path(path_type=Path), required=True,
                     help="Output folder; rerunning with the same folder resumes."),
        click.option("--arch", default="resnet50", show_default=True,
                     help="torchvision architecture of every backbone."),
        click.option("--init", "inits", multiple=True, callback=_inits,
                     help="random, or NAME=WEIGHTS (a torchvision state dict); repeatable."),
        click.option("--fractions", default="0.05,0.1,0.2,0.5,1.0", show_default=True,
                     callback=_fractions, help="Label fractions of the training part."),
        click.option("--repeats", default=3, show_default=True, type=click.IntRange(1)),
        click.option("--epochs", default=200, show_default=True, type=click.IntRange(1)),
        click.option("--lr", default=1e-3, show_default=True, type=float),
        click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2)),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--device", default="auto", show_default=True,
                     help="auto, cpu, cuda or cuda:N."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def train_config(epochs: int, lr: float, batch_size: int, device: str) -> FinetuneConfig:
    return FinetuneConfig(epochs=epochs, lr=lr, batch_size=batch_size, device=_device(device))


RESUME = "finished cells are recorded in results.jsonl; rerun the same command to resume"


def fail_on_input_error(fn: Callable[[], tuple[str, Any]]) -> None:
    """Run a task under the shared error policy (:mod:`pipeline.clierrors`): print the
    table, or one line naming the bad input (exit 2); 130 when interrupted."""

    @error_policy(RESUME)
    def run() -> ExitCode:
        try:
            table, report = fn()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        click.echo(table)
        click.echo(report.summary("cells_done"), err=True)
        return ExitCode.INTERRUPTED if report.interrupted else ExitCode.OK

    run()
