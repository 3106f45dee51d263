"""The shared layer cache in a registry: a second, empty store builds nothing that a first
store published, its containers see the layers, and a dead cache registry never fails a build.

docker-registry is required (`make setup` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from imagewright.cli.loader import load_module
from imagewright.exception import InvalidError
from imagewright.execute.container import run_container
from imagewright.plan.planner import plan_image
from imagewright.registry.layercache import RegistryLayerCache
from imagewright.store.store import Store

from .conftest import Builder, cli
from .registry_helpers import free_port, registry

APP = """\
import imagewright as modal

image = (
    modal.Image.debian_slim(python_version="3.11")
    .run_commands("echo hi > /hi")
    .env({"IW_CACHE_TEST": "1"})
    .copy_local_file("data.txt", "/data/data.txt")
)
"""


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> str:
    assert shutil.which("docker-registry"), "docker-registry is not installed; `make setup`"
    with registry(tmp_path_factory.mktemp("cache-registry")) as address:
        yield address


def test_second_store_pulls_every_step_from_the_cache(store, reg, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)  # local paths are relative to the working directory, as in Modal
    (project / "app.py").write_text(APP)
    (project / "data.txt").write_text("shared through the registry\n")
    image = load_module(str(project / "app.py")).image
    target = f"{reg}/iw/cache"

    # Store A: the session store (its 3.11 base is already built), publishing every layer.
    result, _ = Builder(store).build(image, cache=RegistryLayerCache(target))
    assert len(result.steps) >= 4

    # Store B: empty, its own IMAGEWRIGHT_HOME; the CLI with --cache-registry.
    home = tmp_path / "store-b"
    proc = cli(
        "build", "app.py", "--json", "--cache-registry", target,
        cwd=project, env={"IMAGEWRIGHT_HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout)["steps"]
    assert len(steps) == len(result.steps) and all(s["cached"] for s in steps), steps
    assert proc.stderr.count("pulled from cache") == len(steps), proc.stderr
    assert "Warning" not in proc.stderr

    store_b = Store(home)
    plan = plan_image(image)
    assert all(store_b.lookup(s.key) is not None for s in plan.steps)
    status, output = run_container(
        plan, store_b, ["/bin/sh", "-c", "cat /hi /data/data.txt; echo $IW_CACHE_TEST; python -V"],
        capture=True,
    )  # fmt: skip
    assert status == 0, output
    assert output.split("\n")[:3] == ["hi", "shared through the registry", "1"]
    assert "Python 3.11" in output

    # Fully cached in store B (and every layer known to be in the cache): no HTTP at all.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imagewright", "build", "app.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IMAGEWRIGHT_HOME": str(home), "IMAGEWRIGHT_CACHE_REGISTRY": target},
    )
    assert proc.returncode == 0, proc.stderr
    assert "httpx" not in proc.stderr and "0 step(s) run" in proc.stderr


def test_unreachable_cache_warns_once_and_builds(fresh, builder, capsys):
    image = fresh.run_commands("echo unreachable > /u").env({"IW_DEAD_CACHE": "1"})
    result, _ = builder.build(image, cache=RegistryLayerCache(f"127.0.0.1:{free_port()}/x"))
    assert [s.cached for s in result.steps][-2:] == [False, False]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "layer cache" in line]
    assert len(warnings) == 1 and "building without the cache" in warnings[0], warnings
    assert builder.run(image, "cat /u") == "unreachable\n"


def test_cache_registry_must_not_carry_a_tag():
    with pytest.raises(InvalidError, match="without a tag"):
        RegistryLayerCache("127.0.0.1:5000/iw/cache:v1")
