"""The layer cache: unchanged images run nothing; edits rebuild only from the edited step."""

from __future__ import annotations

import time
from pathlib import Path

from imagewright.plan.planner import plan_image


def test_second_build_runs_no_step(builder, py311):
    image = py311.run_commands("echo one > /one").env({"A": "1"})
    first, _ = builder.build(image)
    second, recorder = builder.build(image)
    assert recorder.started == []
    assert all(step.cached for step in second.steps)
    assert second.image_id == first.image_id


def test_editing_a_copied_file_rebuilds_only_from_that_step(builder, py311, tmp_path: Path):
    config = tmp_path / "config.yaml"
    nonce = time.time_ns()  # content-addressed: bytes a reused store has seen would be cached
    config.write_text(f"version: 1 {nonce}\n")

    def image():
        return (
            py311.run_commands("echo before > /before")
            .copy_local_file(config, "/app/config.yaml")
            .run_commands("cat /app/config.yaml > /after")
        )

    builder.build(image())
    config.write_text(f"version: 2 {nonce}\n")
    result, _ = builder.build(image())
    ran = [s.description for s in result.steps if not s.cached]
    assert ran == [
        f"copy_local_file({str(config)!r}, '/app/config.yaml')",
        "run_commands('cat /app/config.yaml > /after')",
    ]
    assert builder.run(image(), "cat /after").strip() == f"version: 2 {nonce}"


def test_mode_change_rebuilds(builder, py311, tmp_path: Path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    key_before = plan_image(py311.copy_local_file(script, "/run.sh")).key
    script.chmod(0o755)
    image = py311.copy_local_file(script, "/run.sh")
    assert plan_image(image).key != key_before
    assert builder.run(image, "/run.sh").strip() == "ran"


def test_uv_package_cache_is_reused_when_the_list_changes(builder, fresh):
    builder.build(fresh.uv_pip_install("numpy"))
    second, rec2 = builder.build(fresh.uv_pip_install("numpy", "six"))
    assert not second.steps[-1].cached
    log2 = "\n".join(rec2.lines)
    # numpy came from the host-side uv cache: no download of it the second time
    assert "Downloading numpy" not in log2
    assert "numpy" in log2 and "six" in log2


def test_package_caches_never_land_in_layers(builder, py311, store):
    image = py311.apt_install("jq").uv_pip_install("six").pip_install("idna")
    builder.build(image)
    for step in plan_image(image).steps[-3:]:
        diff = store.layer_dir(step.key) / "diff"
        assert not list(diff.glob("var/cache/apt/archives/*.deb"))
        assert not (diff / "tmp").exists()
        assert not (diff / "root/.cache").exists()
        assert not (diff / ".uv").exists()  # uv is bound in for the step, not copied
    # the .debs stay in this file's package cache, in the store
    assert list((store.root / "cache" / "packages").glob("*/apt/jq_*.deb"))


def test_force_build_reruns_the_step_and_only_from_it(builder, fresh):
    stable = fresh.run_commands("echo stable > /stable")
    builder.build(stable.run_commands("date +%s%N > /stamp"))
    forced = stable.run_commands("date +%s%N > /stamp", force_build=True)
    result, recorder = builder.build(forced)
    assert recorder.started == ["run_commands('date +%s%N > /stamp')"]
    assert [s.cached for s in result.steps][-2:] == [True, False]


def test_env_force_build_reruns_every_step_it_reaches(builder, fresh, monkeypatch):
    image = fresh.run_commands("echo a > /a")
    builder.build(image)
    plan_steps = len(plan_image(image).steps)
    monkeypatch.setenv("IMAGEWRIGHT_FORCE_BUILD", "1")
    assert all(step.force for step in plan_image(image).steps)
    assert len(plan_image(image).steps) == plan_steps
