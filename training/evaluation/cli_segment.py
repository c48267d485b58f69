"""``geokr-eval segment`` and ``geokr-eval prepare-zion``: the paper's Tables V–IX."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.clierrors import error_policy
from training.evaluation.backbones import InitSpec
from training.evaluation.cli_common import common_options, fail_on_input_error, train_config
from training.evaluation.segdata import NpzSpec
from training.evaluation.segment import MODES, SegmentConfig, run_segment
from training.evaluation.zion import prepare_zion as _prepare_zion


def _bands(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int, int]:
    try:
        r, g, b = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected three band indices R,G,B") from None
    return r, g, b


@click.command()
@common_options
@click.option("--mode", type=click.Choice(MODES), default="finetune", show_default=True,
              help="finetune: encoder and decoder; frozen: decoder only (quick CPU check).")
@click.option("--tile-size", default=128, show_default=True, type=click.IntRange(32),
              help="Square tiles cut from each image/mask pair.")
@click.option("--max-tiles-per-file", type=click.IntRange(1), default=None,
              help="Use at most this many tiles per file, spread over it.")
@click.option("--npz-rgb", default="2,1,0", show_default=True, callback=_bands,
              help="npz img band indices of red, green, blue (cloud masks: blue,green,red,...).")
@click.option("--npz-scale", default=1.0, show_default=True, type=float,
              help="npz reflectance mapped to 255; the same for every file.")
@click.option("--npz-positive", default=4, show_default=True, type=int,
              help="npz mask code of the positive class (cloud = 4); all others negative.")
def segment(data: Path, out: Path, arch: str, inits: tuple[InitSpec, ...],
            fractions: tuple[float, ...], repeats: int, epochs: int, lr: float,
            batch_size: int, seed: int, device: str, mode: str, tile_size: int,
            max_tiles_per_file: int | None, npz_rgb: tuple[int, int, int], npz_scale: float,
            npz_positive: int) -> None:
    """Segmentation and cloud detection at label fractions, mIoU (Tables V–IX).

    DATA holds images/ and masks/ with the same stems (GeoTIFF or PNG; mask nodata is
    ignored; optional classes.json names the codes), or .npz files with img and msk.
    Splits are stratified by each tile's dominant class.
    """
    cfg = SegmentConfig(
        data=data, out=out, arch=arch, inits=inits, fractions=fractions, repeats=repeats,
        mode=mode, train=train_config(epochs, lr, batch_size, device), tile_size=tile_size,
        max_tiles_per_file=max_tiles_per_file,
        npz=NpzSpec(rgb_bands=npz_rgb, scale=npz_scale, positive=npz_positive), seed=seed)
    fail_on_input_error(lambda: run_segment(cfg))


@click.command("prepare-zion")
@click.option("--zion", "zion_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Folder with landsat8_zion_bgrn.tif and nlcd.tif.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@error_policy("rerun the same command")
def prepare_zion(zion_dir: Path, out: Path) -> None:
    """Zion land cover for `segment`: the scene as 8-bit RGB, NLCD on its grid."""
    image, mask = _prepare_zion(zion_dir, out)
    click.echo(f"wrote {image} and {mask}")
