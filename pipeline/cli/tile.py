"""``geokr-etl tile``.

Exit status (:mod:`pipeline.clierrors`): 0 every scene tiled (or already in
the store); 1 some scenes failed (the others are in the store); 2 nothing
(more) could be done (bad store, store locked or read-only, bad option, disk
full); 130 interrupted (finished scenes are committed, rerun to resume).
"""

from __future__ import annotations

import click

from pipeline.clierrors import ExitCode, error_policy, store_state
from pipeline.filters import FilterParams
from pipeline.hpc import ClusterOptions, Part, cluster_options, open_client, part_option
from pipeline.nodata import NodataChoice
from pipeline.tiling import TileParams, run_tile

RESUME = "finished scenes are committed; rerun the same command to resume"


def _stretch(
    _ctx: click.Context, _param: click.Parameter, value: tuple[float, float]
) -> tuple[float, float]:
    low, high = value
    if not 0 <= low < high <= 100:
        raise click.BadParameter(f"{low:g} {high:g}: need 0 <= LOW < HIGH <= 100")
    return low, high


def _nodata(_ctx: click.Context, _param: click.Parameter, value: str | None) -> NodataChoice | None:
    try:
        return None if value is None else NodataChoice.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.option(
    "--scenes",
    "scenes",
    multiple=True,
    required=True,
    help="Scene file, folder or glob; repeatable. Any GDAL raster.",
)
@click.option(
    "--store", required=True, type=click.Path(), help="Zarr chip store (created if missing)."
)
@click.option(
    "--sensor",
    default=None,
    help="Sensor profile name or YAML path (catalogs/sensors); inferred when unambiguous.",
)
@click.option("--chip-size", default=256, show_default=True, type=click.IntRange(8))
@click.option(
    "--overlap", default=0.2, show_default=True, type=click.FloatRange(0, 1, max_open=True)
)
@click.option(
    "--cloud-brightness",
    default=230,
    show_default=True,
    type=click.IntRange(0, 255),
    help="8-bit brightness above which a pixel counts as cloud.",
)
@click.option(
    "--max-cloud",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Drop chips whose cloud fraction exceeds this.",
)
@click.option(
    "--max-nodata",
    default=0.01,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Drop chips whose nodata fraction exceeds this.",
)
@click.option(
    "--low-contrast",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="skimage is_low_contrast fraction threshold.",
)
@click.option(
    "--stretch",
    nargs=2,
    type=float,
    default=(2.0, 98.0),
    show_default=True,
    callback=_stretch,
    metavar="LOW HIGH",
    help="Percentiles of the per-scene 16-bit/float → 8-bit stretch.",
)
@click.option(
    "--nodata",
    default=None,
    metavar="VALUE|none",
    callback=_nodata,
    help="Fill value: a pixel whose RGB bands all hold it is nodata (stretch, mask, "
    "filter). Default: the file's nodata tag, else the sensor profile's (0 for Gaofen, "
    "Landsat, Sentinel-2); 'none': no value is nodata.",
)
@click.option(
    "--shard-chips",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Chips per shard file of a new store.",
)
@click.option(
    "--commit-interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between commits of finished scenes.",
)
@click.option(
    "--gdal-cache-mb",
    default=256,
    show_default=True,
    type=click.IntRange(16),
    help="GDAL block cache per worker process, MB.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Worker processes of the embedded cluster (default: all cores).",
)
@click.option("--scheduler", default=None, help="Address of an existing dask scheduler.")
@cluster_options
@part_option
@click.option("--progress/--no-progress", default=True)
@error_policy(RESUME, store_state)
def tile(
    scenes: tuple[str, ...],
    store: str,
    sensor: str | None,
    chip_size: int,
    overlap: float,
    cloud_brightness: int,
    max_cloud: float,
    max_nodata: float,
    low_contrast: float,
    stretch: tuple[float, float],
    nodata: NodataChoice | None,
    shard_chips: int,
    commit_interval: float,
    gdal_cache_mb: int,
    cluster: ClusterOptions,
    part: Part | None,
    progress: bool,
) -> ExitCode:
    """Cut scenes into overlapping chips, drop cloudy/low-contrast/nodata ones, store them."""
    params = TileParams(
        chip_size=chip_size,
        overlap=overlap,
        filters=FilterParams(cloud_brightness, max_cloud, max_nodata, low_contrast),
        percentiles=stretch,
        commit_interval=commit_interval,
        shard_chips=shard_chips,
        gdal_cache_mb=gdal_cache_mb,
        nodata=nodata,
    )
    with open_client(cluster) as client:
        report = run_tile(store, list(scenes), client, params, sensor, progress, part)
    click.echo(report.summary("chips_written"))
    return ExitCode.PARTIAL if report.counts["scenes_failed"] else ExitCode.OK
