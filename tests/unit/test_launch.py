"""cli/launch.py's pure parts: which directory may hold build server sockets, and what makes
two processes' contexts differ (so that a server never serves a process unlike itself)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagewright.cli import launch


@pytest.fixture
def short(tmp_path: Path) -> Iterator[Path]:
    """A directory with a short path (a socket's address holds 107 bytes; tmp_path's is long)."""
    path = Path(tempfile.mkdtemp(prefix="iw-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def runtime(short: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short))
    return short / "imagewright"


def test_the_directory_is_made_private(runtime: Path) -> None:
    assert launch.runtime_dir() is None  # missing, and not asked to make it
    assert launch.runtime_dir(create=True) == str(runtime)
    assert runtime.stat().st_mode & 0o777 == 0o700
    assert launch.runtime_dir() == str(runtime)


def test_a_directory_others_may_enter_is_not_used(runtime: Path) -> None:
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o711)
    assert launch.runtime_dir() is None
    assert launch.runtime_dir(create=True) is None  # (and it is not "fixed" behind one's back)


def test_a_link_or_a_file_is_not_used(runtime: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    runtime.symlink_to(elsewhere)
    assert launch.runtime_dir(create=True) is None
    runtime.unlink()
    runtime.write_text("")
    assert launch.runtime_dir(create=True) is None


def test_without_xdg_runtime_dir_it_is_per_user_under_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert launch._directory() == f"/tmp/imagewright-{os.geteuid()}"


@pytest.mark.parametrize(
    "name", ["PYTHONWARNINGS", "PYTHONHASHSEED", "LC_ALL", "LANG", "TZ", "PYTHONPATH"]
)
def test_what_python_reads_at_start_is_part_of_the_context(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    before = launch.context_key()
    monkeypatch.setenv(name, "something-else")
    assert launch.context_key() != before


def test_other_variables_and_the_directory_are_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """They reach each build with its request instead."""
    before = launch.context_key()
    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path))
    monkeypatch.setenv("SOME_SECRET", "x")
    monkeypatch.chdir(tmp_path)
    assert launch.context_key() == before


def test_sys_path_is_part_of_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    before = launch.context_key()
    monkeypatch.syspath_prepend("/nowhere")
    assert launch.context_key() != before


def test_a_directory_others_could_replace_is_not_used(
    short: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory holding it must be this user's (or root's), and not open to others'
    writes unless sticky, like /tmp: otherwise its `imagewright` could be swapped for a link."""
    parent = short / "xdg"
    parent.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(parent))
    parent.chmod(0o777)
    assert launch.runtime_dir(create=True) is None
    assert not (parent / "imagewright").exists()
    parent.chmod(0o1777)
    assert launch.runtime_dir(create=True) == str(parent / "imagewright")


def test_a_path_too_long_for_a_socket_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 80)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    assert launch.runtime_dir(create=True) is None


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (["python", "/venv/bin/imagewright", "build", "x.py"], []),
        (["python", "-X", "importtime", "-m", "imagewright", "build"], ["-X", "importtime"]),
        (["python", "-BXdev", "script.py"], ["-BXdev"]),
        (["python", "-W", "error", "-I", "-c", "code", "-X", "no"], ["-W", "error", "-I"]),
        (["python", "-Bc", "code"], ["-B"]),
        (
            ["python", "--check-hash-based-pycs", "always", "-"],
            ["--check-hash-based-pycs", "always"],
        ),
    ],
)
def test_the_server_starts_with_the_clients_interpreter_options(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], options: list[str]
) -> None:
    monkeypatch.setattr(launch.sys, "orig_argv", argv)
    assert launch._interpreter_options() == options
