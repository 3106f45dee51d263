"""`imagewright dict` and `imagewright queue` on the SQLite backend, in a temporary home: list,
clear and delete, exit status 1 with one line (no traceback) for what fails, and the errors of
a Redis URL without the `redis` package or without a server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.cli.main import run
from imagewright.exception import ConnectionError, InvalidError


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path))
    for name in ("IMAGEWRIGHT_REDIS_URL", "IMAGEWRIGHT_STATE_DIR", "IMAGEWRIGHT_IN_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_list_clear_and_delete(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dict", "list"]) == 0 and capsys.readouterr().out == "No Dicts.\n"
    modal.Dict.from_name("scores", create_if_missing=True)["a"] = 1
    q = modal.Queue.from_name("jobs", create_if_missing=True)
    q.put(1)
    q.put(2, partition="p")
    assert run(["dict", "list", "--json"]) == 0 and '"name": "scores"' in capsys.readouterr().out
    assert run(["dict", "clear", "scores", "--yes"]) == 0
    assert modal.Dict.from_name("scores").len() == 0
    assert run(["queue", "clear", "jobs", "--partition", "p", "-y"]) == 0
    assert q.len() == 1 and q.len(partition="p") == 0
    assert run(["queue", "clear", "jobs", "--all", "-y"]) == 0 and q.len(total=True) == 0
    assert run(["queue", "delete", "jobs", "-y"]) == 0
    assert capsys.readouterr().out.endswith("Deleted Queue 'jobs'\n")
    assert run(["queue", "list"]) == 0 and capsys.readouterr().out == "No Queues.\n"


def test_failures_exit_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dict", "delete", "nope", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: NotFoundError: Dict 'nope' not found") and "Traceback" not in err
    assert run(["dict", "delete", "nope", "--yes", "--allow-missing"]) == 0
    assert run(["queue", "clear", "nope", "--yes"]) == 1
    assert run(["dict", "clear", "bad name", "--yes"]) == 1
    assert "Invalid Dict name" in capsys.readouterr().err
    modal.Dict.objects.create("kept")
    assert run(["dict", "delete", "kept"]) == 1  # stdin is not a terminal: nothing asked
    assert "pass --yes" in capsys.readouterr().err and modal.Dict.from_name("kept").len() == 0


def test_help_names_the_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["queue", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in ("list", "clear", "delete"))


def test_a_redis_url_needs_the_package_and_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEWRIGHT_REDIS_URL", "redis://:hidden@127.0.0.1:1/0")
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    with pytest.raises(InvalidError, match=r"pip install 'imagewright\[redis\]'"):
        modal.Dict.from_name("d", create_if_missing=True).get("k")
    monkeypatch.delitem(sys.modules, "redis")
    pytest.importorskip("redis")
    with pytest.raises(ConnectionError, match=r"redis://:\*\*\*@127\.0\.0\.1:1/0") as found:
        modal.Queue.from_name("q", create_if_missing=True).len()
    assert "hidden" not in str(found.value)
