"""``geokr-eval``: does the pre-training help? One subcommand per downstream task."""

from __future__ import annotations

import click

from training.evaluation.cli_classify import classify
from training.evaluation.cli_detect import detect
from training.evaluation.cli_segment import prepare_zion, segment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="geokr")
def main() -> None:
    """GeoKR downstream evaluation: initialisations compared at label fractions."""


main.add_command(classify)
main.add_command(segment)
main.add_command(prepare_zion)
main.add_command(detect)
