"""The store under concurrency and corruption: prune and `build --force` never take a layer a
build or container in flight uses; broken layer records and directories are rebuilt; exports
never share bytes with the store, and a corrupted stored blob is caught and made again."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import imagewright as modal
from imagewright.execute.builder import build_image
from imagewright.export import export_image
from imagewright.plan.planner import plan_image
from imagewright.store.store import Store

from .conftest import Recorder, cli


def _files(tmp_path: Path, **contents: str) -> modal.Image:
    """from_scratch plus one copy step per file, written under tmp_path/ctx."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    image = modal.Image.from_scratch()
    for name, text in contents.items():
        (ctx / name).write_text(text)
        image = image.add_local_file(ctx / name, f"/{name}", copy=True)
    return image


def _app(tmp_path: Path, body: str) -> Path:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(body))
    return app


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# ---- prune and build --force against builds and containers in flight ---------------------------


class PruneMidBuild(Recorder):
    """Runs `imagewright prune` (another process) when the build reaches its last step."""

    def __init__(self, env: dict[str, str], at: int, args: tuple[str, ...]):
        super().__init__()
        self.env, self.at, self.args = env, at, args
        self.outputs: list[subprocess.CompletedProcess[str]] = []

    def step_started(self, index: int, step: object) -> None:
        super().step_started(index, step)
        if index == self.at:
            self.outputs.append(cli("prune", *self.args, env=self.env))


def test_prune_during_a_build_keeps_the_layers_it_committed(tmp_path):
    image = _files(tmp_path, a="first\n", b="second\n")
    steps = plan_image(image).steps  # from_scratch, copy a, copy b
    for args in ((), ("--all",)):
        home = tmp_path / f"home{len(args)}"
        env = {"IMAGEWRIGHT_HOME": str(home)}
        store = Store(home)
        recorder = PruneMidBuild(env, at=2, args=args)
        build_image(image, store=store, reporter=recorder)
        pruned = recorder.outputs[0]
        assert pruned.returncode == 0, pruned.stderr
        assert "Removed 0 layer(s)" in pruned.stdout, pruned.stdout
        assert "Kept 2 layer(s) that running builds or containers use" in pruned.stdout
        for step in steps:
            assert store.lookup(step.key) is not None
        assert (store.layer_dir(steps[1].key) / "diff" / "a").read_text() == "first\n"
        # the next use, in another process, finds every step: no parent is built again
        app = _app(
            tmp_path,
            f"""
            import imagewright as modal
            image = (modal.Image.from_scratch()
                .add_local_file({str(tmp_path / "ctx" / "a")!r}, "/a", copy=True)
                .add_local_file({str(tmp_path / "ctx" / "b")!r}, "/b", copy=True))
            """,
        )
        again = cli("build", "--json", str(app), env=env)
        assert again.returncode == 0, again.stderr
        assert [s["cached"] for s in json.loads(again.stdout)["steps"]] == [True, True, True]


