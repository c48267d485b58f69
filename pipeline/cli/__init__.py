"""``geokr-etl``: one module per subcommand."""

from __future__ import annotations

import click

from pipeline.cli.consolidate import consolidate
from pipeline.cli.label import label
from pipeline.cli.stats import stats
from pipeline.cli.tile import tile


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="geokr")
def main() -> None:
    """GeoKR ETL: tile scenes into a chip store, then label chips with land cover."""


main.add_command(tile)
main.add_command(label)
main.add_command(stats)
main.add_command(consolidate)
