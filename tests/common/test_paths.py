"""common.settings.Paths names every folder under a home; the served folder holds none of the private ones."""

from __future__ import annotations

from pathlib import Path

from common.settings import Paths
from webui.served import blocked_paths, charts_dir


def test_every_path_lies_under_the_home(tmp_path):
    paths = Paths(tmp_path)
    named = [paths.db, paths.db_wal, paths.secret, paths.models, paths.runs, paths.exports, paths.evals]
    named += [paths.served, paths.downloads, paths.charts]
    assert all(p.parent == tmp_path or p.parent == paths.served for p in named)
    assert len(set(named)) == len(named)


def test_downloads_and_charts_are_served_and_nothing_private_is(tmp_path):
    paths = Paths(tmp_path)
    assert paths.downloads.parent == paths.charts.parent == paths.served
    assert not any(p.is_relative_to(paths.served) for p in paths.private())


def test_the_ui_blocks_every_private_path(tmp_path):
    paths = Paths(tmp_path)
    assert {str(p) for p in paths.private()} <= set(blocked_paths(paths))
    assert charts_dir(paths) == paths.charts


def test_a_path_is_the_class_attribute_on_the_class_and_a_path_on_an_instance():
    assert isinstance(Paths(Path("/h")).runs, Path)
    assert "secret" in Paths.secret.__doc__
