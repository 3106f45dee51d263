"""Volumes in real containers: run_function writing to one keeps it out of the layer, host-side
put/get through the CLI meet what containers wrote, in-container Volume methods, concurrent
writers, and a volume shared by functions and across app runs."""

from __future__ import annotations

import inspect
import json
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

import imagewright as modal
from imagewright.cli.loader import load_module
from imagewright.exception import NotFoundError
from imagewright.volume import delete_volume, volume_dir

from .conftest import cli

BUILD_APP = """
import json, os
import imagewright as modal

VOLUME = "NAME"
vol = modal.Volume.from_name(VOLUME)


def fill():
    # what the host put there through the CLI is here
    greeting = open("/data/in/hello.txt").read()
    os.makedirs("/data/from-build", exist_ok=True)
    with open("/data/from-build/x.txt", "w") as f:
        f.write("built:" + greeting)
    with open("/in-image.txt", "w") as f:
        f.write("image")
    # the Volume methods work inside the container, on the mount point
    inside = modal.Volume.from_name(VOLUME)
    names = [e.path for e in inside.listdir("/", recursive=True)]
    content = b"".join(inside.read_file("from-build/x.txt")).decode()
    with inside.batch_upload() as batch:
        batch.put_file(__import__("io").BytesIO(b"uploaded"), "/from-build/up.txt")
    inside.commit()
    with open("/in-container.json", "w") as f:
        json.dump({"names": names, "content": content}, f)


image = modal.Image.debian_slim(python_version="3.11").run_function(fill, volumes={"/data": vol})
"""


