"""Dict and Queue in real containers, on both backends (the SQLite file in the store's home, and
a real redis-server started for the session): producers and consumers in different containers,
a `.map` writing into one Dict, blocking gets that time out, partitions, the host and its
containers seeing the same values, and a named Dict outliving the `imagewright run` that made
it, with the `imagewright dict` and `queue` commands."""

from __future__ import annotations

import queue
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

import imagewright as modal
from imagewright.cli.loader import load_module
from imagewright.exception import NotFoundError

from .conftest import cli

APP = """
import queue, time
import imagewright as modal

counts = modal.Dict.from_name("NAME", create_if_missing=True)
app = modal.App("dict-queue", image=modal.Image.debian_slim(python_version="3.11"))


@app.function()
def produce(q, n):
    for i in range(n):
        q.put(i)
    q.put_many(["a", "b", "c"], partition="letters")
    return n


@app.function()
def consume(q, n):
    return [q.get(timeout=60) for _ in range(n)]


@app.function(max_containers=4)
def count(i):
    # one key per input cannot be lost; "first" is raced for, and put(skip_if_exists) settles
    # the race atomically. (`counts[k] = counts.get(k, 0) + 1` would lose updates, on Modal too.)
    counts[f"seen-{i}"] = i
    return counts.put("first", i, skip_if_exists=True)


@app.function()
def wait_on_empty(q, timeout):
    started = time.monotonic()
    try:
        q.get(timeout=timeout)
    except queue.Empty:
        return time.monotonic() - started
    return None


@app.function()
def partitions(q):
    return q.len(partition="letters"), q.len(total=True), q.get_many(2, partition="letters")


def _exchange():
    seen = counts["from-host"]
    python = __import__("sys").version_info[:2]
    counts[f"from-{python[0]}.{python[1]}"] = seen
    return python


@app.function()
def exchange():
    return _exchange()


# the oldest Python a container may have: the backends and their drivers run on it too
@app.function(image=modal.Image.debian_slim(python_version="3.9"))
def exchange_39():
    return _exchange()
"""

