"""``geokr-etl stats``: the paper's dataset tables and figures from a store's label sets."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.clierrors import error_policy
from pipeline.errors import InputError


@click.command()
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Chip store.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for CSV/Markdown tables and PNG figures.")
@click.option("--labels", "names", multiple=True,
              help="Label set(s) to report (default: all); two give Table III.")
@click.option("--samples", default=6, show_default=True, type=click.IntRange(1),
              help="Chips drawn in the Fig. 5 sample figure.")
@error_policy("tables and figures already written are complete; rerun to write the rest")
def stats(store: Path, out: Path, names: tuple[str, ...], samples: int) -> None:
    """Table II (+ Fig. 3), Table III for two label sets, and Fig. 5 sample chips.

    Reads the store only: it never writes into it, so a read-only store works.
    """
    try:  # matplotlib is the optional [stats] extra: import it only when asked for
        from pipeline.stats import run_stats
    except ImportError as e:
        raise InputError("geokr-etl stats", f"needs matplotlib (pip install geokr[stats]): {e}"
                         ) from None
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out is a file; give a folder for the tables and figures")
    files = run_stats(store, out, names, samples)
    click.echo(f"wrote {len(files)} files to {out}")
