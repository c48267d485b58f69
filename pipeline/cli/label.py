"""``geokr-etl label``: land-cover proportion vectors for every chip of a store.

Exit status (:mod:`pipeline.clierrors`): 0 done; 1 done, but some land-cover
rasters were unusable and left out, or the land cover overlaps no chip; 2
nothing (more) could be done (bad store, locked or read-only, bad option or
legend, bad codes, disk full); 130 interrupted (labelled chips are committed,
rerun to resume).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.clierrors import ExitCode, error_policy, store_state
from pipeline.hpc import ClusterOptions, cluster_options
from pipeline.landcover.run import LabelConfig, run_label


def _json_path(value: Path | None) -> Path | None:
    if value is not None and value.suffix != ".json":
        raise click.BadParameter(f"{value}: the tile catalog is a .json file")
    return value


@click.command()
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Chip store.")
@click.option(
    "--globeland30", "gl30", type=click.Path(path_type=Path),
    help="Folder of GlobeLand30 tiles (N50_30_2010LC030/n50_30_2010lc030.tif ...).",
)
@click.option(
    "--landcover", multiple=True,
    help="Land-cover raster: file, folder or glob; repeatable. Needs --legend.",
)
@click.option(
    "--legend", default=None,
    help="Legend name in catalogs/legends (globeland30, worldcover, nlcd, nlcd8) or a .yaml path.",
)
@click.option("--name", default=None, help="Label set name (default: legend[_year]).")
@click.option(
    "--classes", default="paper", show_default=True,
    help="paper (8 classes, no tundra/shrubland), all (10), or GlobeLand30 codes '10,20,60'.",
)
@click.option("--min-labeled", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Chips with a smaller labelled share of their area are invalid.")
@click.option("--oversample", default=8, show_default=True, type=click.IntRange(1),
              help="Samples per land-cover pixel width when subsampling chip pixels.")
@click.option("--step", default=None, type=click.IntRange(1),
              help="Sampling step in chip pixels for rotated chips (default: from --oversample).")
@click.option("--workers", default=None, type=click.IntRange(0),
              help="Local dask workers (default: all cores; 0: no dask, this process).")
@click.option("--scheduler", default=None, help="Address of a running dask scheduler.")
@cluster_options
@click.option("--tile-index", type=click.Path(path_type=Path, dir_okay=False), default=None,
              callback=lambda _c, _p, v: _json_path(v),
              help="JSON tile catalog (.json) to reuse or write (default: kept in the store).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@error_policy("labelled chips are committed; rerun the same command to resume", store_state)
def label(
    store: Path, gl30: Path | None, landcover: tuple[str, ...], legend: str | None,
    name: str | None, classes: str, min_labeled: float, oversample: int, step: int | None,
    cluster: ClusterOptions, tile_index: Path | None, quiet: bool,
) -> ExitCode:
    """Label chips with the proportion of each land-cover class on their ground."""
    if bool(gl30) == bool(landcover):
        raise click.UsageError("give either --globeland30 DIR or --landcover PATH ... --legend")
    if landcover and not legend:
        raise click.UsageError("--landcover needs --legend")
    cfg = LabelConfig(
        store=store, sources=[str(gl30)] if gl30 else list(landcover),
        legend=legend or "globeland30", name=name, classes=classes, min_labeled=min_labeled,
        oversample=oversample, step=step, workers=cluster.workers, scheduler=cluster.scheduler,
        cluster=cluster.cluster, cluster_config=cluster.config, jobs=cluster.jobs,
        progress=not quiet, tile_index=tile_index,
    )
    report = run_label(cfg)
    click.echo(report.summary("chips_labelled"))
    if report.interrupted:
        return ExitCode.INTERRUPTED
    partial = report.counts["tiles_failed"] or report.counts["landcover_overlaps_no_chip"]
    return ExitCode.PARTIAL if partial else ExitCode.OK
