"""``geokr-etl consolidate``: the closing step of a job-array run (``--part i/n``).

Exit status (:mod:`pipeline.clierrors`): 0 every part merged (or merged
before); 1 a part is missing or unfinished (parts before it are merged; rerun
when it is done); 2 nothing could be done (no part stores, store locked or
read-only, mixed splits, disk full); 130 interrupted (merged parts are
committed, rerun to resume).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.clierrors import ExitCode, error_policy, store_state
from pipeline.hpc.consolidate import consolidate as merge_parts
from pipeline.hpc.consolidate import consolidate_report


@click.command()
@click.option("--store", required=True, type=click.Path(path_type=Path),
              help="The store the tile --part runs were given; created if missing.")
@error_policy("merged parts are committed; rerun to resume", store_state)
def consolidate(store: Path) -> ExitCode:
    """Append the part stores STORE.parts/part-i-of-n.zarr into STORE, in part order."""
    with consolidate_report(store) as report:
        merge_parts(store, report)
    click.echo(report.summary("chips"))
    return ExitCode.PARTIAL if report.counts["parts_pending"] else ExitCode.OK
