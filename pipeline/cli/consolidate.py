"""``geokr-etl consolidate``: the closing step of a job-array run (``--part i/n``).

Exit status: 0 every part merged (or merged before); 1 a part is missing or
unfinished (parts before it are merged; rerun when it is done); 2 nothing
could be done (no part stores, store locked, mixed splits); 130 interrupted
(merged parts are committed, rerun to resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.errors import InputError
from pipeline.hpc.consolidate import consolidate as merge_parts
from pipeline.hpc.consolidate import consolidate_report


@click.command()
@click.option("--store", required=True, type=click.Path(path_type=Path),
              help="The store the tile --part runs were given; created if missing.")
def consolidate(store: Path) -> None:
    """Append the part stores STORE.parts/part-i-of-n.zarr into STORE, in part order."""
    try:
        with consolidate_report(store) as report:
            merge_parts(store, report)
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted: merged parts are committed; rerun to resume", err=True)
        sys.exit(130)
    click.echo(report.summary("chips"))
    sys.exit(1 if report.counts["parts_pending"] else 0)
