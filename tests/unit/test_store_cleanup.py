"""Removing a work area (store._remove_tree): empty directories by rmdir, anything else by
shutil, and never through a link, whoever planted it."""

from __future__ import annotations

import os
from pathlib import Path

from imagewright.store.store import Store, _remove_tree


def test_an_area_of_empty_directories_goes(tmp_path: Path) -> None:
    area = tmp_path / "area"
    for sub in ("upper", "work", "merged"):
        (area / sub).mkdir(parents=True)
    _remove_tree(area)
    assert not area.exists()


def test_an_area_with_contents_goes_too(tmp_path: Path) -> None:
    area = tmp_path / "area"
    (area / "upper" / "deep").mkdir(parents=True)
    (area / "upper" / "deep" / "file").write_text("x")
    os.symlink("/", area / "upper" / "root")  # removed as a link, not followed
    (area / "work").mkdir()
    _remove_tree(area)
    assert not area.exists() and os.path.isdir("/etc")


def test_a_link_in_place_of_an_area_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    for sub in ("a", "b"):
        (target / sub).mkdir(parents=True)
    link = tmp_path / "area"
    link.symlink_to(target)
    _remove_tree(link)
    assert (target / "a").is_dir() and (target / "b").is_dir()


def test_clean_stale_leaves_a_linked_area_alone(tmp_path: Path) -> None:
    """A stale area whose lock is free is removed; one replaced by a link is not followed."""
    store = Store(tmp_path / "store")
    tmp = tmp_path / "store" / "tmp"
    (tmp / "1-dead" / "work").mkdir(parents=True)
    (tmp / "1-dead.lock").touch()
    target = tmp_path / "elsewhere"
    (target / "keep").mkdir(parents=True)
    (tmp / "2-link").symlink_to(target)
    (tmp / "2-link.lock").touch()
    assert store.clean_stale() == 2
    assert not (tmp / "1-dead").exists()
    assert (target / "keep").is_dir()
