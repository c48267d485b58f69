"""``--part i/n``: disjoint, complete, balanced parts, in the canonical (given) order."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pipeline.hpc.options import part_option
from pipeline.hpc.parts import Part, find_part_stores, parse_part, part_store_path, select_part


@given(
    names=st.lists(st.text("abcxyz/._-0123", min_size=1, max_size=12), max_size=60),
    count=st.integers(1, 12),
)
def test_parts_partition_the_scenes_in_order(names: list[str], count: int) -> None:
    shares = [select_part(names, Part(i, count)) for i in range(1, count + 1)]
    # disjoint, complete, in the order given (first occurrence of a repeated name)
    assert [n for share in shares for n in share] == list(dict.fromkeys(names))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1


@given(names=st.lists(st.text("abc", min_size=1, max_size=5), max_size=30), data=st.data())
def test_selection_is_a_function_of_the_command_line(
    names: list[str], data: st.DataObject
) -> None:
    # Every task of an array gets the same arguments: the same list, the same shares.
    part = Part(data.draw(st.integers(1, 4)), 4)
    assert select_part(list(names), part) == select_part(names, part)
    share = select_part(names, part)
    unique = list(dict.fromkeys(names))
    if share:
        start = unique.index(share[0])
        assert unique[start : start + len(share)] == share  # a contiguous block


def test_paths_and_no_part() -> None:
    scenes = [Path("/d/c.tif"), Path("/d/a.tif"), Path("/d/b.tif")]
    assert select_part(scenes, None) == scenes
    assert select_part(scenes, Part(3, 3)) == [Path("/d/b.tif")]
    assert select_part(scenes, Part(2, 5)) == [Path("/d/c.tif")]  # more parts than scenes
    assert select_part(scenes, Part(1, 5)) == []


@pytest.mark.parametrize(("text", "part"), [("3/8", Part(3, 8)), (" 1 / 1 ", Part(1, 1))])
def test_parse_part(text: str, part: Part) -> None:
    assert parse_part(text) == part
    assert str(part) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("0/4", "need 1 <= i <= n"), ("5/4", "need 1 <= i <= n"), ("3", "is not i/n"),
     ("a/b", "is not i/n"), ("-1/4", "is not i/n")],
)
def test_parse_part_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_part(text)


def test_part_option_gives_one_usage_line() -> None:
    @click.command()
    @part_option
    def cmd(part: Part | None) -> None:
        click.echo(repr(part))

    runner = CliRunner()
    assert runner.invoke(cmd, ["--part", "2/3"]).output.strip() == "Part(index=2, count=3)"
    assert runner.invoke(cmd, []).output.strip() == "None"
    bad = runner.invoke(cmd, ["--part", "4/3"])
    assert bad.exit_code == 2
    assert "Invalid value for '--part': part 4/3: need 1 <= i <= n" in bad.output


def test_part_store_paths_round_trip(tmp_path: Path) -> None:
    store = tmp_path / "levir.zarr"
    for i in (2, 1, 10):
        path = part_store_path(store, Part(i, 10))
        path.mkdir(parents=True)
    (tmp_path / "levir.zarr.parts" / "part-0-of-10.zarr").mkdir()  # not a valid part: ignored
    assert part_store_path(store, Part(2, 10)) == tmp_path / "levir.zarr.parts/part-2-of-10.zarr"
    assert list(find_part_stores(store)) == [Part(1, 10), Part(2, 10), Part(10, 10)]