def test_prune_and_force_build_leave_a_running_containers_layers(py311, builder, store, tmp_path):
    builder.build(py311)
    marker = f"iw-in-use-{time.time_ns()}"
    body = f"""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").run_commands(
            "echo {marker} > /marker", force_build=FORCE)
        """
    app = _app(tmp_path, body.replace("FORCE", "False"))
    forced = tmp_path / "forced"
    forced.mkdir()
    (forced / "app.py").write_text(textwrap.dedent(body.replace("FORCE", "True")))
    assert cli("build", str(app)).returncode == 0
    # planned only: this process must not look the layer up (that would hold it too)
    key = plan_image(runpy.run_path(str(app))["image"]).key

    # the container prints the marker, waits for a line on stdin, then reads the marker again
    shell = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "shell", str(app), "--cmd",
         "cat /marker; read line; cat /marker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "IMAGEWRIGHT_PROGRESS": "plain"},
    )  # fmt: skip
    try:
        assert shell.stdout is not None and shell.stdout.readline().strip() == marker
        # another process replaces the layer (the old one goes to the trash), the image record
        # goes, then prune runs: the container's lower layer must survive all of it
        rebuilt = cli("build", str(forced / "app.py"))
        assert rebuilt.returncode == 0, rebuilt.stderr
        store.remove_image(key)
        pruned = cli("prune")
        assert pruned.returncode == 0 and "Kept" in pruned.stdout, pruned.stdout + pruned.stderr
        assert store.layer_dir(key).is_dir()
        out, err = shell.communicate("go\n", timeout=120)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    assert shell.returncode == 0, err
    assert out.strip() == marker, out + err
    # once the container is gone, nothing holds the layer or its replaced copy any more
    pruned = cli("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert not store.layer_dir(key).exists()
    assert not list((store.root / "trash").glob(f"{key}-*"))


# ---- broken records and layer directories ---------------------------------------------------


def test_unreadable_layer_records_count_as_missing(tmp_path):
    home = tmp_path / "home"
    env = {"IMAGEWRIGHT_HOME": str(home)}
    # this process only plans: a lookup would hold the layer and keep prune from it
    layer = Store(home).layer_dir(plan_image(_files(tmp_path, data="kept\n")).key)
    app = _app(
        tmp_path,
        f"""
        import imagewright as modal
        image = modal.Image.from_scratch().add_local_file(
            {str(tmp_path / "ctx" / "data")!r}, "/data", copy=True)
        """,
    )
    assert cli("build", str(app), env=env).returncode == 0
    garbage = {
        "garbage": b"\x00\xffnot json",
        "empty": b"",
        "truncated": layer.joinpath("layer.json").read_bytes()[:25],
        "not a record": b'{"key": "x"}',
        "a list": b"[1, 2]",
    }
    for what, content in garbage.items():
        (layer / "layer.json").write_bytes(content)
        built = cli("build", "--json", str(app), env=env)
        assert built.returncode == 0, f"{what}: {built.stderr}"
        assert [s["cached"] for s in json.loads(built.stdout)["steps"]] == [True, False], what
        assert (layer / "diff" / "data").read_text() == "kept\n"
        (layer / "layer.json").write_bytes(content)
        pruned = cli("prune", env=env)
        assert pruned.returncode == 0, f"{what}: {pruned.stderr}"
        assert "Removed 1 layer(s)" in pruned.stdout, f"{what}: {pruned.stdout}"
        assert not layer.exists()
        assert cli("build", str(app), env=env).returncode == 0


def test_a_missing_layer_directory_is_rebuilt(tmp_path):
    home = tmp_path / "home"
    env = {"IMAGEWRIGHT_HOME": str(home)}
    base = _files(tmp_path, a="first\n")
    store = Store(home)
    build_image(base, store=store, reporter=Recorder())
    layer = store.layer_dir(plan_image(base).key)
    shutil.rmtree(layer / "diff")  # the record stays intact
    app = _app(
        tmp_path,
        f"""
        import imagewright as modal
        image = (modal.Image.from_scratch()
            .add_local_file({str(tmp_path / "ctx" / "a")!r}, "/a", copy=True)
            .add_local_file({str(tmp_path / "ctx" / "a")!r}, "/again", copy=True))
        """,
    )
    built = cli("build", "--json", str(app), env=env)
    assert built.returncode == 0, built.stderr
    assert [s["cached"] for s in json.loads(built.stdout)["steps"]] == [True, False, False]
    assert (layer / "diff" / "a").read_text() == "first\n"


# ---- exported blobs --------------------------------------------------------------------------


def _layer_blob(layout: Path) -> Path:
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][-1]["digest"].removeprefix("sha256:")
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_text())
    return layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].removeprefix("sha256:")


def _corrupt(path: Path) -> None:
    """Flip the bytes in the middle of `path`, in place: same size, same inode."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\xde\xad\xbe\xef")


def test_exports_are_copies_and_corrupt_blobs_are_made_again(tmp_path):
    store = Store(tmp_path / "home")
    image = _files(tmp_path, payload=os.urandom(1 << 16).hex())
    first = export_image(image, tmp_path / "one", store=store, reporter=Recorder())
    blob = _layer_blob(tmp_path / "one")
    stored = store.root / "blobs" / "sha256" / blob.name
    assert stored.is_file() and not blob.samefile(stored) and blob.stat().st_nlink == 1

    _corrupt(blob)  # a user edits an export in place
    second = export_image(image, tmp_path / "two", store=store, reporter=Recorder())
    assert second.manifest_digest == first.manifest_digest
    assert _sha256(_layer_blob(tmp_path / "two")) == f"sha256:{blob.name}"
    assert _sha256(stored) == f"sha256:{blob.name}"
    export_image(image, tmp_path / "one", store=store, reporter=Recorder())  # repairs it
    assert _sha256(blob) == f"sha256:{blob.name}"

    _corrupt(stored)  # the store's own copy goes bad: caught, and made again
    for out in ("three", "three.tar"):
        lines: list[str] = []
        again = export_image(
            image, tmp_path / out, store=store, reporter=Recorder(), progress=lines.append
        )
        assert again.manifest_digest == first.manifest_digest
        assert f"the stored blob {stored} does not match its digest" in lines[0], lines
        assert _sha256(stored) == f"sha256:{blob.name}"
        _corrupt(stored)
    assert _sha256(_layer_blob(tmp_path / "three")) == f"sha256:{blob.name}"
