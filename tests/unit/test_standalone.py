"""Finding an installed uv-managed standalone CPython by series or by exact version."""

from __future__ import annotations

from pathlib import Path

from imagewright.execute.standalone import fetch_standalone
from imagewright.store.store import Store


def test_an_installed_tree_is_found_by_series_or_exact_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    tree = store.root / "tools" / "python" / "cpython-3.11.4-linux-x86_64-gnu"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "python3.11").touch()
    assert fetch_standalone(store, "3.11.4", "unused") == tree
    assert fetch_standalone(store, "3.11", "unused") == tree  # any build of the series