def _module(tmp_path: Path, source: str, name: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return load_module(str(path))


def test_run_function_writes_to_the_volume_not_the_layer(builder, store, tmp_path: Path) -> None:
    name = f"iw-build-{time.time_ns()}"  # a new volume, and a run_function key no store has
    assert "not found" in cli("volume", "ls", name).stderr
    assert cli("volume", "create", name).returncode == 0
    (tmp_path / "hello.txt").write_text("hello from the host")
    put = cli("volume", "put", name, str(tmp_path / "hello.txt"), "/in/")
    assert put.returncode == 0, put.stderr

    mod = _module(tmp_path, BUILD_APP.replace('"NAME"', repr(name)), "vol_build")
    result, _ = builder.build(mod.image)

    layer = store.layer_dir(result.plan.steps[-1].key)
    found = sorted(str(p.relative_to(layer)) for p in layer.rglob("*"))
    assert not [p for p in found if "data" in Path(p).parts or "from-build" in p], found
    assert any(p.endswith("in-image.txt") for p in found), found
    out = builder.run(mod.image, "cat /in-image.txt; test -e /data || echo ' no /data'")
    assert out == "image no /data\n"
    inside = json.loads(builder.run(mod.image, "cat /in-container.json"))
    assert inside == {
        "names": ["from-build", "from-build/x.txt", "in", "in/hello.txt"],
        "content": "built:hello from the host",
    }

    ls = cli("volume", "ls", name, "from-build")
    assert ls.stdout.split() == ["from-build/up.txt", "from-build/x.txt"], ls.stderr
    got = cli("volume", "get", name, "from-build/x.txt", str(tmp_path / "x.txt"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "x.txt").read_text() == "built:hello from the host"
    assert cli("volume", "get", name, "from-build/up.txt", "-").stdout == "uploaded"
    assert cli("volume", "rm", name, "from-build", "-r").returncode == 0
    assert cli("volume", "ls", name).stdout.split() == ["in/"]
    assert cli("volume", "delete", name, "--yes").returncode == 0
    assert name not in cli("volume", "list").stdout


def test_a_missing_volume_names_the_command_that_creates_it(builder, store, tmp_path) -> None:
    source = BUILD_APP.replace('"NAME"', repr(f"iw-missing-{time.time_ns()}"))
    mod = _module(tmp_path, source, "vol_missing")
    with pytest.raises(NotFoundError, match="imagewright volume create iw-missing-"):
        builder.build(mod.image)
    proc = cli("volume", "get", "iw-never-made", "x")
    assert proc.returncode == 2
    assert "imagewright volume create iw-never-made" in proc.stderr


FUNCTIONS_APP = """
import os, time
import imagewright as modal

vol = modal.Volume.from_name("NAME", create_if_missing=True)
app = modal.App("vols", image=modal.Image.debian_slim(python_version="3.11"))


@app.function(volumes={"/vol": vol})
def write(key, text):
    with open(f"/vol/{key}", "w") as f:
        f.write(text)
    vol.commit()
    return sorted(e.path for e in vol.listdir("/"))


@app.function(volumes={"/mnt/shared": vol})
def read(key):
    return b"".join(vol.read_file(key)).decode()


@app.function(volumes={"/vol": vol}, max_containers=4)
def worker(i):
    with open(f"/vol/part-{i}", "w") as f:
        f.write(str(i) * 1000)
    for _ in range(50):  # O_APPEND writes from every container at once
        with open("/vol/log", "a") as f:
            f.write(f"{i}\\n")
    time.sleep(0.2)
    return i
"""

_WIRED = "volumes" in inspect.signature(modal.App.function).parameters


@pytest.mark.skipif(not _WIRED, reason="App.function(volumes=) is not wired yet")
def test_a_volume_shared_by_functions_and_app_runs(store, tmp_path: Path) -> None:
    name = f"iw-shared-{time.time_ns()}"
    mod = _module(tmp_path, FUNCTIONS_APP.replace('"NAME"', repr(name)), "vol_functions")
    with mod.app.run():
        assert mod.write.remote("a.txt", "first") == ["a.txt"]
        assert mod.read.remote("a.txt") == "first"  # another function, another mount point
    with mod.app.run():  # a second run sees what the first one wrote
        assert mod.read.remote("a.txt") == "first"
        assert mod.write.remote("b.txt", "second") == ["a.txt", "b.txt"]
        assert sorted(mod.worker.map(range(8))) == list(range(8))
    root = volume_dir(modal.Volume.from_name(name))
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["a.txt", "b.txt", "log", *(f"part-{i}" for i in range(8))]
    )
    for i in range(8):
        assert (root / f"part-{i}").read_text() == str(i) * 1000
    lines = (root / "log").read_text().splitlines()
    assert sorted(lines) == sorted(str(i) for i in range(8) for _ in range(50))  # none lost
    delete_volume(name)


READ_ONLY_APP = """
import errno
import imagewright as modal

vol = modal.Volume.from_name("NAME")
app = modal.App("vols-ro", image=modal.Image.debian_slim(python_version="3.11"))


def _try_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "written"


@app.function(volumes={"/ro": vol.with_mount_options(read_only=True)})
def through_the_mount_option(name):
    return open(f"/ro/{name}").read(), _try_write("/ro/new.txt")


@app.function(volumes={"/ro": vol.read_only(), "/rw": modal.Volume.from_name("OTHER")})
def through_read_only(name):
    try:
        vol.read_only().remove_file(name)  # a read-only handle refuses before the file system
        refused = ""
    except modal.exception.InvalidError as exc:
        refused = str(exc)
    return open(f"/ro/{name}").read(), _try_write("/ro/new.txt"), _try_write("/rw/new.txt"), refused
"""


def test_a_read_only_volume_is_mounted_read_only(store, tmp_path: Path) -> None:
    name, other = f"iw-ro-{time.time_ns()}", f"iw-rw-{time.time_ns()}"
    modal.Volume.objects.create(name)
    modal.Volume.objects.create(other)
    (volume_dir(modal.Volume.from_name(name)) / "in.txt").write_text("kept")
    source = READ_ONLY_APP.replace('"NAME"', repr(name)).replace('"OTHER"', repr(other))
    mod = _module(tmp_path, source, "vol_read_only")
    try:
        with mod.app.run():
            assert tuple(mod.through_the_mount_option.remote("in.txt")) == ("kept", "EROFS")
            kept, ro, rw, refused = mod.through_read_only.remote("in.txt")
            assert (kept, ro, rw) == ("kept", "EROFS", "written")
            assert refused == "Read-only Volume can not be written to"
            call = mod.through_the_mount_option.experimental_spawn_map(["in.txt", "in.txt"])
            assert call.num_inputs() == 2
            assert [tuple(result) for result in call.iter()] == [("kept", "EROFS")] * 2
        assert sorted(p.name for p in volume_dir(modal.Volume.from_name(name)).iterdir()) == [
            "in.txt"
        ]
    finally:
        modal.Volume.objects.delete(name)
        modal.Volume.objects.delete(other)