RUNS = """
import imagewright as modal

app = modal.App("dict-runs", image=modal.Image.debian_slim(python_version="3.11"))


@app.function()
def write(name: str, value: int):
    modal.Dict.from_name(name, create_if_missing=True)["kept"] = value
    return "written"


@app.function()
def read(name: str):
    return modal.Dict.from_name(name)["kept"]
"""


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, store: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs once per backend: the environment says which, to the host, to
    `imagewright` subprocesses and (through start_container) to containers."""
    if request.param == "redis":
        monkeypatch.setenv("IMAGEWRIGHT_REDIS_URL", request.getfixturevalue("redis_server"))
    else:
        monkeypatch.delenv("IMAGEWRIGHT_REDIS_URL", raising=False)
    return str(request.param)


def _module(tmp_path: Path, source: str, name: str, dict_name: str = "") -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source).replace("NAME", dict_name))
    return load_module(str(path))


def test_the_host_sees_modals_semantics(backend: str) -> None:
    with modal.Dict.ephemeral() as d, modal.Queue.ephemeral() as q:
        d.update({"a": 1}, b=2)
        assert d.put("a", 9, skip_if_exists=True) is False and d["a"] == 1
        assert dict(d.items()) == {"a": 1, "b": 2} and d.pop("b") == 2 and d.len() == 1
        with pytest.raises(KeyError):
            d["b"]
        q.put_many([1, 2, 3])
        q.put("x", partition="p")
        assert q.len(total=True) == 4 and list(q.iterate()) == [1, 2, 3]
        assert q.get() == 1 and q.get_many(5) == [2, 3] and q.get(block=False) is None
        started = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 3
        assert q.get(partition="p") == "x"
        q.put_many(list(range(5000)))
        with pytest.raises(queue.Full):
            q.put(1, block=False)
        q.clear(all=True)
        assert q.len(total=True) == 0
    with pytest.raises(NotFoundError):
        modal.Dict.from_id(d.object_id).len()
    with pytest.raises(NotFoundError):
        d["after"] = 1  # the old handle cannot write either
    name = f"iw-host-{backend}-{time.time_ns()}"
    modal.Queue.objects.create(name)
    assert name in [x.name for x in modal.Queue.objects.list()]
    modal.Queue.objects.delete(name)
    assert name not in [x.name for x in modal.Queue.objects.list()]


def test_a_producer_and_a_consumer_share_a_queue(backend: str, tmp_path: Path) -> None:
    mod = _module(tmp_path, APP, "dq_pc", f"iw-pc-{backend}-{time.time_ns()}")
    with mod.app.run(), modal.Queue.ephemeral() as q:
        consumer = mod.consume.spawn(q, 20)  # waits in its container for what comes
        assert mod.produce.remote(q, 20) == 20
        assert consumer.get(timeout=120) == list(range(20))
        assert mod.partitions.remote(q) == (3, 3, ["a", "b"])
        assert q.get(partition="letters") == "c" and q.len(total=True) == 0


def test_a_map_writes_into_one_dict_without_losing_updates(backend: str, tmp_path: Path) -> None:
    name = f"iw-map-{backend}-{time.time_ns()}"
    mod = _module(tmp_path, APP, "dq_map", name)
    with mod.app.run():
        won = list(mod.count.map(range(100)))
    counts = modal.Dict.from_name(name)
    seen = {k: v for k, v in counts.items() if k.startswith("seen-")}
    assert len(seen) == 100 and sum(seen.values()) == sum(range(100))
    assert won.count(True) == 1 and counts["first"] == won.index(True)
    modal.Dict.objects.delete(name)


def test_a_blocking_get_in_a_container_times_out(backend: str, tmp_path: Path) -> None:
    mod = _module(tmp_path, APP, "dq_empty", f"iw-empty-{backend}-{time.time_ns()}")
    with mod.app.run(), modal.Queue.ephemeral() as q:
        waited = mod.wait_on_empty.remote(q, 1.0)
        assert waited is not None and 1.0 <= waited < 5


def test_the_host_and_containers_see_the_same_values(backend: str, tmp_path: Path) -> None:
    name = f"iw-same-{backend}-{time.time_ns()}"
    mod = _module(tmp_path, APP, "dq_same", name)
    shared = modal.Dict.from_name(name, create_if_missing=True)
    shared["from-host"] = ["host", 1]
    with mod.app.run():
        assert mod.exchange.remote() == (3, 11) and mod.exchange_39.remote() == (3, 9)
    assert shared["from-3.11"] == shared["from-3.9"] == ["host", 1]
    modal.Dict.objects.delete(name)


def test_a_named_dict_outlives_its_run(backend: str, tmp_path: Path) -> None:
    name = f"iw-runs-{backend}-{time.time_ns()}"
    program = tmp_path / "runs.py"
    program.write_text(textwrap.dedent(RUNS))
    first = cli("run", f"{program}::write", "--name", name, "--value", "7", cwd=tmp_path)
    assert first.returncode == 0 and "written" in first.stdout, first.stderr
    second = cli("run", f"{program}::read", "--name", name, cwd=tmp_path)
    assert second.returncode == 0 and second.stdout.strip().endswith("7"), second.stderr
    assert modal.Dict.from_name(name)["kept"] == 7  # and the host sees it

    listed = cli("dict", "list")
    assert listed.returncode == 0 and name in listed.stdout
    assert cli("dict", "clear", name, "--yes").returncode == 0
    assert modal.Dict.from_name(name).len() == 0
    assert cli("dict", "delete", name, "--yes").returncode == 0
    missing = cli("dict", "delete", name, "--yes")
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    queue_missing = cli("queue", "clear", name, "--yes")
    assert queue_missing.returncode == 1 and "not found" in queue_missing.stderr
