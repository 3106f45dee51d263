"""`imagewright shell FILE::NAME --failed`: a shell in a failed step's work area, as its
command left it, kept until the next build of the image or a prune, and never with a secret."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

from imagewright.execute.failed import slot_for
from imagewright.store.store import Store

from .conftest import cli

SECRET = f"iw-failed-secret-{time.time_ns()}"

FAILING = textwrap.dedent("""
    import imagewright as modal
    image = (
        modal.Image.debian_slim(python_version="3.11")
        .run_commands("mkdir -p /srv/app && chown nobody /srv/app")
        .workdir("/srv/app")
        .env({"SOME_ENV": "some-value"})
        .dockerfile_commands(["USER nobody"])
        .run_commands(
            'test -n "$IW_TOKEN" && echo left > /srv/app/trace && STEP',
            secrets=[modal.Secret.from_dict({"IW_TOKEN": "@SECRET@"})],
        )
    )
""").replace("@SECRET@", SECRET)


def _write(directory: Path, step: str) -> None:
    (directory / "app.py").write_text(FAILING.replace("STEP", step))


def _kept(store: Store, directory: Path) -> list[Path]:
    """The failed-step areas of directory/app.py::image in the store, kept or in the trash."""
    slot = slot_for(str(directory / "app.py"), "image").name
    found = [store.root / "failed" / slot] if (store.root / "failed" / slot).exists() else []
    return found + list((store.root / "trash").glob(f"failed-{slot}-*"))


def test_shell_steps_into_the_failed_step(tmp_path, store):
    _write(tmp_path, "false")
    proc = cli("build", "app.py", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Step into it as it failed: imagewright shell app.py::image --failed" in proc.stderr
    assert _kept(store, tmp_path)

    script = "cat trace; pwd; id -u; echo $SOME_ENV; echo token=$IW_TOKEN"
    proc = cli("shell", "app.py", "--failed", "--cmd", script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["left", "/srv/app", "65534", "some-value", "token="]
    assert "secrets (IW_TOKEN) are not set" in proc.stderr

    # the shell's own changes are thrown away: the area stays as the step left it
    proc = cli("shell", "app.py::image", "--failed", "--cmd", "rm trace", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = cli("shell", "app.py::image", "--failed", "--cmd", "cat trace", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "left", proc.stderr

    # no secret value anywhere in the store (the log is redacted, the area holds names only)
    grep = subprocess.run(
        ["grep", "-rlF", "--devices=skip", SECRET, str(store.root)], capture_output=True
    )
    assert grep.returncode == 1, grep.stdout  # 1: nothing found


def test_a_later_build_removes_the_kept_step(tmp_path, store):
    _write(tmp_path, "false")
    assert cli("build", "app.py", cwd=tmp_path).returncode == 1
    assert _kept(store, tmp_path)
    _write(tmp_path, "true")  # fixed
    proc = cli("build", "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _kept(store, tmp_path) == []
    proc = cli("shell", "app.py", "--failed", "--cmd", "true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No failed build of app.py::image is kept" in proc.stderr


def test_prune_removes_the_kept_step(tmp_path, store):
    _write(tmp_path, "false")
    assert cli("build", "app.py", cwd=tmp_path).returncode == 1
    assert _kept(store, tmp_path)
    assert cli("prune").returncode == 0
    assert _kept(store, tmp_path) == []


def test_failed_without_a_kept_step_says_how_to_reproduce(tmp_path, store):
    _write(tmp_path, "false")  # never built
    proc = cli("shell", "app.py", "--failed", "--cmd", "true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No failed build of app.py::image is kept" in proc.stderr
    assert "imagewright build app.py::image" in proc.stderr
