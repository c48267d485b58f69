"""``geokr-etl``: one module per subcommand, imported only when that subcommand runs."""

from __future__ import annotations

import importlib

import click

# name → module defining a click command of that name; heavy imports stay out of start-up
COMMANDS = {
    "tile": "pipeline.cli.tile",
    "label": "pipeline.cli.label",
    "stats": "pipeline.cli.stats",
    "consolidate": "pipeline.cli.consolidate",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = getattr(importlib.import_module(COMMANDS[cmd_name]), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="geokr")
def main() -> None:
    """GeoKR ETL: tile scenes into a chip store, then label chips with land cover."""
